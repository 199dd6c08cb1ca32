"""``--shard I/N`` end to end: shards of one job file run separately, by the command line,
against the mock, each into its own folder; together they hold every job exactly once and load
as one dataset."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.cli_helpers import run_main
from tests.conftest import CANARY_KEY, journal_records, run_cli, write_jobs
from wanbatch import BatchConfig, Shard, run_batch
from wanbatch._shards import shard_of
from wanbatch.mock import MockConfig, serve_in_thread

SHARDS = 3


def _env(mock: Any) -> dict[str, str]:
    return {"DASHSCOPE_API_KEY": CANARY_KEY, "DASHSCOPE_HTTP_BASE_URL": mock.base_url}


def _jobs(ids: list[str]) -> list[dict[str, Any]]:
    return [
        {"id": job_id, "prompt": f"prompt {job_id}", "meta": {"n": i}}
        for i, job_id in enumerate(ids)
    ]


def _ids_in(out: Path) -> list[str]:
    lines = (out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["id"] for line in lines]


def _run_shards(jobs: Path, root: Path, mock: Any) -> None:
    for i in range(1, SHARDS + 1):
        proc = run_cli(
            "run",
            str(jobs),
            "--out",
            str(root / f"shard-{i}"),
            "--shard",
            f"{i}/{SHARDS}",
            "--rps",
            "0",
            "--no-progress",
            env=_env(mock),
        )
        assert proc.returncode == 0, proc.stderr


def _check_every_job_once(root: Path, ids: list[str]) -> None:
    seen: list[str] = []
    for i in range(1, SHARDS + 1):
        in_shard = _ids_in(root / f"shard-{i}")
        assert set(in_shard) == {j for j in ids if shard_of(j, SHARDS) == i}
        seen += in_shard
    assert sorted(seen) == sorted(ids)  # every job, exactly once


def test_three_shards_run_separately_hold_every_job_exactly_once(tmp_path: Path) -> None:
    ids = [f"j{i:03d}" for i in range(30)]
    assert {shard_of(j, SHARDS) for j in ids} == {1, 2, 3}  # no shard is empty
    jobs = write_jobs(tmp_path / "jobs.jsonl", _jobs(ids))
    root = tmp_path / "shards"
    with serve_in_thread(MockConfig(image_size=(16, 16), api_key=CANARY_KEY)) as mock:
        _run_shards(jobs, root, mock)
        _check_every_job_once(root, ids)
        assert mock.counters().images_generated == len(ids)  # each bought once
        for i in range(1, SHARDS + 1):
            (run,) = [r for r in journal_records(root / f"shard-{i}") if r["event"] == "run"]
            assert run["shard"] == f"{i}/{SHARDS}"
            status = run_cli("status", str(root / f"shard-{i}"))
            assert json.loads(status.stdout)["shard"] == f"{i}/{SHARDS}"

        # Lines reordered and new ones appended: no done job moves to another shard (nothing
        # is bought again), and each new job is bought once, by its own shard.
        new = [f"new{i}" for i in range(9)]
        lines = _jobs(ids)
        random.Random(3).shuffle(lines)
        write_jobs(jobs, [*lines, *_jobs(new)])
        _run_shards(jobs, root, mock)
        _check_every_job_once(root, ids + new)
        assert mock.counters().images_generated == len(ids) + len(new)

        # A folder keeps its shard: another one, or none, is refused before anything is sent.
        for other in (["--shard", "2/3"], []):
            proc = run_cli(
                "run", str(jobs), "--out", str(root / "shard-1"), *other, "--no-progress",
                env=_env(mock),
            )  # fmt: skip
            assert proc.returncode == 2
            assert "holds shard 1/3" in proc.stderr and "Traceback" not in proc.stderr
        assert mock.counters().images_generated == len(ids) + len(new)


def test_shard_folders_load_together_as_one_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # imagefolder is built in: no network
    ids = [f"k{i:02d}" for i in range(12)]
    path = write_jobs(tmp_path / "jobs.jsonl", _jobs(ids))
    root = tmp_path / "shards"
    with serve_in_thread(MockConfig(image_size=(16, 16), api_key=CANARY_KEY)) as mock:
        _run_shards(path, root, mock)
    cache = str(tmp_path / "hf-cache")
    # The shard folders side by side under one folder: load that folder.
    together = datasets.load_dataset(
        "imagefolder", data_dir=str(root), split="train", cache_dir=cache
    )
    # Shard folders anywhere: every file of each, as one list.
    listed = datasets.load_dataset(
        "imagefolder",
        data_files=[f"{root / f'shard-{i}'}/**" for i in range(1, SHARDS + 1)],
        split="train",
        cache_dir=cache,
    )
    for ds in (together, listed):
        assert sorted(ds["id"]) == ids
        rows = {row["id"]: row for row in ds}
        assert all(rows[j]["n"] == int(j[1:]) for j in ids)
        assert rows["k03"]["image"].size == (16, 16)


def test_validate_and_dry_run_count_the_shard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [f"v{i}" for i in range(20)]
    path = write_jobs(tmp_path / "jobs.jsonl", _jobs(ids))
    sizes = [sum(shard_of(j, SHARDS) == i for j in ids) for i in range(1, SHARDS + 1)]
    for i, size in enumerate(sizes, 1):
        outcome = run_main(["validate", str(path), "--shard", f"{i}/{SHARDS}"], capsys)
        assert outcome.code == 0, outcome.err
        assert f"shard {i}/{SHARDS}: {size} of 20 valid jobs" in outcome.out

        async def dry(shard: Shard) -> int:
            summary = await run_batch(
                path, tmp_path / "dry", BatchConfig(shard=shard), dry_run=True
            )
            return summary.jobs_total

        assert anyio.run(dry, Shard(i, SHARDS)) == size
    assert not (tmp_path / "dry").exists()

    # Every line is checked, whatever the shard: a bad line is a bad file for every machine.
    with path.open("a", encoding="utf-8") as f:
        f.write('{"id": "bad", "prompt": ""}\n')
    for i in range(1, SHARDS + 1):
        outcome = run_main(["validate", str(path), "--shard", f"{i}/{SHARDS}"], capsys)
        assert outcome.code == 2 and ":21: prompt" in outcome.out

    for bad in ("0/3", "4/3", "x", "1/0"):
        outcome = run_main(["validate", str(path), "--shard", bad], capsys)
        assert outcome.code == 2 and "--shard" in outcome.err and "Traceback" not in outcome.err
        outcome = run_main(["run", str(path), "--out", str(tmp_path / "o"), "--shard", bad], capsys)
        assert outcome.code == 2 and "--shard" in outcome.err
    assert not (tmp_path / "o").exists()
