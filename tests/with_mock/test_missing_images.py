"""Images deleted from (or damaged in) ``images/`` are fetched again while their URL is valid,
and otherwise reported as missing, never bought again, and left out of ``metadata.jsonl``."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import journal_records, run_cli, write_jobs
from tests.simclock import run_simulated
from wanbatch import BatchConfig, Secret
from wanbatch.mock import ThreadedMock

pytestmark = pytest.mark.anyio


def _config(mock: ThreadedMock) -> BatchConfig:
    return BatchConfig(base_url=mock.base_url, api_key=Secret("k"), rps=None)


def _listed(out: Path) -> list[str]:
    rows = (out / "metadata.jsonl").read_text().splitlines()
    return sorted(json.loads(row)["file_name"] for row in rows)


async def test_missing_and_damaged_images_are_downloaded_again_for_free(
    tmp_path: Path, dashscope_mock: ThreadedMock
) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{"id": f"m{i}", "prompt": f"missing {i}"} for i in range(3)]
    )
    out = tmp_path / "out"
    assert (await run_simulated(jobs, out, _config(dashscope_mock))).exit_code == 0
    saved = {r["file"]: r["sha256"] for r in journal_records(out) if r["event"] == "saved"}
    (out / "images" / "m0-0.png").unlink()
    damaged = out / "images" / "m1-0.png"
    damaged.write_bytes(damaged.read_bytes()[:100])  # cut short: another size
    bought = dashscope_mock.counters().images_generated

    summary = await run_simulated(jobs, out, _config(dashscope_mock))
    assert summary.exit_code == 0
    assert summary.images_missing == 0 and summary.images_on_disk == 3
    assert summary.images_saved_this_run == 2
    assert dashscope_mock.counters().images_generated == bought  # nothing bought
    for file, sha256 in saved.items():
        assert hashlib.sha256((out / file).read_bytes()).hexdigest() == sha256
    assert _listed(out) == sorted(saved)


async def test_images_past_their_url_are_reported_missing_never_bought_and_not_listed(
    tmp_path: Path, dashscope_mock: ThreadedMock
) -> None:
    datasets = pytest.importorskip("datasets")
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{"id": f"e{i}", "prompt": f"expired {i}"} for i in range(3)]
    )
    out = tmp_path / "out"
    assert (await run_simulated(jobs, out, _config(dashscope_mock))).exit_code == 0
    kept = out / "images" / "e0-0.png"
    backup = tmp_path / "e0-0.png"
    shutil.move(kept, backup)  # deleted on purpose, say
    dashscope_mock.advance_clock(3 * 86400)  # the store now refuses its URL as expired
    bought = dashscope_mock.counters().images_generated

    for _ in range(2):  # a second run neither buys it nor lists it again
        summary = await run_simulated(jobs, out, _config(dashscope_mock))
        assert summary.exit_code == 0 and summary.jobs_done == 3
        assert summary.images_missing == 1 and summary.images_on_disk == 2
        assert json.loads((out / "summary.json").read_text())["images_missing"] == 1
        assert dashscope_mock.counters().images_generated == bought
        assert _listed(out) == ["images/e1-0.png", "images/e2-0.png"]
    # Its URL was tried (free), and the store's answer decided.
    assert dashscope_mock.counters().downloads_by_outcome.get("expired", 0) >= 1
    dataset = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    assert len(dataset) == 2

    status = run_cli("status", str(out))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["images_missing"] == 1

    # Put back by hand: listed again, nothing missing.
    shutil.move(backup, kept)
    summary = await run_simulated(jobs, out, _config(dashscope_mock))
    assert summary.images_missing == 0 and summary.images_on_disk == 3
    assert _listed(out) == [f"images/e{i}-0.png" for i in range(3)]
    assert dashscope_mock.counters().images_generated == bought


async def test_restoring_stops_when_the_store_keeps_failing(
    tmp_path: Path, dashscope_mock: ThreadedMock
) -> None:
    from wanbatch._restore import RESTORE_ATTEMPTS, RESTORE_FAILURES

    count = RESTORE_FAILURES + 10
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{"id": f"s{i}", "prompt": f"store {i}"} for i in range(count)]
    )
    out = tmp_path / "out"
    assert (await run_simulated(jobs, out, _config(dashscope_mock))).exit_code == 0
    for image in (out / "images").glob("*.png"):
        image.unlink()
    dashscope_mock.configure(truncate_rate=1.0)  # every download is cut short
    before = dashscope_mock.counters()

    summary = await run_simulated(jobs, out, _config(dashscope_mock))
    after = dashscope_mock.counters()
    assert summary.images_missing == count and summary.images_on_disk == 0
    assert after.images_generated == before.images_generated
    tries = after.downloads_by_outcome.get("truncated", 0) - before.downloads_by_outcome.get(
        "truncated", 0
    )
    # Bounded: the failures in a row that end it, plus the images in flight then.
    bound = RESTORE_ATTEMPTS * (RESTORE_FAILURES + _config(dashscope_mock).download_concurrency)
    assert RESTORE_ATTEMPTS * RESTORE_FAILURES <= tries <= bound
    assert _listed(out) == []
