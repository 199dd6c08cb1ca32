"""Every path that calls the service again, and its bound, shown against the mock.

The list (docs/behaviour.md and docs/architecture.md, "What can cost money, and its bound"):

- the first call of a job and its retries after an error worth retrying (5xx, a gateway page, a
  lost answer, 429): at most ``max_attempts`` calls per job in a run;
- an answer refusing the job (``DataInspectionFailed``, bad parameters): that one call, then the
  job is failed and never called again, unless ``--retry-failed`` (one more round per run);
- an answer refusing the batch (``Arrearage``, bad key): no new call at all;
- a download that fails for another reason than expiry: no call (the next run downloads again);
- a job whose line changed since it was generated: no call (its images are kept);
- ``--max-images``: no call past the cap;
- regeneration after an expiry, on download or on resume: at most 2 per job, counted in the
  journal over runs (``tests/reliability/test_expiry.py``, and the resume case below).

Each test bounds its runs in time, so a path that loops fails instead of hanging.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import write_jobs
from tests.simclock import run_simulated
from wanbatch import BatchConfig, ExitCode, RunSummary, Secret
from wanbatch.mock import MockConfig, serve_in_thread

pytestmark = pytest.mark.anyio

RUN_TIMEOUT_S = 30
MAX_ATTEMPTS = 3
#: Generations of one job at most when its URLs keep expiring (the first and 2 regenerations).
MAX_GENERATIONS = 3


def _config(base_url: str, **changes: Any) -> BatchConfig:
    return BatchConfig(
        base_url=base_url,
        api_key=Secret("sk-bounds"),
        concurrency=2,
        rps=None,
        max_attempts=MAX_ATTEMPTS,
    ).replace(**changes)


def _rows(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "prompt": f"{prefix} prompt {i}"} for i in range(count)]


async def _run(jobs: Path, out: Path, config: BatchConfig) -> RunSummary:
    with anyio.fail_after(RUN_TIMEOUT_S):
        return await run_simulated(jobs, out, config)


@pytest.mark.parametrize(
    "knobs",
    [
        {"error_rate": 1.0},  # 500 InternalError
        {"gateway_error_rate": 1.0},  # a non-JSON 502/503 page
        {"reset_rate": 1.0},  # the connection dropped after the request: possibly billed
        {"rps": 0.01},  # one call accepted, then 429 Throttling.RateQuota
    ],
    ids=["500", "gateway", "reset", "429"],
)
async def test_retries_stop_at_max_attempts_per_job(tmp_path: Path, knobs: dict[str, Any]) -> None:
    with serve_in_thread(MockConfig(image_size=(16, 16), **knobs)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("r", 3))
        summary = await _run(jobs, tmp_path / "out", _config(mock.base_url))
        counters = mock.counters()
    assert summary.calls == counters.calls
    assert counters.calls <= 3 * MAX_ATTEMPTS
    assert max(counters.calls_by_prompt.values()) <= MAX_ATTEMPTS
    assert summary.exit_code != ExitCode.OK


async def test_a_rejected_job_is_called_once_and_again_only_with_retry_failed(
    tmp_path: Path,
) -> None:
    knobs = {"image_size": (16, 16), "inspection_triggers": ("forbidden",)}
    with serve_in_thread(MockConfig(**knobs)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", [{"id": "x", "prompt": "a forbidden cat"}])
        out = tmp_path / "out"
        first = await _run(jobs, out, _config(mock.base_url))
        assert first.jobs_failed == 1 and mock.counters().calls == 1
        await _run(jobs, out, _config(mock.base_url))
        assert mock.counters().calls == 1  # failed for good: not called again
        await _run(jobs, out, _config(mock.base_url, retry_failed=True))
        assert mock.counters().calls == 2  # one more round, on request
        assert mock.counters().images_generated == 0


async def test_a_fatal_answer_stops_every_call(tmp_path: Path) -> None:
    with serve_in_thread(MockConfig(image_size=(16, 16), budget=0)) as mock:  # Arrearage
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("f", 20))
        config = _config(mock.base_url)
        summary = await _run(jobs, tmp_path / "out", config)
        calls = mock.counters().calls
    assert summary.exit_code == ExitCode.FATAL
    assert calls <= config.concurrency  # only the calls already started


async def test_a_failed_download_never_buys_again(tmp_path: Path) -> None:
    with serve_in_thread(MockConfig(image_size=(16, 16), truncate_rate=1.0)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("t", 3))
        out = tmp_path / "out"
        first = await _run(jobs, out, _config(mock.base_url))
        second = await _run(jobs, out, _config(mock.base_url))
        counters = mock.counters()
    assert first.jobs_done == second.jobs_done == 0
    assert counters.calls == 3  # each job bought once; the downloads were tried again, only
    assert counters.downloads_by_outcome["truncated"] > 3


async def test_a_changed_job_is_not_bought_again(tmp_path: Path) -> None:
    with serve_in_thread(MockConfig(image_size=(16, 16))) as mock:
        out = tmp_path / "out"
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("c", 2))
        await _run(jobs, out, _config(mock.base_url))
        edited = [{"id": "c0", "prompt": "an edited prompt"}, *_rows("c", 2)[1:]]
        summary = await _run(write_jobs(jobs, edited), out, _config(mock.base_url))
        calls = mock.counters().calls
    assert calls == 2 and summary.changed_jobs == 1 and summary.exit_code == ExitCode.OK


async def test_max_images_caps_what_a_run_buys(tmp_path: Path) -> None:
    with serve_in_thread(MockConfig(image_size=(16, 16))) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("m", 6))
        summary = await _run(jobs, tmp_path / "out", _config(mock.base_url, max_images=2))
        images = mock.counters().images_generated
    assert images == 2 and summary.exit_code == ExitCode.CAPPED


async def test_regeneration_on_resume_is_bounded_over_runs(tmp_path: Path) -> None:
    """Every download cut short, and between runs the store's clock moves a day on: each
    resume tries the old URL, the store says it expired, the job is bought again, until the
    journal's count fails it.
    """
    with serve_in_thread(MockConfig(image_size=(16, 16), truncate_rate=1.0)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("e", 1))
        out = tmp_path / "out"
        calls = []
        for run in range(MAX_GENERATIONS + 2):
            mock.configure(clock_offset=run * 100_000.0)
            summary = await _run(jobs, out, _config(mock.base_url))
            calls.append(mock.counters().calls)
    assert calls == [1, 2, 3, 3, 3]
    assert summary.jobs_failed == 1 and summary.exit_code == ExitCode.JOBS_FAILED
