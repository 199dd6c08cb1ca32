"""Each documented error answer through a real run against the mock (its ``force_error`` knob).

Fatal answers stop the batch at once (exit 3) with a message naming the setting to check, keep
the images already bought, and a run after the cause is gone completes. Job-level answers fail
only that job; passing faults are retried and the job completes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CANARY_KEY, journal_records, run_cli, write_jobs
from tests.simclock import SimulatedClock, run_simulated
from wanbatch import BatchConfig, ExitCode, Secret
from wanbatch._journal import read_journal
from wanbatch.mock import MockConfig, ThreadedMock, serve_in_thread

pytestmark = pytest.mark.anyio

CONCURRENCY = 2
FREE_QUOTA = "Free allocated quota exceeded."
ALLOCATED = "Allocated quota exceeded, please increase your quota limit."
NO_LENGTH = "Missing Content-Length of multimodal url."

# (status, code, message or None for the mock's documented one, what the stop reason must name)
FATAL = [
    (400, "Arrearage", None, "billing"),
    (429, "PrepaidBillOverdue", None, "billing"),
    (429, "PostpaidBillOverdue", None, "billing"),
    (429, "CommodityNotPurchased", None, "billing"),
    (429, "Throttling.AllocationQuota", FREE_QUOTA, "billing"),
    (403, "AllocationQuota.FreeTierOnly", None, "billing"),
    (403, "AccessDenied.Unpurchased", None, "billing"),
    (401, "InvalidApiKey", None, "DASHSCOPE_API_KEY"),
    (401, "invalid_api_key", None, "DASHSCOPE_API_KEY"),
    (401, "invalid access token or token expired", None, "--base-url"),
    (401, "NOT AUTHORIZED", None, "workspace"),
    (404, "WorkSpaceNotFound", None, "workspace"),
    (403, "Workspace.AccessDenied", None, "workspace"),
    (403, "App.AccessDenied", None, "workspace"),
    (403, "Model.AccessDenied", None, "workspace"),
    (403, "Endpoint.AccessDenied", None, "--base-url"),
    (403, "AccessDenied", None, "region"),
    (404, "ModelNotFound", None, "region"),
    (404, "NotFound", None, "--base-url"),
]

JOB_LEVEL = [
    (400, "InvalidParameter", None),
    (400, "InternalError.Algo.InvalidParameter", None),
    (400, "DataInspectionFailed", None),
    (400, "IPInfringementSuspect", None),
    (400, "BadRequest.EmptyInput", None),
    (400, "InvalidURL", None),
    (500, "InternalError.Algo", NO_LENGTH),
]

RETRIED = [
    (429, "Throttling", None, True),
    (429, "Throttling.RateQuota", None, True),
    (429, "Throttling.AllocationQuota", ALLOCATED, True),
    (500, "InternalError", None, False),
    (500, "InternalError.Timeout", None, False),
    (500, "InternalError.Algo", None, False),
    (500, "ModelServingError", None, False),
    (503, "ModelServingError", None, False),
    (503, "ModelUnavailable", None, False),
    (500, "RequestTimeOut", None, False),
    (500, "SystemError", None, False),
    (500, "ModelServiceFailed", None, False),
]


@pytest.fixture(scope="module")
def shared_mock() -> Iterator[ThreadedMock]:
    with serve_in_thread(MockConfig(image_size=(8, 8))) as handle:
        yield handle


@pytest.fixture
def mock(shared_mock: ThreadedMock) -> Iterator[ThreadedMock]:
    shared_mock.configure(force_error=None)
    shared_mock.reset_counters()
    yield shared_mock
    shared_mock.configure(force_error=None)


def config(base_url: str) -> BatchConfig:
    return BatchConfig(
        base_url=base_url,
        api_key=Secret(CANARY_KEY),
        concurrency=CONCURRENCY,
        rps=None,
    )


def jobs_file(tmp_path: Path, count: int) -> Path:
    jobs = [{"id": f"job{i}", "prompt": f"a lighthouse number {i}"} for i in range(count)]
    return write_jobs(tmp_path / "jobs.jsonl", jobs)


def force(status: int, code: str, message: str | None, **limits: int) -> dict[str, Any]:
    knob: dict[str, Any] = {"status": status, "code": code, **limits}
    if message is not None:
        knob["message"] = message
    return knob


def pngs(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "images").glob("*.png"))


@pytest.mark.parametrize(("status", "code", "message", "setting"), FATAL)
async def test_fatal_answer_stops_at_once_keeps_what_was_bought_and_resumes(
    mock: ThreadedMock,
    tmp_path: Path,
    status: int,
    code: str,
    message: str | None,
    setting: str,
) -> None:
    jobs, out = jobs_file(tmp_path, 8), tmp_path / "out"
    mock.configure(force_error=force(status, code, message, after=2))
    summary = await run_simulated(jobs, out, config(mock.base_url))

    assert summary.exit_code == ExitCode.FATAL
    reason = summary.stop_reason or ""
    assert code in reason and setting in reason and "run again" in reason
    assert CANARY_KEY not in reason
    counters = mock.counters()
    refused = counters.calls_by_outcome.get(f"{status}:{code}", 0)
    succeeded = counters.calls_by_outcome.get("200", 0)
    # The first refusal stops new calls: only calls already in flight may be refused after it.
    assert 1 <= refused <= CONCURRENCY
    assert counters.calls == succeeded + refused
    # What was bought is kept: every generated image is on disk.
    assert succeeded >= 2 and len(pngs(out)) == counters.images_generated == succeeded
    assert summary.jobs_failed == 0 and summary.jobs_pending == 8 - succeeded
    # A refusal of the account is no rate limit, in the summary or in `status`.
    assert summary.throttled == 0 and read_journal(out).throttled == 0

    mock.configure(force_error=None)
    again = await run_simulated(jobs, out, config(mock.base_url))
    assert again.exit_code == ExitCode.OK and again.jobs_done == 8
    assert len(pngs(out)) == 8
    assert set(mock.counters().images_by_prompt.values()) == {1}  # nothing bought twice


@pytest.mark.parametrize(("status", "code", "message"), JOB_LEVEL)
async def test_job_level_answer_fails_only_that_job(
    mock: ThreadedMock, tmp_path: Path, status: int, code: str, message: str | None
) -> None:
    jobs, out = jobs_file(tmp_path, 4), tmp_path / "out"
    mock.configure(force_error=force(status, code, message, after=1, times=1))
    summary = await run_simulated(jobs, out, config(mock.base_url))

    assert summary.exit_code == ExitCode.JOBS_FAILED
    assert (summary.jobs_done, summary.jobs_failed) == (3, 1)
    assert mock.counters().calls == 4  # the refused job was not called again
    failed = [r for r in journal_records(out) if r["event"] == "failed"]
    assert [(r["status"], r["code"]) for r in failed] == [(status, code)]
    assert len(pngs(out)) == 3 and not summary.stop_reason


@pytest.mark.parametrize(("status", "code", "message", "throttle"), RETRIED)
async def test_passing_fault_is_retried_and_the_job_completes(
    mock: ThreadedMock,
    tmp_path: Path,
    status: int,
    code: str,
    message: str | None,
    throttle: bool,
) -> None:
    jobs, out = jobs_file(tmp_path, 3), tmp_path / "out"
    mock.configure(force_error=force(status, code, message, times=2))
    clock = SimulatedClock()
    summary = await run_simulated(jobs, out, config(mock.base_url), clock=clock)

    assert summary.exit_code == ExitCode.OK and summary.jobs_done == 3
    counters = mock.counters()
    assert counters.calls_by_outcome == {f"{status}:{code}": 2, "200": 3}
    assert summary.retries == 2
    # Each retry waited its backoff (default settings: up to 1 s, then 2 s) on the run's clock,
    # not in real time (after a 429 the shared cool-down may add a wait).
    waits = [s for s in clock.sleeps if s > 0]
    assert len(waits) >= summary.retries
    assert max(waits) <= BatchConfig().backoff_max
    assert summary.throttled == (2 if throttle else 0)
    assert read_journal(out).throttled == summary.throttled
    assert len(pngs(out)) == 3


def test_cli_names_the_setting_to_check_and_exits_3(
    shared_mock: ThreadedMock, tmp_path: Path
) -> None:
    jobs, out = jobs_file(tmp_path, 3), tmp_path / "out"
    shared_mock.configure(force_error={"status": 429, "code": "PrepaidBillOverdue"})
    try:
        args = ["run", str(jobs), "--out", str(out), "--base-url", shared_mock.base_url]
        result = run_cli(*args, "--no-progress", env={"DASHSCOPE_API_KEY": CANARY_KEY})
    finally:
        shared_mock.configure(force_error=None)
    output = result.stdout + result.stderr
    assert result.returncode == ExitCode.FATAL, output
    assert "PrepaidBillOverdue" in output and "billing" in output and "Traceback" not in output
    assert CANARY_KEY not in output
