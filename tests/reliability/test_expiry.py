"""URL expiry on resume: fetched while valid, re-generated (and journaled as expired) once not.

Completes tests/with_mock/test_engine.py, which covers "valid -> fetched without a call" and
"the store says expired (mock clock moved) -> re-generated". Here: the client judges expiry from
``Expires=`` alone (a URL inside the 60 s safety margin is never even requested), and a mixed
folder where some URLs are still valid and others are not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import journal_records, png_info, write_jobs
from wanbatch import BatchConfig, ExitCode, Secret, run_batch
from wanbatch.mock import MockConfig, serve_in_thread

pytestmark = pytest.mark.anyio


def _config(base_url: str, **changes: Any) -> BatchConfig:
    return BatchConfig(
        base_url=base_url,
        api_key=Secret("sk-expiry"),
        concurrency=4,
        rps=None,
        backoff_initial=0.01,
        backoff_max=0.05,
        throttle_cooldown=0.01,
    ).replace(**changes)


def _rows(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "prompt": f"{prefix} prompt {i}"} for i in range(count)]


async def test_url_inside_the_expiry_margin_is_regenerated_without_being_requested(
    tmp_path: Path,
) -> None:
    # URLs valid for 30 s: still valid by the clock, but inside the engine's 60 s margin.
    with serve_in_thread(MockConfig(image_size=(16, 16), url_ttl=30, truncate_rate=1.0)) as mock:
        jobs = write_jobs(tmp_path / "jobs.jsonl", _rows("t", 3))
        out = tmp_path / "out"
        first = await run_batch(jobs, out, _config(mock.base_url))
        assert first.jobs_done == 0 and first.exit_code != ExitCode.OK
        mock.configure(truncate_rate=0.0, url_ttl=86400)
        mock.reset_counters()
        second = await run_batch(jobs, out, _config(mock.base_url))
        counters = mock.counters()
    assert second.exit_code == ExitCode.OK
    assert second.regenerated == 3 and second.urls_expired == 3
    # Judged by the client: no download of an old URL was even tried.
    assert counters.downloads_by_outcome.get("expired", 0) == 0
    assert counters.downloads_by_outcome.get("ok", 0) == 3
    assert set(counters.images_by_prompt.values()) == {1} and counters.calls == 3
    # Recorded as such in the journal, once per image, before the new generation.
    records = journal_records(out)
    expired = [r for r in records if r["event"] == "expired"]
    assert sorted(r["id"] for r in expired) == ["t0", "t1", "t2"]
    for job_id in ("t0", "t1", "t2"):
        events = [r["event"] for r in records if r.get("id") == job_id]
        assert events[-3:] == ["expired", "generated", "saved"]
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
        await run_batch(
            write_jobs(tmp_path / "new.jsonl", _rows("new", 2)), out, _config(mock.base_url)
        )
        mock.configure(url_ttl=10)
        await run_batch(jobs, out, _config(mock.base_url))
        mock.configure(url_ttl=86400)
        assert {r["id"] for r in journal_records(out) if r["event"] == "saved"} == set()
        mock.configure(truncate_rate=0.0)
        mock.reset_counters()
        summary = await run_batch(jobs, out, _config(mock.base_url))
        counters = mock.counters()
    assert summary.exit_code == ExitCode.OK and summary.jobs_done == 4
    assert summary.regenerated == 2 and summary.urls_expired == 2
    # Only the expired ones were bought again; the valid ones were only downloaded.
    assert dict(counters.images_by_prompt) == {"old prompt 0": 1, "old prompt 1": 1}
    assert counters.downloads_by_outcome.get("expired", 0) == 0
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
        summary = await run_batch(
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
