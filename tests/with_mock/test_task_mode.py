"""Task mode (``--mode async``) end to end against the mock: submit, journal, poll, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import REPO, journal_records, png_info, write_jobs
from wanbatch import BatchConfig, BatchRun, ExitCode, Secret, run_batch
from wanbatch import _events as ev
from wanbatch.mock import MockConfig, serve_in_thread

pytestmark = pytest.mark.anyio

REF = "https://example.com/ref.png"


@pytest.fixture
def mock() -> Iterator[Any]:
    with serve_in_thread(MockConfig(image_size=(32, 24), latency=0.2, seed=11)) as handle:
        yield handle


def task_config(base_url: str, **changes: Any) -> BatchConfig:
    return BatchConfig(
        base_url=base_url,
        api_key=Secret("sk-test"),
        concurrency=4,
        rps=None,
        backoff_initial=0.01,
        backoff_max=0.05,
        throttle_cooldown=0.01,
        mode="async",
        poll_interval=0.02,
    ).replace(**changes)


def edit_jobs(count: int, prefix: str = "e") -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}{i}", "prompt": f"edit {prefix} {i}", "images": [REF]}
        for i in range(count)
    ]


def status_report(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(
        subprocess.run(
            [sys.executable, "-m", "wanbatch", "status", str(out)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        ).stdout
    )
    return report


def events_of(records: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] == event]


async def test_editing_and_interleaved_jobs_run_as_tasks(mock: Any, tmp_path: Path) -> None:
    jobs = [
        *edit_jobs(3),
        # No reference image: interleaved mode, which the task API serves without a stream.
        {"id": "i0", "prompt": "a story in pictures", "max_images": 2},
        {"id": "i1", "prompt": "another story", "images": [REF], "enable_interleave": True},
    ]
    out = tmp_path / "out"
    summary = await run_batch(
        write_jobs(tmp_path / "jobs.jsonl", jobs), out, task_config(mock.base_url)
    )
    assert summary.exit_code == ExitCode.OK and summary.jobs_done == 5
    counters = mock.counters()
    # Every call was a task: submitted once, polled, never sent to the synchronous path.
    assert counters.calls == 5 and counters.task_polls >= 5
    records = journal_records(out)
    submitted = events_of(records, "submitted")
    assert sorted(r["id"] for r in submitted) == ["e0", "e1", "e2", "i0", "i1"]
    for record in events_of(records, "generated"):
        # The task id was journaled before the result.
        first = next(i for i, r in enumerate(records) if r.get("id") == record["id"])
        assert records[first]["event"] == "submitted"
    generated = {r["id"]: r for r in events_of(records, "generated")}
    assert len(generated["i0"]["images"]) == 2 and generated["i0"]["texts"]
    assert not generated["e0"]["texts"]
    for image in sorted((out / "images").glob("*.png")):
        assert png_info(image) == (32, 24)
    assert len(list((out / "images").glob("*.png"))) == 3 + 2 + 1


async def test_every_wan27_mode_runs_as_a_task(mock: Any, tmp_path: Path) -> None:
    jobs = [
        {"id": "t2i", "model": "wan2.7-image", "prompt": "a lighthouse", "size": "1K"},
        {"id": "edit", "model": "wan2.7-image", "prompt": "a bow tie", "images": [REF, REF]},
        {
            "id": "set",
            "model": "wan2.7-image",
            "prompt": "four seasons",
            "enable_sequential": True,
            "n": 3,
        },
        {"id": "pro", "model": "wan2.7-image-pro", "prompt": "a dew drop", "size": "4K"},
    ]
    out = tmp_path / "out"
    summary = await run_batch(
        write_jobs(tmp_path / "jobs.jsonl", jobs), out, task_config(mock.base_url)
    )
    assert summary.exit_code == ExitCode.OK and summary.jobs_done == 4
    records = journal_records(out)
    assert sorted(r["id"] for r in events_of(records, "submitted")) == ["edit", "pro", "set", "t2i"]
    generated = {r["id"]: len(r["images"]) for r in events_of(records, "generated")}
    assert generated["t2i"] == generated["edit"] == generated["pro"] == 1
    assert 1 <= generated["set"] <= 3  # a set's n is a maximum
    counters = mock.counters()
    assert counters.calls == 4 and counters.images_generated == sum(generated.values())


async def stop_after_submissions(jobs: Path, out: Path, config: BatchConfig, count: int) -> Any:
    """Run until ``count`` calls started, then stop (first Ctrl-C): their tasks stay open."""
    run = BatchRun(jobs, out, config)
    started = 0

    def on_event(event: ev.Event) -> None:
        nonlocal started
        if isinstance(event, ev.CallStarted):
            started += 1
            if started == count:
                run.request_stop("interrupted")

    run.subscribe(on_event)
    return await run.run()


async def test_a_resumed_run_polls_journaled_tasks_instead_of_submitting(
    mock: Any, tmp_path: Path
) -> None:
    mock.configure(latency=0.6)
    jobs = write_jobs(tmp_path / "jobs.jsonl", edit_jobs(4))
    out = tmp_path / "out"
    config = task_config(mock.base_url)
    with anyio.fail_after(30):
        first = await stop_after_submissions(jobs, out, config, 4)
    assert first.exit_code == ExitCode.INTERRUPTED
    records = journal_records(out)
    assert len(events_of(records, "submitted")) == 4 and not events_of(records, "generated")
    assert not events_of(records, "attempt")  # a task left open is not an abandoned call
    assert mock.counters().calls == 4
    status = await anyio.to_thread.run_sync(status_report, out)
    assert status["tasks_open"] == 4 and status["by_state"]["pending"] == 4

    second = await run_batch(jobs, out, config)
    assert second.exit_code == ExitCode.OK and second.jobs_done == 4
    counters = mock.counters()
    assert counters.calls == 4  # nothing submitted again
    assert counters.images_generated == 4
    assert sorted(counters.images_by_prompt.values()) == [1, 1, 1, 1]
    records = journal_records(out)
    assert len(events_of(records, "submitted")) == 4 and len(events_of(records, "generated")) == 4
    assert (await anyio.to_thread.run_sync(status_report, out))["tasks_open"] == 0


async def test_a_sync_run_also_collects_journaled_tasks(mock: Any, tmp_path: Path) -> None:
    mock.configure(latency=0.6)
    jobs = write_jobs(tmp_path / "jobs.jsonl", edit_jobs(3))
    out = tmp_path / "out"
    with anyio.fail_after(30):
        await stop_after_submissions(jobs, out, task_config(mock.base_url), 3)
    summary = await run_batch(jobs, out, task_config(mock.base_url, mode="sync"))
    assert summary.exit_code == ExitCode.OK and summary.jobs_done == 3
    assert mock.counters().calls == 3


async def test_tasks_past_retention_are_generated_again_once(mock: Any, tmp_path: Path) -> None:
    mock.configure(latency=0.6)
    jobs = write_jobs(tmp_path / "jobs.jsonl", edit_jobs(3))
    out = tmp_path / "out"
    config = task_config(mock.base_url)
    with anyio.fail_after(30):
        await stop_after_submissions(jobs, out, config, 3)
    mock.advance_clock(24 * 3600 + 60)  # the tasks' retention ran out: they read UNKNOWN

    summary = await run_batch(jobs, out, config)
    assert summary.exit_code == ExitCode.OK and summary.jobs_done == 3
    records = journal_records(out)
    unknown = [r for r in events_of(records, "attempt") if r["code"] == "TaskUnknown"]
    assert sorted(r["id"] for r in unknown) == ["e0", "e1", "e2"]
    assert all(r["possibly_billed"] and r["retry"] for r in unknown)
    assert len(events_of(records, "submitted")) == 6
    assert mock.counters().calls == 6  # each job submitted again exactly once

    again = await run_batch(jobs, out, config)  # nothing left to do: nothing bought
    assert again.exit_code == ExitCode.OK and mock.counters().calls == 6


async def test_an_id_the_service_never_issued_is_generated_again(mock: Any, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", edit_jobs(1))
    out = tmp_path / "out"
    config = task_config(mock.base_url)
    # A journal that names a task the service never issued (a run of another account, say).
    with anyio.fail_after(30):
        await stop_after_submissions(jobs, out, config, 1)
    journal = out / "journal.jsonl"
    text = journal.read_text()
    task = events_of(journal_records(out), "submitted")[0]["task"]
    journal.write_text(text.replace(task, "no-such-task"))
    for cache in out.glob(".state-snapshot*"):
        cache.unlink()
    summary = await run_batch(jobs, out, config)
    assert summary.exit_code == ExitCode.OK and summary.jobs_done == 1
    records = journal_records(out)
    assert [r["code"] for r in events_of(records, "attempt")] == ["TaskUnknown"]
    assert mock.counters().calls == 2


@pytest.mark.parametrize("in_output", [False, True])
async def test_a_failed_task_is_classified_like_an_error_answer(
    mock: Any, tmp_path: Path, in_output: bool
) -> None:
    mock.configure(inspection_triggers=["forbidden"], task_error_in_output=in_output)
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [*edit_jobs(2), {"id": "bad", "prompt": "a forbidden thing", "images": [REF]}],
    )
    out = tmp_path / "out"
    summary = await run_batch(jobs, out, task_config(mock.base_url))
    assert summary.exit_code == ExitCode.JOBS_FAILED
    assert summary.jobs_done == 2 and summary.jobs_failed == 1
    failed = events_of(journal_records(out), "failed")
    assert [(r["id"], r["code"], r["status"]) for r in failed] == [
        ("bad", "DataInspectionFailed", 200)
    ]
    assert mock.counters().calls == 3  # a rejected job is not submitted again
