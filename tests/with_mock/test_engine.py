"""The engine end to end against the mock (in-process: a mock thread, the engine on a loop)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import journal_records, png_info, write_jobs
from tests.simclock import run_simulated
from wanbatch import (
    BatchConfig,
    BatchRun,
    ExitCode,
    GenerationDefaults,
    InvalidJobs,
    JournalError,
    Secret,
)
from wanbatch.mock import MockConfig, serve_in_thread

pytestmark = pytest.mark.anyio


@pytest.fixture
def mock() -> Iterator[Any]:
    with serve_in_thread(MockConfig(image_size=(64, 48), seed=7)) as handle:
        yield handle


def fast_config(base_url: str, **changes: Any) -> BatchConfig:
    config = BatchConfig(
        base_url=base_url,
        api_key=Secret("sk-test"),
        concurrency=4,
        rps=None,
    )
    return config.replace(**changes) if changes else config


def text_jobs(count: int, prefix: str = "job") -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}{i}",
            "prompt": f"a red fox number {i}",
            "seed": i,
            "meta": {"split": "train", "n": i},
        }
        for i in range(count)
    ]


def images_by_prompt(mock: Any) -> dict[str, int]:
    return dict(mock.counters().images_by_prompt)


async def test_text_jobs_all_done_with_valid_images_and_views(mock: Any, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", text_jobs(6))
    out = tmp_path / "out"
    summary = await run_simulated(jobs, out, fast_config(mock.base_url))
    assert summary.exit_code == ExitCode.OK
    assert summary.jobs_done == 6 and summary.images_on_disk == 6
    files = sorted((out / "images").glob("*.png"))
    assert [f.name for f in files] == [f"job{i}-0.png" for i in range(6)]
    for f in files:
        assert png_info(f) == (64, 48)
    saved = {r["file"]: r for r in journal_records(out) if r["event"] == "saved"}
    for f in files:
        assert hashlib.sha256(f.read_bytes()).hexdigest() == saved[f"images/{f.name}"]["sha256"]
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert {r["file_name"] for r in rows} == {f"images/job{i}-0.png" for i in range(6)}
    assert all(r["split"] == "train" and r["prompt"].startswith("a red fox") for r in rows)
    assert json.loads((out / "summary.json").read_text())["jobs_done"] == 6
    assert not list((out / ".tmp").iterdir())
    # Interleaved mode keeps the text the model wrote next to its images.
    generated = [r for r in journal_records(out) if r["event"] == "generated"]
    assert all(isinstance(r["texts"], list) for r in generated)


async def test_editing_job_with_reference_image_and_n(mock: Any, tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (320, 256), (10, 200, 30)).save(tmp_path / "ref.png")
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"id": "edit", "prompt": "make it blue", "images": ["ref.png"], "n": 2},
        ],
    )
    out = tmp_path / "out"
    summary = await run_simulated(jobs, out, fast_config(mock.base_url))
    assert summary.exit_code == ExitCode.OK
    assert sorted(p.name for p in (out / "images").iterdir()) == ["edit-0.png", "edit-1.png"]
    assert images_by_prompt(mock) == {"make it blue": 2}


async def test_second_run_resumes_without_calling_again(mock: Any, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", text_jobs(4))
    out = tmp_path / "out"
    await run_simulated(jobs, out, fast_config(mock.base_url))
    calls = mock.counters().calls
    again = await run_simulated(jobs, out, fast_config(mock.base_url))
    assert again.exit_code == ExitCode.OK and again.calls == 0
    assert mock.counters().calls == calls


async def test_retryable_faults_are_retried_and_nothing_is_paid_twice(tmp_path: Path) -> None:
    knobs = MockConfig(
        image_size=(32, 32), seed=3, error_rate=0.25, gateway_error_rate=0.1, truncate_rate=0.2
    )
    with serve_in_thread(knobs) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", text_jobs(20))
        summary = await run_simulated(
            jobs, tmp_path / "out", fast_config(mock.base_url, max_attempts=12)
        )
        assert summary.exit_code == ExitCode.OK, summary
        assert summary.retries > 0
        assert set(images_by_prompt(mock).values()) == {1}
    for f in (tmp_path / "out" / "images").iterdir():
        png_info(f)


async def test_throttling_backs_off_and_finishes(tmp_path: Path) -> None:
    with serve_in_thread(MockConfig(image_size=(16, 16), max_concurrency=2, latency=0.05)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", text_jobs(12))
        summary = await run_simulated(
            jobs, tmp_path / "out", fast_config(mock.base_url, concurrency=6, max_attempts=30)
        )
        assert summary.exit_code == ExitCode.OK
        assert mock.counters().peak_in_flight <= 2
        assert set(images_by_prompt(mock).values()) == {1}


async def test_content_inspection_fails_the_job_and_retry_failed_recalls_it(
    tmp_path: Path,
) -> None:
    with serve_in_thread(
        MockConfig(image_size=(16, 16), inspection_triggers=("forbidden",))
    ) as mock:
        rows = [*text_jobs(3), {"id": "bad", "prompt": "something forbidden", "meta": {"x": 1}}]
        jobs = write_jobs(tmp_path / "jobs.jsonl", rows)
        out = tmp_path / "out"
        summary = await run_simulated(jobs, out, fast_config(mock.base_url))
        assert summary.exit_code == ExitCode.JOBS_FAILED
        assert summary.jobs_done == 3 and summary.jobs_failed == 1
        failed = [json.loads(x) for x in (out / "failed.jsonl").read_text().splitlines()]
        assert failed[0]["id"] == "bad" and failed[0]["error"]["code"] == "DataInspectionFailed"
        assert failed[0]["prompt"] == "something forbidden"  # the original line, ready to fix
        # A plain re-run skips it; --retry-failed calls it again.
        calls = mock.counters().calls
        again = await run_simulated(jobs, out, fast_config(mock.base_url))
        assert again.exit_code == ExitCode.JOBS_FAILED and mock.counters().calls == calls
        mock.configure(inspection_triggers=())
        third = await run_simulated(jobs, out, fast_config(mock.base_url, retry_failed=True))
        assert third.exit_code == ExitCode.OK and third.calls == 1
        assert (out / "failed.jsonl").read_text() == ""


async def test_bad_key_stops_the_batch_at_once(tmp_path: Path) -> None:
    with serve_in_thread(MockConfig(image_size=(16, 16), api_key="sk-right")) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", text_jobs(30))
        summary = await run_simulated(
            jobs, tmp_path / "out", fast_config(mock.base_url, concurrency=3)
        )
        assert summary.exit_code == ExitCode.FATAL
        assert "InvalidApiKey" in (summary.stop_reason or "")
        # No new call after the fatal answer: at most the calls already in flight.
        assert mock.counters().calls <= 3
        assert summary.jobs_failed == 0  # the jobs are not at fault; they stay pending


async def test_overdue_account_after_budget_stops_with_images_kept(tmp_path: Path) -> None:
    with serve_in_thread(MockConfig(image_size=(16, 16), budget=5)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", text_jobs(12))
        out = tmp_path / "out"
        summary = await run_simulated(jobs, out, fast_config(mock.base_url, concurrency=1))
        assert summary.exit_code == ExitCode.FATAL
        assert summary.jobs_done == 5 and len(list((out / "images").iterdir())) == 5
        assert "Arrearage" in (summary.stop_reason or "")


# More workers than the cap: some wait for room that the answered calls never free.
@pytest.mark.parametrize("concurrency", [2, 8])
async def test_max_images_caps_what_is_bought(mock: Any, tmp_path: Path, concurrency: int) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", text_jobs(10))
    config = fast_config(mock.base_url, max_images=4, concurrency=concurrency)
    with anyio.fail_after(60):  # a waiter left waiting for room would hang the run
        summary = await run_simulated(jobs, tmp_path / "out", config)
    assert summary.exit_code == ExitCode.CAPPED
    assert mock.counters().images_generated == 4
    assert summary.jobs_done == 4 and summary.jobs_pending == 6


async def test_undownloaded_images_are_fetched_on_resume_without_a_new_call(
    tmp_path: Path,
) -> None:
    with serve_in_thread(MockConfig(image_size=(16, 16), truncate_rate=1.0)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", text_jobs(3))
        out = tmp_path / "out"
        first = await run_simulated(jobs, out, fast_config(mock.base_url))
        assert first.jobs_done == 0 and first.exit_code != ExitCode.OK
        assert not list((out / "images").iterdir())  # never a partial file under a final name
        mock.configure(truncate_rate=0.0)
        calls = mock.counters().calls
        second = await run_simulated(jobs, out, fast_config(mock.base_url))
        assert second.exit_code == ExitCode.OK and second.calls == 0
        assert mock.counters().calls == calls


async def test_expired_urls_are_generated_again_and_recorded(tmp_path: Path) -> None:
    with serve_in_thread(MockConfig(image_size=(16, 16), truncate_rate=1.0)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", text_jobs(2))
        out = tmp_path / "out"
        await run_simulated(jobs, out, fast_config(mock.base_url))
        mock.configure(truncate_rate=0.0)
        mock.advance_clock(2 * 86400)  # the store now sees the URLs as expired
        summary = await run_simulated(jobs, out, fast_config(mock.base_url))
        assert summary.exit_code == ExitCode.OK
        assert summary.urls_expired == 2 and summary.regenerated == 2
        assert set(images_by_prompt(mock).values()) == {2}
        events = [r["event"] for r in journal_records(out)]
        assert events.count("expired") == 2


async def test_invalid_job_file_sends_nothing(mock: Any, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [*text_jobs(2), {"promt": "typo"}])
    with pytest.raises(InvalidJobs) as info:
        await run_simulated(jobs, tmp_path / "out", fast_config(mock.base_url))
    assert info.value.errors[0].line == 3
    assert mock.counters().calls == 0


async def test_journal_of_another_job_file_is_refused(mock: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    await run_simulated(
        write_jobs(tmp_path / "a.jsonl", text_jobs(2, "a")), out, fast_config(mock.base_url)
    )
    with pytest.raises(JournalError, match="another job file"):
        await run_simulated(
            write_jobs(tmp_path / "b.jsonl", text_jobs(2, "b")), out, fast_config(mock.base_url)
        )


async def test_images_symlink_out_of_the_folder_is_refused(mock: Any, tmp_path: Path) -> None:
    from wanbatch import OutputError

    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "images").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="symbolic link"):
        await run_simulated(
            write_jobs(tmp_path / "j.jsonl", text_jobs(1)), out, fast_config(mock.base_url)
        )
    assert not list((tmp_path / "elsewhere").iterdir())


async def test_dry_run_sends_nothing_and_prices_the_plan(mock: Any, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", text_jobs(5))
    summary = await run_simulated(
        jobs, tmp_path / "out", fast_config(mock.base_url, price_per_image=0.5), dry_run=True
    )
    assert summary.plan["call"] == 5 and summary.estimated_cost == 2.5
    assert mock.counters().calls == 0
    assert not (tmp_path / "out").exists()


async def test_resume_reads_past_the_done_prefix_yet_sees_its_ids(
    mock: Any, tmp_path: Path
) -> None:
    rows = text_jobs(6)
    jobs = write_jobs(tmp_path / "jobs.jsonl", rows)
    out = tmp_path / "out"
    await run_simulated(jobs, out, fast_config(mock.base_url))
    assert (out / ".resume-prefix").exists()  # the whole file is done: all of it
    calls = mock.counters().calls
    # A new line reusing the id of line 4: caught before anything is sent, naming line 4.
    write_jobs(jobs, [*rows, {"id": rows[3]["id"], "prompt": "another"}])
    with pytest.raises(InvalidJobs) as info:
        await run_simulated(jobs, out, fast_config(mock.base_url))
    assert "first on line 4" in str(info.value.errors[0])
    assert mock.counters().calls == calls
    write_jobs(jobs, [*rows, {"id": "new", "prompt": "one more"}])
    summary = await run_simulated(jobs, out, fast_config(mock.base_url))
    assert summary.exit_code == ExitCode.OK
    assert summary.plan["done"] == 6 and summary.plan["call"] == 1
    assert mock.counters().calls == calls + 1


async def test_resume_passes_over_done_lines_and_reports_changed_requests(
    mock: Any, tmp_path: Path
) -> None:
    rows = text_jobs(4)
    jobs = write_jobs(tmp_path / "jobs.jsonl", rows)
    out = tmp_path / "out"
    await run_simulated(jobs, out, fast_config(mock.base_url))
    assert (out / ".state-snapshot").exists()
    calls = mock.counters().calls
    rows[1] = {**rows[1], "prompt": "a different request"}  # the request changed
    rows[2] = {**rows[2], "meta": {"split": "test"}}  # only meta: not a new request
    write_jobs(jobs, [*rows, {"id": "new", "prompt": "one more"}])
    summary = await run_simulated(jobs, out, fast_config(mock.base_url))
    assert summary.exit_code == ExitCode.OK
    assert summary.changed_jobs == 1
    assert summary.plan["done"] == 4 and summary.plan["call"] == 1
    assert mock.counters().calls == calls + 1  # only the new job; changed ones keep their images
    # Changed run defaults change every request.
    again = await run_simulated(
        jobs, out, fast_config(mock.base_url).replace(defaults=GenerationDefaults(watermark=True))
    )
    assert again.calls == 0 and again.changed_jobs == 5


async def test_large_images_are_saved_with_their_sha256(tmp_path: Path) -> None:
    """Images over 1 MiB (many chunks): the journal's sha256 is each file's."""
    with serve_in_thread(MockConfig(image_size=(640, 640), image_style="noise", seed=7)) as big:
        jobs = write_jobs(tmp_path / "jobs.jsonl", text_jobs(3))
        out = tmp_path / "out"
        run = BatchRun(jobs, out, fast_config(big.base_url))
        summary = await run.run()
    assert summary.exit_code == ExitCode.OK and summary.images_on_disk == 3
    saved = {r["file"]: r for r in journal_records(out) if r["event"] == "saved"}
    for f in sorted((out / "images").glob("*.png")):
        assert f.stat().st_size > 1 << 20
        assert hashlib.sha256(f.read_bytes()).hexdigest() == saved[f"images/{f.name}"]["sha256"]
