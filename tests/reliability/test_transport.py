"""Transport trouble and stops: what is never sent is never billed, what may be billed is counted
once, a paid image in a cut stream is kept, and Ctrl-C / SIGHUP / a broken journal stop cleanly.

Real parts only: the CLI as a subprocess or ``run_batch`` in-process, against the mock on
127.0.0.1 (or a refused loopback port).
"""

from __future__ import annotations

import json
import os
import queue
import resource
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import REPO, journal_records, png_info, run_args, run_cli, write_jobs
from tests.simclock import run_simulated
from wanbatch import BatchConfig, Secret
from wanbatch import _events as ev
from wanbatch._engine import ExitCode
from wanbatch._errors import ConnectFailed, ResponseLost, TransportError
from wanbatch._progress import format_summary
from wanbatch._streaks import FOREIGN_ANSWERS_TO_STOP, LOST_ANSWERS_TO_STOP, UNREACHABLE_AFTER
from wanbatch.mock import MockConfig, MockServer, serve_in_thread

pytestmark = pytest.mark.anyio


def _jobs(tmp_path: Path, count: int, prefix: str = "t") -> Path:
    return write_jobs(
        tmp_path / "jobs.jsonl",
        [{"id": f"{prefix}{i:02d}", "prompt": f"transport {prefix} {i}"} for i in range(count)],
    )


def _env(base_url: str) -> dict[str, str]:
    return {"DASHSCOPE_API_KEY": "sk-transport", "DASHSCOPE_HTTP_BASE_URL": base_url}


def _refused_url() -> str:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v1"


def _status(out: Path) -> dict[str, Any]:
    proc = run_cli("status", str(out))
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def _summary(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return data


# --------------------------------------------------------------------------- unreachable service
# A base URL with no scheme never gets this far: the CLI refuses it as a usage error (exit 2);
# the client's own mapping of such a URL is in the error-mapping table below.
@pytest.mark.parametrize("where", ["refused port", "TLS to a plain HTTP port"])
def test_unreachable_service_stops_at_once_then_the_fixed_url_just_works(
    tmp_path: Path, where: str
) -> None:
    count = 12
    jobs, out = _jobs(tmp_path, count), tmp_path / "out"
    with serve_in_thread(MockConfig(image_size=(16, 16))) as mock:
        bad = {
            "refused port": _refused_url(),
            "TLS to a plain HTTP port": mock.base_url.replace("http://", "https://"),
        }[where]
        first = run_cli("run", str(jobs), "--out", str(out), "--no-progress", env=_env(bad))
        assert first.returncode == ExitCode.FATAL, first.stderr
        assert "Traceback" not in first.stderr
        assert f"cannot reach the service at {bad}" in first.stderr, first.stderr
        assert mock.counters().calls == 0  # the TLS case: no request ever reached the mock
        records = journal_records(out)
        assert not [r for r in records if r["event"] == "failed"]  # no job failed for good
        attempts = [r for r in records if r["event"] == "attempt"]
        # Stopped within the first wave (5 calls at once), not after 6 attempts of every job.
        assert UNREACHABLE_AFTER <= len(attempts) <= UNREACHABLE_AFTER + 5, attempts
        assert not any(r["possibly_billed"] for r in attempts)
        assert _summary(out)["possibly_billed"] == 0 and _summary(out)["jobs_pending"] == count
        assert "0 possibly billed" in first.stderr
        assert _status(out)["possibly_billed"] == 0

        fixed = run_cli(
            "run", str(jobs), "--out", str(out), "--no-progress", env=_env(mock.base_url)
        )
        assert fixed.returncode == 0, fixed.stderr  # no --retry-failed needed
        assert mock.counters().images_generated == count
    assert len(list((out / "images").glob("*.png"))) == count


async def test_a_service_lost_mid_run_stops_the_batch_and_fails_no_job(tmp_path: Path) -> None:
    """The service answered, then went away: a job that cannot connect in max_attempts attempts
    stops the batch (every other job would fail the same way) and stays pending."""
    count = 20
    jobs, out = _jobs(tmp_path, count), tmp_path / "out"
    server = MockServer(MockConfig(image_size=(16, 16), latency=0.05))
    await server.__aenter__()
    base_url = server.base_url
    first_saved = anyio.Event()

    def on_event(event: ev.Event) -> None:
        if isinstance(event, ev.ImageSaved):
            first_saved.set()

    async def stop_the_service() -> None:
        await first_saved.wait()
        await server.__aexit__(None, None, None)

    config = BatchConfig(
        base_url=base_url,
        api_key=Secret("k"),
        concurrency=1,
        rps=None,
        max_attempts=3,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_the_service)
        summary = await run_simulated(jobs, out, config, on_event=on_event)
    assert summary.exit_code == ExitCode.FATAL, summary.stop_reason
    assert summary.stop_reason is not None
    assert f"cannot reach the service at {base_url}" in summary.stop_reason
    assert summary.jobs_done >= 1 and summary.jobs_failed == 0
    assert summary.jobs_pending == count - summary.jobs_done
    attempts = [r for r in journal_records(out) if r["event"] == "attempt"]
    never_sent = [r for r in attempts if r["code"] == "ConnectFailed"]
    assert never_sent and not any(r["possibly_billed"] for r in never_sent)
    # Only a call in flight when the service went away may have been billed.
    assert summary.possibly_billed == len(attempts) - len(never_sent) <= 1


def _aiohttp_errors() -> list[tuple[BaseException, type[TransportError]]]:
    """aiohttp's errors, as a call raises them, and what each proves about the request."""
    import ssl

    import aiohttp
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("dashscope.example", 443, True, True, None, None, None)
    return [
        (
            aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known")),
            ConnectFailed,
        ),
        (aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused")), ConnectFailed),
        (aiohttp.ClientConnectorSSLError(key, ssl.SSLError(1, "wrong version")), ConnectFailed),
        (
            aiohttp.ClientConnectorCertificateError(
                key, ssl.SSLCertVerificationError(1, "certificate verify failed")
            ),
            ConnectFailed,
        ),
        (aiohttp.ConnectionTimeoutError("Connection timeout to host"), ConnectFailed),
        (aiohttp.InvalidUrlClientError("http://127.0.0.1:99999/api"), ConnectFailed),
        (aiohttp.NonHttpUrlClientError("localhost:8080/api"), ConnectFailed),
        # Sent (or maybe sent): the service may have generated and billed the images.
        (aiohttp.ServerDisconnectedError(), ResponseLost),
        (aiohttp.ClientPayloadError("Response payload is not completed"), ResponseLost),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), ResponseLost),
        (TimeoutError(), ResponseLost),
        (ConnectionResetError(104, "Connection reset by peer"), ResponseLost),
    ]


@pytest.mark.parametrize(("error", "expected"), _aiohttp_errors(), ids=lambda v: type(v).__name__)
def test_only_errors_before_sending_are_never_billed(
    error: BaseException, expected: type[TransportError]
) -> None:
    from wanbatch._client import _mapped_errors

    with pytest.raises(TransportError) as caught, _mapped_errors():
        raise error
    assert type(caught.value) is expected
    assert caught.value.possibly_billed is (expected is ResponseLost)


# --------------------------------------------------------------------------- possibly billed
async def test_possibly_billed_counts_each_lost_answer_once_everywhere(tmp_path: Path) -> None:
    """Every call is reset after the service read it: 3 attempts, 3 possibly billed calls, in
    summary.json, the final lines and `wanbatch status` alike (the last one is not counted twice).
    A job that lost every answer fails for good, saying its attempts may have been billed."""
    jobs, out = _jobs(tmp_path, 1), tmp_path / "out"
    async with MockServer(MockConfig(reset_rate=1.0)) as mock:
        config = BatchConfig(base_url=mock.base_url, api_key=Secret("k"), max_attempts=3)
        summary = await run_simulated(jobs, out, config)
        calls = mock.counters().calls
    assert calls == 3
    assert summary.possibly_billed == 3 == _summary(out)["possibly_billed"]
    assert "3 possibly billed" in format_summary(summary, str(out))
    assert (await anyio.to_thread.run_sync(_status, out))["possibly_billed"] == 3
    assert summary.jobs_failed == 1 and summary.exit_code == ExitCode.JOBS_FAILED
    (failure,) = [json.loads(line) for line in (out / "failed.jsonl").read_text().splitlines()]
    assert "3 of the attempts may have been billed" in json.dumps(failure)


async def test_answers_lost_again_and_again_stop_the_buying(tmp_path: Path) -> None:
    """When every answer is lost (each possibly billed), the batch stops after a bounded number
    of calls instead of paying max_attempts calls for every job; the jobs stay pending."""
    count = 30
    jobs, out = _jobs(tmp_path, count), tmp_path / "out"
    async with MockServer(MockConfig(reset_rate=1.0)) as mock:
        config = BatchConfig(
            base_url=mock.base_url,
            api_key=Secret("k"),
            concurrency=2,
            rps=None,
            max_attempts=50,  # the batch's bound, not the job's, is what stops it here
        )
        summary = await run_simulated(jobs, out, config)
        calls = mock.counters().calls
    assert summary.exit_code == ExitCode.FATAL
    assert summary.stop_reason is not None and "lost their answer" in summary.stop_reason
    assert LOST_ANSWERS_TO_STOP <= calls <= LOST_ANSWERS_TO_STOP + 2  # + the calls in flight
    assert summary.possibly_billed == calls
    assert summary.jobs_failed == 0 and summary.jobs_pending == count


@pytest.mark.parametrize(("status", "body"), [(501, "Unsupported method"), (405, "Not Allowed")])
async def test_a_base_url_reaching_another_web_server_stops_and_fails_no_job(
    tmp_path: Path, status: int, body: str
) -> None:
    """A wrong base URL that reaches some web server (not the API): a few answers with no
    sign of the service stop the batch, exit 3; no job fails; the right URL then just works."""
    from aiohttp import web

    calls = 0

    async def other_server(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(status=status, text=f"<html><h1>{body}</h1></html>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", other_server)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    count = 20
    jobs, out = _jobs(tmp_path, count), tmp_path / "out"
    config = BatchConfig(
        base_url=f"http://127.0.0.1:{port}/api/v1",
        api_key=Secret("k"),
        rps=None,
    )
    try:
        summary = await run_simulated(jobs, out, config)
    finally:
        await runner.cleanup()
    assert summary.exit_code == ExitCode.FATAL
    assert summary.stop_reason is not None
    assert "does not answer like the DashScope API" in summary.stop_reason
    assert FOREIGN_ANSWERS_TO_STOP <= calls <= FOREIGN_ANSWERS_TO_STOP + config.concurrency
    assert not [r for r in journal_records(out) if r["event"] == "failed"]
    assert summary.jobs_failed == 0 and summary.jobs_pending == count
    async with MockServer(MockConfig(image_size=(16, 16))) as mock:
        fixed = await run_simulated(
            jobs, out, BatchConfig(base_url=mock.base_url, api_key=Secret("k"), rps=None)
        )
    assert fixed.exit_code == ExitCode.OK and fixed.jobs_done == count


async def test_lost_answers_are_bounded_per_job_across_restarts(tmp_path: Path) -> None:
    """Runs that keep losing answers (reset after the request was read) and are run again and
    again: each job is called blind at most max_attempts times over all runs, then it fails
    (listed in failed.jsonl); later runs call nothing."""
    count, max_attempts = 4, 3
    jobs, out = _jobs(tmp_path, count), tmp_path / "out"
    async with MockServer(MockConfig(reset_rate=1.0)) as mock:
        config = BatchConfig(
            base_url=mock.base_url,
            api_key=Secret("k"),
            concurrency=1,
            rps=None,
            max_attempts=max_attempts,
        )
        calls = []
        for _ in range(4):
            summary = await run_simulated(jobs, out, config)
            calls.append(mock.counters().calls)
    lost: dict[str, int] = {}
    for record in journal_records(out):
        if record["event"] == "attempt" and record["possibly_billed"]:
            lost[record["id"]] = lost.get(record["id"], 0) + 1
    assert max(lost.values()) <= max_attempts and sum(lost.values()) == calls[-1]
    assert calls[-1] == count * max_attempts and calls[-2] == calls[-1]  # nothing more bought
    assert summary.jobs_failed == count and summary.calls == 0
    failed = [r for r in journal_records(out) if r["event"] == "failed"]
    assert sorted(r["id"] for r in failed) == sorted(lost)


# --------------------------------------------------------------------------- cut streams
@pytest.mark.parametrize("cut", ["reset", "stall"])
async def test_a_stream_cut_after_its_image_keeps_the_paid_image(tmp_path: Path, cut: str) -> None:
    count = 3
    jobs, out = _jobs(tmp_path, count), tmp_path / "out"  # no reference image: interleaved
    knobs = MockConfig(cut_stream_after_image=cut, image_size=(16, 16))  # type: ignore[arg-type]
    async with MockServer(knobs) as mock:
        config = BatchConfig(base_url=mock.base_url, api_key=Secret("k"), call_timeout=1.0)
        summary = await run_simulated(jobs, out, config)
        counters = mock.counters()
    assert summary.exit_code == ExitCode.OK, summary.stop_reason
    assert counters.calls == count and counters.images_generated == count  # nothing bought twice
    generated = [r for r in journal_records(out) if r["event"] == "generated"]
    assert len(generated) == count and all("cut" in r for r in generated)
    assert summary.possibly_billed == 0
    for image in sorted((out / "images").glob("*.png")):
        assert png_info(image) == (16, 16)
    assert len(list((out / "images").glob("*.png"))) == count


# --------------------------------------------------------------------------- signals
class _Lines:
    """The lines a subprocess writes to stderr, read on a thread (no blocking reads in tests)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert proc.stderr is not None
        self._stream = proc.stderr
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with self._stream:
            for line in self._stream:
                self._queue.put(line)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} never came; stderr so far: {''.join(self.lines)}")

    def rest(self) -> str:
        """Everything, once the process closed its stderr."""
        self._reader.join(timeout=30)
        while not self._queue.empty():
            self.lines.append(self._queue.get())
        return "".join(self.lines)


def _wait_in_flight(mock: Any, calls: int) -> None:
    deadline = time.monotonic() + 30
    while mock.counters().in_flight < calls:
        assert time.monotonic() < deadline, "the calls never started"
        time.sleep(0.02)


def test_second_ctrl_c_abandons_calls_in_flight_and_counts_them(tmp_path: Path) -> None:
    jobs, out = _jobs(tmp_path, 6), tmp_path / "out"
    args = run_args(jobs, out, "--concurrency", "2")
    with serve_in_thread(MockConfig(image_size=(16, 16), latency=4)) as mock:
        env = {**os.environ, **_env(mock.base_url)}
        proc = subprocess.Popen(args, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
        lines = _Lines(proc)
        try:
            _wait_in_flight(mock, 2)
            proc.send_signal(signal.SIGINT)
            drain = lines.wait_for("waiting for")
            assert "2 calls in flight" in drain and "at most" in drain, drain
            assert "Ctrl-C again abandons them" in drain, drain
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=3)  # well before the 4 s calls could end
        finally:
            proc.kill()
        stderr = lines.rest()
        assert proc.returncode == ExitCode.INTERRUPTED, stderr
        assert "wanbatch: aborted; 2 calls in flight abandoned" in stderr, stderr
        assert "wanbatch: aborted; run the same command again to resume" in stderr, stderr
        assert "wanbatch: interrupted" not in stderr, stderr
        assert "Traceback" not in stderr
        summary = _summary(out)
        assert summary["stop_reason"].startswith("aborted"), summary
        assert summary["possibly_billed"] == 2 == _status(out)["possibly_billed"]
        assert "2 possibly billed" in stderr
        abandoned = [r for r in journal_records(out) if r.get("code") == "Abandoned"]
        assert len(abandoned) == 2 and all(r["possibly_billed"] for r in abandoned)


def test_sighup_drains_like_sigterm(tmp_path: Path) -> None:
    """A closed terminal stops the run as the first Ctrl-C does: calls in flight finish, their
    images are saved, exit 130, and the next run completes."""
    count = 8
    jobs, out = _jobs(tmp_path, count), tmp_path / "out"
    args = run_args(jobs, out, "--concurrency", "2")
    with serve_in_thread(MockConfig(image_size=(16, 16), latency=0.5)) as mock:
        env = {**os.environ, **_env(mock.base_url)}
        proc = subprocess.Popen(args, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
        _wait_in_flight(mock, 1)
        proc.send_signal(signal.SIGHUP)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == ExitCode.INTERRUPTED, stderr
        generated = {r["id"] for r in journal_records(out) if r["event"] == "generated"}
        saved = {r["id"] for r in journal_records(out) if r["event"] == "saved"}
        assert generated and saved == generated
        assert len(generated) < count
        final = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert final.returncode == 0, final.stderr
        assert set(mock.counters().images_by_prompt.values()) == {1}


# --------------------------------------------------------------------------- a broken journal
def _limit_file_size(limit: int) -> Any:
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_a_paid_answer_the_journal_cannot_take_is_counted_and_stops_at_once(
    tmp_path: Path,
) -> None:
    """The journal stops taking bytes (a file-size limit, like a full disk) exactly at the second
    answer's ``generated`` record: that paid answer counts as possibly billed, no further call
    starts, the first job's image is kept, and the next run completes."""
    count = 6
    jobs = _jobs(tmp_path, count)
    args = [*run_args(jobs, tmp_path / "calibration", "--concurrency", "1")]
    args += ["--download-concurrency", "1"]
    with serve_in_thread(MockConfig(image_size=(16, 16), latency=0.3)) as mock:
        env = {**os.environ, **_env(mock.base_url)}
        # A first run elsewhere tells where the second `generated` record starts in a journal.
        subprocess.run(args, env=env, cwd=REPO, capture_output=True, timeout=60, check=True)
        lines = (tmp_path / "calibration" / "journal.jsonl").read_bytes().splitlines(keepends=True)
        events = [json.loads(line)["event"] for line in lines]
        assert events[:4] == ["run", "generated", "saved", "generated"], events
        limit = sum(len(line) for line in lines[:3]) + len(lines[3]) // 2
        mock.reset_counters()

        out = tmp_path / "out"
        args[args.index(str(tmp_path / "calibration"))] = str(out)
        first = subprocess.run(
            args,
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=_limit_file_size(limit),
        )
        assert first.returncode == ExitCode.FATAL, first.stderr
        assert "Traceback" not in first.stderr
        assert "cannot write the journal" in first.stderr, first.stderr
        assert "1 possibly billed" in first.stderr, first.stderr
        assert mock.counters().calls == 2  # stopped at once: no call after the lost answer
        assert [r["event"] for r in journal_records(out)] == ["run", "generated", "saved"]
        png_info(out / "images" / "t00-0.png")  # what was paid for and recorded is kept
        # The torn record of the lost answer counts in the folder too, not only in the summary.
        assert _status(out)["possibly_billed"] == 1 == _summary(out)["possibly_billed"]

        second = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        # The lost answer was bought again (it could not be recorded), and nothing else was.
        assert mock.counters().images_generated == count + 1
    # The next run cut the torn line and wrote it down as what it was: still 1 possibly billed.
    cut = [r for r in journal_records(out) if r.get("code") == "JournalCut"]
    assert [(r["id"], r["possibly_billed"]) for r in cut] == [("t01", True)]
    assert _status(out)["possibly_billed"] == 1


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_closed_terminal_drains_the_run(tmp_path: Path) -> None:
    """The run's controlling terminal goes away (its window closed): the kernel sends SIGHUP and
    every later write to the terminal fails. The progress bar goes quiet and the run drains: the
    calls in flight finish and their images are saved; none is abandoned."""
    import fcntl
    import pty
    import termios

    jobs, out = _jobs(tmp_path, 8), tmp_path / "out"
    with serve_in_thread(MockConfig(image_size=(16, 16), latency=0.5)) as mock:
        master, terminal = pty.openpty()

        def own_the_terminal() -> None:
            os.setsid()
            fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)

        cmd = [*run_args(jobs, out, "--concurrency", "2")]
        cmd.remove("--no-progress")  # the bar draws on the terminal
        proc = subprocess.Popen(
            cmd,
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env={**os.environ, **_env(mock.base_url)},
            cwd=REPO,
            preexec_fn=own_the_terminal,
            pass_fds=(terminal,),
        )
        os.close(terminal)
        try:
            _wait_in_flight(mock, 1)
            os.close(master)  # hang up
            proc.wait(timeout=30)
        finally:
            proc.kill()
        records = journal_records(out)
        assert not [r for r in records if r.get("code") == "Abandoned"], records
        generated = {r["id"] for r in records if r["event"] == "generated"}
        saved = {r["id"] for r in records if r["event"] == "saved"}
        assert generated and saved == generated
        assert _summary(out)["stop_reason"] == "interrupted"
