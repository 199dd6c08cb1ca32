"""URL expiry: fetched while valid, re-generated (and journaled as expired) once not, never
bought in a loop.

Completes tests/with_mock/test_engine.py, which covers "valid -> fetched without a call" and
"the store says expired (mock clock moved) -> re-generated". Here: on resume the client judges
expiry from ``Expires=`` on the service's clock (a URL inside the 60 s safety margin is never even
requested), a mixed folder where some URLs are still valid and others are not, a client clock a
day ahead of the service's (a just-received URL is always tried: the store decides), a store that
refuses every URL (each job bought at most 3 times, then failed with the likely cause; expiries
on arrival across jobs stop the run with exit 3), and ``--no-regenerate-expired`` (the job goes
to ``failed.jsonl`` with the reason).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import journal_records, png_info, run_cli, write_jobs
from tests.simclock import run_simulated
from wanbatch import BatchConfig, ExitCode, RunSummary, Secret
from wanbatch.mock import MockConfig, serve_in_thread

#: Generations of one job at most when its URLs keep expiring (the first and 2 regenerations).
MAX_GENERATIONS = 3
#: The mock's clock a day and an hour behind the client's: every URL's Expires= (24 h after the
#: service's "now") is an hour in the past by the client's clock when it arrives.
CLIENT_A_DAY_AHEAD = -(86400.0 + 3600.0)
#: A run that loops buys thousands of images a second; these bound each run of the tests.
RUN_TIMEOUT_S = 30
#: Result URLs that are dead when issued: the store refuses every one as expired.
DEAD_ON_ARRIVAL = {"url_ttl": 0.001}

pytestmark = pytest.mark.anyio


def _config(base_url: str, **changes: Any) -> BatchConfig:
    return BatchConfig(
        base_url=base_url,
        api_key=Secret("sk-expiry"),
        concurrency=4,
        rps=None,
    ).replace(**changes)


def _rows(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "prompt": f"{prefix} prompt {i}"} for i in range(count)]


async def _run(jobs: Path, out: Path, config: BatchConfig) -> RunSummary:
    """One run, bounded in time: a buying loop fails the test instead of hanging it."""
    with anyio.fail_after(RUN_TIMEOUT_S):
        return await run_simulated(jobs, out, config)


def _failed_rows(out: Path) -> dict[str, dict[str, Any]]:
    path = out / "failed.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return {row["id"]: row for row in rows}


async def test_client_clock_a_day_ahead_downloads_what_it_bought_once(tmp_path: Path) -> None:
    # Every URL looks expired by the client's clock on arrival; the store accepts it.
    knobs = {"image_size": (16, 16), "clock_offset": CLIENT_A_DAY_AHEAD}
    with serve_in_thread(MockConfig(**knobs)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("s", 3))
        out = tmp_path / "out"
        summary = await _run(jobs, out, _config(mock.base_url, max_attempts=1))
        counters = mock.counters()
    assert summary.exit_code == ExitCode.OK and summary.jobs_done == 3
    assert counters.calls == 3 and counters.images_generated == 3
    assert counters.downloads_by_outcome.get("ok", 0) == 3 and summary.urls_expired == 0
    # The offset is learned from the service's Date header and journaled with each generation.
    offsets = [r["clock_offset"] for r in journal_records(out) if r["event"] == "generated"]
    assert len(offsets) == 3
    assert all(abs(offset - CLIENT_A_DAY_AHEAD) < 5 for offset in offsets)


async def test_resume_under_clock_skew_judges_urls_on_the_services_clock(tmp_path: Path) -> None:
    knobs = {"image_size": (16, 16), "clock_offset": CLIENT_A_DAY_AHEAD, "truncate_rate": 1.0}
    with serve_in_thread(MockConfig(**knobs)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("r", 2))
        out = tmp_path / "out"
        first = await _run(jobs, out, _config(mock.base_url))
        assert first.jobs_done == 0 and mock.counters().calls == 2  # every download cut short
        mock.configure(truncate_rate=0.0)
        mock.reset_counters()
        second = await _run(jobs, out, _config(mock.base_url))
        counters = mock.counters()
    # By the client's own clock the URLs expired an hour ago; by the service's (the offset
    # journaled with them) they are valid for 23 more hours: downloaded, not bought again.
    assert second.exit_code == ExitCode.OK and second.jobs_done == 2
    assert counters.calls == 0 and second.regenerated == 0 and second.urls_expired == 0


async def test_a_store_refusing_every_url_gets_each_job_bought_at_most_three_times(
    tmp_path: Path,
) -> None:
    with serve_in_thread(MockConfig(image_size=(16, 16), **DEAD_ON_ARRIVAL)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("d", 2))
        out = tmp_path / "out"
        summary = await _run(jobs, out, _config(mock.base_url, concurrency=1, max_attempts=1))
        counters = mock.counters()
        assert dict(counters.images_by_prompt) == {
            "d prompt 0": MAX_GENERATIONS,
            "d prompt 1": MAX_GENERATIONS,
        }
        # Every URL was tried: the store, not the client's clock, said it expired.
        assert counters.downloads_by_outcome.get("expired", 0) == 2 * MAX_GENERATIONS
        assert summary.exit_code == ExitCode.JOBS_FAILED and summary.jobs_failed == 2
        assert summary.regenerated == 2 * (MAX_GENERATIONS - 1)
        rows = _failed_rows(out)
        assert set(rows) == {"d0", "d1"}
        for row in rows.values():
            message = row["error"]["message"]
            assert row["error"]["code"] == "UrlExpired"
            assert f"{MAX_GENERATIONS} times" in message and "valid for" in message, message
        # The count is in the journal: a restart buys nothing more.
        mock.reset_counters()
        again = await _run(jobs, out, _config(mock.base_url))
        assert mock.counters().calls == 0 and again.jobs_failed == 2
        # --retry-failed is an explicit new start: the same bound again, no more.
        retried = await _run(jobs, out, _config(mock.base_url, retry_failed=True))
        assert set(mock.counters().images_by_prompt.values()) == {MAX_GENERATIONS}
        assert retried.jobs_failed == 2


async def test_expiries_on_arrival_across_jobs_stop_buying_and_restarts_keep_counting(
    tmp_path: Path,
) -> None:
    # Calls take 0.1 s, downloads milliseconds: a refusal is seen before the next answer.
    knobs = {"image_size": (16, 16), "latency": 0.1, **DEAD_ON_ARRIVAL}
    with serve_in_thread(MockConfig(**knobs)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("a", 8))
        out = tmp_path / "out"
        config = _config(mock.base_url, concurrency=1)
        first = await _run(jobs, out, config)
        assert first.exit_code == ExitCode.FATAL, first.stop_reason
        assert first.stop_reason is not None and "expired" in first.stop_reason
        assert "on arrival" in first.stop_reason
        # Stopped once 3 jobs' fresh URLs were refused: most jobs were never bought.
        assert len(mock.counters().images_by_prompt) <= 5
        exits = [first.exit_code]
        for _ in range(12):  # someone restarting it in a loop: each run stops again
            summary = await _run(jobs, out, config)
            exits.append(summary.exit_code)
            if summary.exit_code != ExitCode.FATAL:
                break
        counters = mock.counters()
    assert exits[-1] == ExitCode.JOBS_FAILED, exits
    # Over all the restarts no job was bought more than its bound: the count is journaled.
    assert max(counters.images_by_prompt.values()) <= MAX_GENERATIONS
    assert counters.images_generated <= 8 * MAX_GENERATIONS
    assert set(_failed_rows(out)) == {f"a{i}" for i in range(8)}


async def test_no_regenerate_expired_fails_the_job_into_failed_jsonl(tmp_path: Path) -> None:
    with serve_in_thread(MockConfig(image_size=(16, 16), **DEAD_ON_ARRIVAL)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("n", 2))
        out = tmp_path / "out"
        summary = await _run(jobs, out, _config(mock.base_url, regenerate_expired=False))
        counters = mock.counters()
    assert counters.calls == 2 and summary.regenerated == 0
    assert summary.exit_code == ExitCode.JOBS_FAILED and summary.jobs_failed == 2
    rows = _failed_rows(out)
    assert set(rows) == {"n0", "n1"}
    for row in rows.values():
        assert row["prompt"].startswith("n prompt")  # the original job line
        assert row["error"]["code"] == "UrlExpired"
        assert "--no-regenerate-expired" in row["error"]["message"]


async def test_no_regenerate_expired_on_resume_fails_the_job_into_failed_jsonl(
    tmp_path: Path,
) -> None:
    # Every download cut short; then the store's clock moves a day on: its URLs expired.
    with serve_in_thread(MockConfig(image_size=(16, 16), truncate_rate=1.0)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("q", 2))
        out = tmp_path / "out"
        await _run(jobs, out, _config(mock.base_url))
        mock.configure(truncate_rate=0.0, clock_offset=100_000.0)
        mock.reset_counters()
        summary = await _run(jobs, out, _config(mock.base_url, regenerate_expired=False))
        assert mock.counters().calls == 0
    assert summary.exit_code == ExitCode.JOBS_FAILED and summary.jobs_failed == 2
    rows = _failed_rows(out)
    assert set(rows) == {"q0", "q1"}
    assert all("--no-regenerate-expired" in r["error"]["message"] for r in rows.values())
    events = [(r["event"], r.get("id")) for r in journal_records(out)]
    assert events.count(("failed", "q0")) == 1 and ("expired", "q0") in events


def test_cli_stops_buying_when_urls_expire_on_arrival(tmp_path: Path) -> None:
    """Through the CLI, `--max-attempts 1` as in the report: exit 3 and why, in bounded time."""
    with serve_in_thread(MockConfig(image_size=(16, 16), **DEAD_ON_ARRIVAL)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("c", 3))
        out = tmp_path / "out"
        env = {"DASHSCOPE_HTTP_BASE_URL": mock.base_url, "DASHSCOPE_API_KEY": "sk-cli"}
        args = ("--no-progress", "--rps", "0", "--max-attempts", "1")
        proc = run_cli("run", str(jobs), "--out", str(out), *args, env=env, timeout=60)
        calls = mock.counters().calls
    assert proc.returncode == ExitCode.FATAL, proc.stderr
    assert "expired" in proc.stderr and "on arrival" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert calls <= 3 * MAX_GENERATIONS


async def test_a_url_close_to_its_expiry_is_still_tried_and_saved_for_free(
    tmp_path: Path,
) -> None:
    # URLs valid for 40 s: no clock decides they are dead; the store still serves them.
    with serve_in_thread(MockConfig(image_size=(16, 16), url_ttl=40, truncate_rate=1.0)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("t", 3))
        out = tmp_path / "out"
        first = await run_simulated(jobs, out, _config(mock.base_url))
        assert first.jobs_done == 0 and first.exit_code != ExitCode.OK
        mock.configure(truncate_rate=0.0)
        mock.reset_counters()
        second = await run_simulated(jobs, out, _config(mock.base_url))
        counters = mock.counters()
    assert second.exit_code == ExitCode.OK and second.jobs_done == 3
    assert second.regenerated == 0 and second.urls_expired == 0 and counters.calls == 0
    assert counters.downloads_by_outcome.get("ok", 0) == 3
    assert not [r for r in journal_records(out) if r["event"] == "expired"]
    for image in (out / "images").iterdir():
        png_info(image)


async def test_valid_urls_are_fetched_and_expired_ones_regenerated_in_one_resume(
    tmp_path: Path,
) -> None:
    with serve_in_thread(MockConfig(image_size=(16, 16), truncate_rate=1.0)) as mock:
        out = tmp_path / "out"
        jobs = write_jobs(tmp_path / "jobs.jsonl", [*_rows("old", 2), *_rows("new", 2)])
        # "new" jobs are generated with 24 h URLs, then "old" ones with 10 s URLs; every
        # download is cut short, so all four stay generated-but-not-downloaded.
        await run_simulated(
            write_jobs(tmp_path / "new.jsonl", _rows("new", 2)), out, _config(mock.base_url)
        )
        mock.configure(url_ttl=10)
        await run_simulated(jobs, out, _config(mock.base_url))
        mock.configure(url_ttl=86400)
        assert {r["id"] for r in journal_records(out) if r["event"] == "saved"} == set()
        # A minute on by the store's clock: the 10 s URLs expired, the 24 h ones did not.
        mock.configure(truncate_rate=0.0, clock_offset=60.0)
        mock.reset_counters()
        summary = await run_simulated(jobs, out, _config(mock.base_url))
        counters = mock.counters()
    assert summary.exit_code == ExitCode.OK and summary.jobs_done == 4
    assert summary.regenerated == 2 and summary.urls_expired == 2
    # Only the expired ones were bought again; the valid ones were only downloaded.
    assert dict(counters.images_by_prompt) == {"old prompt 0": 1, "old prompt 1": 1}
    assert counters.downloads_by_outcome.get("expired", 0) == 2  # tried: the store decided
    expired = {r["id"] for r in journal_records(out) if r["event"] == "expired"}
    assert expired == {"old0", "old1"}
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "new0-0.png",
        "new1-0.png",
        "old0-0.png",
        "old1-0.png",
    ]


async def test_an_image_of_a_generation_replaced_while_it_downloaded_is_dropped(
    tmp_path: Path,
) -> None:
    """Image A of a job downloads slowly; its sibling B is refused as expired, so the job is
    generated again and both new images are saved; only then does A's download finish. A must
    not land: not over the new file under its name, not as a ``saved`` record."""
    import asyncio
    import hashlib

    from aiohttp import web
    from PIL import Image

    from wanbatch import JobDone
    from wanbatch.mock._app import create_app
    from wanbatch.mock._state import BUCKET

    release = asyncio.Event()
    image_requests: list[str] = []

    @web.middleware
    async def gate(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "GET" and request.path.startswith(f"/{BUCKET}/"):
            image_requests.append(request.path)
            if len(image_requests) == 1:  # the first generation's image A: held back
                await release.wait()
            elif len(image_requests) == 2:  # its sibling B: the store says it expired
                body = "<Error><Code>AccessDenied</Code><Message>Request has expired.</Message>"
                return web.Response(status=403, text=body + "</Error>")
        response: web.StreamResponse = await handler(request)
        return response

    app = create_app(MockConfig(image_size=(64, 48), seed=11))
    app.middlewares.append(gate)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    Image.new("RGB", (320, 256), (10, 200, 30)).save(tmp_path / "ref.png")
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{"id": "two", "prompt": "p", "images": ["ref.png"], "n": 2}]
    )
    out = tmp_path / "out"

    def on_event(event: object) -> None:
        if isinstance(event, JobDone):
            release.set()  # the new generation is saved: now let the old image A finish

    try:
        summary = await run_simulated(
            jobs,
            out,
            _config(f"http://127.0.0.1:{port}/api/v1", download_concurrency=2),
            on_event=on_event,
        )
    finally:
        release.set()
        await runner.cleanup()
    assert summary.exit_code == ExitCode.OK and summary.regenerated == 1
    assert len(image_requests) == 4  # A (held), B (expired), then the new generation's two
    records = journal_records(out)
    generated = [i for i, r in enumerate(records) if r["event"] == "generated"]
    saved = [(i, r) for i, r in enumerate(records) if r["event"] == "saved"]
    assert len(generated) == 2
    assert sorted(r["k"] for i, r in saved if i > generated[1]) == [0, 1]
    assert len(saved) == 2  # nothing saved of the first generation (A was dropped)
    for _, rec in saved:  # each file is the new generation's image its record names
        data = (out / rec["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == rec["sha256"]
        png_info(out / rec["file"])
    assert not list((out / ".tmp").iterdir())
