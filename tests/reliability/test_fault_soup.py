"""Fault soup: every retryable fault the mock injects at once; nothing lost or bought twice."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import journal_records, png_info, write_jobs
from tests.simclock import run_simulated
from wanbatch import BatchConfig, ExitCode, Secret
from wanbatch.mock import MockConfig, serve_in_thread

pytestmark = pytest.mark.anyio

JOBS = 500


async def test_fault_soup_500_jobs_all_done_none_corrupt_none_bought_twice(tmp_path: Path) -> None:
    knobs = MockConfig(
        image_size=(16, 16),
        seed=20240611,
        error_rate=0.10,  # 500 InternalError JSON
        gateway_error_rate=0.05,  # 502/503 text/html
        reset_rate=0.05,  # TCP reset after the request was read
        truncate_rate=0.10,  # downloads cut in half
        latency=0.004,
        latency_jitter=0.004,  # slow and uneven answers
    )
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [{"id": f"s{i:04d}", "prompt": f"soup prompt {i}", "seed": i} for i in range(JOBS)],
    )
    out = tmp_path / "out"
    config = BatchConfig(
        base_url="",
        api_key=Secret("sk-soup"),
        concurrency=12,
        download_concurrency=8,
        rps=None,
        max_attempts=40,
    )
    with serve_in_thread(knobs) as mock:
        summary = await run_simulated(jobs, out, config.replace(base_url=mock.base_url))
        counters = mock.counters()
    assert summary.exit_code == ExitCode.OK, summary
    assert summary.jobs_done == JOBS and summary.jobs_failed == 0 and summary.jobs_pending == 0

    # Every fault kind really happened.
    outcomes = counters.calls_by_outcome
    assert outcomes.get("500:InternalError", 0) > 0
    assert outcomes.get("reset", 0) > 0
    assert any(k.startswith(("502", "503")) for k in outcomes), outcomes
    assert counters.downloads_by_outcome.get("truncated", 0) > 0

    # 0 jobs generated twice: each prompt bought exactly one image.
    assert len(counters.images_by_prompt) == JOBS
    duplicates = sum(1 for n in counters.images_by_prompt.values() if n != 1)
    assert duplicates == 0

    # 0 corrupt or partial files: each file is a whole PNG matching the journal's sha256.
    saved = {r["file"]: r for r in journal_records(out) if r["event"] == "saved"}
    files = sorted((out / "images").iterdir())
    assert len(files) == JOBS
    corrupt = 0
    for f in files:
        png_info(f)
        if hashlib.sha256(f.read_bytes()).hexdigest() != saved[f"images/{f.name}"]["sha256"]:
            corrupt += 1
    assert corrupt == 0
    assert not list((out / ".tmp").iterdir())
    print(
        f"\nfault soup: {JOBS} jobs done, {summary.calls} calls, {summary.retries} retries, "
        f"{counters.downloads_by_outcome.get('truncated', 0)} truncated downloads re-fetched, "
        f"{summary.possibly_billed} possibly-billed, {corrupt} corrupt, {duplicates} duplicates, "
        f"{summary.duration_s:.1f} s; outcomes {dict(outcomes)}"
    )
