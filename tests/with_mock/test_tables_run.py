"""CSV, TSV, Parquet and text job files, and sweeps, run end to end against the mock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CANARY_KEY, journal_records, png_info, run_cli
from wanbatch import BatchConfig, ExitCode, JobInput, Secret, run_batch
from wanbatch.mock import MockConfig, serve_in_thread


@pytest.fixture
def mock() -> Iterator[Any]:
    with serve_in_thread(MockConfig(image_size=(16, 16), seed=3)) as handle:
        yield handle


def run(mock: Any, jobs: Path, out: Path, *extra: str) -> Any:
    env = {"DASHSCOPE_API_KEY": CANARY_KEY, "DASHSCOPE_HTTP_BASE_URL": mock.base_url}
    return run_cli(
        "run", str(jobs), "--out", str(out), "--no-progress", "--rps", "0", *extra, env=env
    )


def metadata(out: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    return {row["id"]: row for row in rows}


def check_images(out: Path, count: int) -> None:
    images = sorted((out / "images").glob("*.png"))
    assert len(images) == count
    for image in images:
        png_info(image)


def test_csv_runs_with_a_column_mapping_and_meta(mock: Any, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        'id,caption,seed,source\ncat,"a cat, ""fluffy""\non a mat",7,web\ndog,a dog,,book\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    proc = run(mock, jobs, out, "--map", "prompt=caption")
    assert proc.returncode == 0, proc.stderr
    check_images(out, 2)
    rows = metadata(out)
    assert rows["cat"]["prompt"] == 'a cat, "fluffy"\non a mat' and rows["cat"]["seed"] == 7
    assert rows["cat"]["source"] == "web" and rows["dog"]["source"] == "book"
    assert dict(mock.counters().calls_by_prompt) == {'a cat, "fluffy"\non a mat': 1, "a dog": 1}
    again = run(mock, jobs, out, "--map", "prompt=caption")  # resume: nothing to buy
    assert again.returncode == 0 and mock.counters().calls == 2


def test_tsv_and_text_run(mock: Any, tmp_path: Path) -> None:
    tsv = tmp_path / "jobs.tsv"
    tsv.write_text("prompt\tsize\na red fox\t1280*1280\nblue whale\t\n", encoding="utf-8")
    proc = run(mock, tsv, tmp_path / "o1")
    assert proc.returncode == 0, proc.stderr
    check_images(tmp_path / "o1", 2)
    txt = tmp_path / "prompts.txt"
    txt.write_text("a red fox\n\na green owl\n", encoding="utf-8")
    proc = run(mock, txt, tmp_path / "o2")
    assert proc.returncode == 0, proc.stderr
    check_images(tmp_path / "o2", 2)
    assert {row["prompt"] for row in metadata(tmp_path / "o2").values()} == {
        "a red fox",
        "a green owl",
    }


def test_parquet_runs(mock: Any, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    jobs = tmp_path / "train.parquet"
    pq.write_table(
        pa.table({"text": ["a cat", "a dog", "a cow"], "seed": [1, 2, 3], "split": ["a"] * 3}),
        jobs,
    )
    out = tmp_path / "out"
    proc = run(mock, jobs, out, "--map", "prompt=text")
    assert proc.returncode == 0, proc.stderr
    check_images(out, 3)
    assert sorted((row["prompt"], row["seed"], row["split"]) for row in metadata(out).values()) == [
        ("a cat", 1, "a"),
        ("a cow", 3, "a"),
        ("a dog", 2, "a"),
    ]


def test_table_errors_name_file_row_and_column(mock: Any, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("caption,seed\na cat,1\n,2\na dog,two\n", encoding="utf-8")
    proc = run(mock, jobs, tmp_path / "out", "--map", "prompt=caption")
    assert proc.returncode == 2
    assert f"{jobs}:3: caption (prompt): missing" in proc.stderr
    assert f'{jobs}:4: seed: must be a whole number (a JSON integer), got "two"' in proc.stderr
    assert mock.counters().calls == 0
    proc = run_cli("validate", str(jobs), "--map", "prompt=caption")
    assert proc.returncode == 2 and f"{jobs}:3: caption (prompt): missing" in proc.stdout
    proc = run_cli("validate", str(jobs), "--map", "promt=caption")
    assert proc.returncode == 2 and "did you mean 'prompt'" in proc.stderr


def test_dry_run_shows_the_grid_and_its_cost(tmp_path: Path) -> None:
    jobs = tmp_path / "prompts.txt"
    jobs.write_text("a red fox\na green owl\na blue cat\n", encoding="utf-8")
    proc = run_cli(
        "run", str(jobs), "--out", str(tmp_path / "o"), "--dry-run", "--price", "0.25",
        "--sweep", "seed=1-4", "--sweep", "size=1024*1024,1280*1280",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "sweep: every job × 8 cells (seed: 4 values × size: 2 values)" in proc.stderr
    assert "dry run: 24 jobs" in proc.stderr and "at most 24 images" in proc.stderr
    assert "6.00 CNY" in proc.stderr


def _config(mock: Any, sweep: list[str]) -> BatchConfig:
    spec = JobInput(mapping={"prompt": "caption"})
    for axis in sweep:
        spec = spec.with_sweep(axis)
    return BatchConfig(
        base_url=mock.base_url,
        api_key=Secret("sk-test"),
        concurrency=16,
        download_concurrency=16,
        rps=None,
        job_input=spec,
    )


def _generated_ids(out: Path) -> list[str]:
    return [r["id"] for r in journal_records(out) if r["event"] == "generated"]


@pytest.mark.slow
@pytest.mark.timeout(600)  # 12,000 calls and downloads: 40-80 s on a busy 2-core machine
@pytest.mark.anyio
async def test_sweep_of_1000_jobs_extended_buys_only_the_new_cells(
    mock: Any, tmp_path: Path
) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "caption,id\n"
        + "".join(f"prompt {i},{'' if i % 4 == 0 else f'p{i}'}\n" for i in range(1000)),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    first = await run_batch(jobs, out, _config(mock, ["seed=1-4", "watermark=false,true"]))
    assert first.exit_code == ExitCode.OK and first.calls == 8000
    old_ids = set(_generated_ids(out))
    assert len(old_ids) == 8000 and "p1.seed-3.watermark-true" in old_ids
    old_meta = metadata(out)
    # More values on both axes, given in the other order: 1000 x 12 cells, 4000 of them new.
    second = await run_batch(jobs, out, _config(mock, ["watermark=false,true", "seed=1-6"]))
    assert second.exit_code == ExitCode.OK
    assert second.calls == 4000 and mock.counters().calls == 12000
    new_ids = _generated_ids(out)[8000:]
    assert len(new_ids) == len(set(new_ids)) == 4000
    assert not old_ids & set(new_ids)
    assert all(".seed-5." in i or ".seed-6." in i for i in new_ids)
    rows = metadata(out)
    assert len(rows) == 12000
    assert all(rows[i]["sha256"] == old_meta[i]["sha256"] for i in old_ids)  # untouched
