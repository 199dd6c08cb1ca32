"""The API key never shows: not in the output folder, logs, progress output, events, exception
messages or reprs, on the success path and the error paths (a canary key that we search for).

tests/with_mock/test_cli.py checks the CLI's files and stdout/stderr; this adds the in-process
view with the progress bar forced on, logs at DEBUG, every event and every error path.
"""

from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CANARY_KEY, run_cli, write_jobs
from tests.simclock import run_simulated
from wanbatch import BatchConfig, ExitCode, Secret
from wanbatch._progress import ProgressBar, format_summary
from wanbatch.mock import MockConfig, serve_in_thread

pytestmark = pytest.mark.anyio


def _config(base_url: str, key: str = CANARY_KEY) -> BatchConfig:
    return BatchConfig(
        base_url=base_url,
        api_key=Secret(key),
        concurrency=3,
        rps=None,
        max_attempts=4,
    )


def _assert_no_canary(where: str, text: str) -> None:
    assert CANARY_KEY not in text, f"the API key leaked into {where}"
    assert CANARY_KEY[3:] not in text, f"the API key (without sk-) leaked into {where}"


def _assert_folder_clean(out: Path) -> None:
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert CANARY_KEY.encode() not in data and CANARY_KEY[3:].encode() not in data, path


def test_config_and_secret_reprs_hide_the_key() -> None:
    secret = Secret(CANARY_KEY)
    config = _config("http://127.0.0.1:1/api/v1")
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr(config), str(config)):
        _assert_no_canary("a repr", text)
    assert "***" in repr(config)
    with pytest.raises(TypeError):
        pickle.dumps(config)  # a pickled config would carry the key to disk


@pytest.mark.parametrize(
    ("knobs", "expect"),
    [
        # success with retried faults (the attempt records hold error messages)
        ({"error_rate": 0.3, "gateway_error_rate": 0.1, "reset_rate": 0.1}, ExitCode.OK),
        ({"api_key": "sk-someone-else"}, ExitCode.FATAL),  # 401 InvalidApiKey
        ({"budget": 2}, ExitCode.FATAL),  # 400 Arrearage mid-run
        ({"inspection_triggers": ("leak",)}, ExitCode.JOBS_FAILED),
    ],
)
async def test_canary_key_never_leaks_in_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, knobs: dict[str, Any], expect: ExitCode
) -> None:
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    progress = ProgressBar(stream=stream, enabled=True)  # forced on
    events: list[str] = []

    def on_event(event: Any) -> None:
        events.append(repr(event))
        progress(event)

    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{"id": f"c{i}", "prompt": f"leak check {i}"} for i in range(6)]
    )
    out = tmp_path / "out"
    with serve_in_thread(MockConfig(image_size=(16, 16), seed=2, **knobs)) as mock:
        summary = await run_simulated(jobs, out, _config(mock.base_url), on_event=on_event)
    progress.close()
    assert summary.exit_code == expect, summary
    _assert_no_canary("the progress output", stream.getvalue())
    _assert_no_canary("the events", "\n".join(events))
    _assert_no_canary("the logs", caplog.text)
    _assert_no_canary("the summary", repr(summary) + format_summary(summary, out))
    _assert_folder_clean(out)


async def test_transport_errors_do_not_carry_the_key(tmp_path: Path) -> None:
    # Nothing listens on this port: every call fails to connect; the messages must stay clean.
    jobs = write_jobs(tmp_path / "jobs.jsonl", [{"id": "x", "prompt": "no server"}])
    out = tmp_path / "out"
    summary = await run_simulated(jobs, out, _config("http://127.0.0.1:9/api/v1"))
    assert summary.exit_code == ExitCode.FATAL  # unreachable: stopped, the job stays pending
    _assert_no_canary("the summary", repr(summary))
    _assert_folder_clean(out)


def test_cli_error_paths_with_progress_forced_do_not_print_the_key(tmp_path: Path) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{"id": f"p{i}", "prompt": f"p {i}"} for i in range(3)]
    )
    with serve_in_thread(MockConfig(image_size=(16, 16), api_key="sk-the-right-one")) as mock:
        env = {"DASHSCOPE_API_KEY": CANARY_KEY, "DASHSCOPE_HTTP_BASE_URL": mock.base_url}
        wrong = run_cli("run", str(jobs), "--out", str(tmp_path / "o1"), env=env)
        # A key that cannot go in a header at all must be refused without echoing it.
        for bad in (CANARY_KEY + "\n" + CANARY_KEY, CANARY_KEY + "\u00e9x", CANARY_KEY + "\u2028"):
            weird = run_cli(
                "run",
                str(jobs),
                "--out",
                str(tmp_path / "o2"),
                env={**env, "DASHSCOPE_API_KEY": bad},
            )
            assert weird.returncode in (2, 3), weird.stderr
            assert "Traceback" not in weird.stderr, weird.stderr
            _assert_no_canary("stderr (malformed key)", weird.stdout + weird.stderr)
    assert wrong.returncode == 3 and "InvalidApiKey" in wrong.stderr
    _assert_no_canary("stderr (401)", wrong.stdout + wrong.stderr)
    _assert_folder_clean(tmp_path / "o1")
    if (tmp_path / "o2").exists():
        _assert_folder_clean(tmp_path / "o2")


def test_a_key_pool_never_shows_its_keys(tmp_path: Path) -> None:
    # The canary in a keys file and in DASHSCOPE_API_KEYS; the mock knows one of them, whose
    # account runs out of money mid-run: a key retired, then none left (exit 3).
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{"id": f"k{i}", "prompt": f"pool {i}"} for i in range(6)]
    )
    other = "sk-canary-second-0000000000000000b2c4"
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# pool\n{CANARY_KEY}\n")
    accounts = {CANARY_KEY: {"budget": 2}}
    with serve_in_thread(MockConfig(image_size=(16, 16), keys=accounts)) as mock:
        env = {"DASHSCOPE_API_KEYS": f"{other},", "DASHSCOPE_HTTP_BASE_URL": mock.base_url}
        out = tmp_path / "out"
        done = run_cli("run", str(jobs), "--out", str(out), "--keys-file", str(keys_file), env=env)
    assert done.returncode == ExitCode.FATAL, done.stderr
    assert "every API key of the pool was refused" in done.stderr
    assert f"#1 …{CANARY_KEY[-4:]}" in done.stderr  # the label, retired by its bill
    _assert_no_canary("stderr (pool)", done.stdout + done.stderr)
    assert other not in done.stdout + done.stderr and other[3:] not in done.stderr
    _assert_folder_clean(out)
    assert other.encode() not in b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert len(list((out / "images").rglob("*.png"))) == 2  # what the canary's account bought


async def test_a_wrong_host_echoing_the_request_headers_does_not_leak_the_key(
    tmp_path: Path,
) -> None:
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:  # a proxy's debugging page
        lines = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
        return web.Response(status=400, text=f"<pre>{lines}</pre>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        jobs = write_jobs(tmp_path / "jobs.jsonl", [{"id": "x", "prompt": "wrong host"}])
        out = tmp_path / "out"
        summary = await run_simulated(jobs, out, _config(f"http://127.0.0.1:{port}/api/v1"))
    finally:
        await runner.cleanup()
    assert summary.jobs_failed + summary.jobs_pending == 1
    _assert_no_canary("the summary", repr(summary))
    _assert_folder_clean(out)
