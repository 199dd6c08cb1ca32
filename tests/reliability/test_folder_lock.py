"""One run per output folder: a second run is refused at once (exit 2) naming the holder, a
dry run and ``status`` still work, and the lock of a ``kill -9``-ed run does not block."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.conftest import CANARY_KEY, REPO, run_args, write_jobs
from wanbatch import BatchConfig, Secret, run_batch
from wanbatch.mock import MockConfig, MockServer, serve_in_thread


@contextlib.contextmanager
def _silent_service() -> Iterator[tuple[str, threading.Event, list[socket.socket]]]:
    """A loopback server that takes connections and never answers: a call to it hangs (the
    run holding the folder meanwhile). Yields its base URL, an event set on the first
    connection, and the connections taken."""
    listener = socket.create_server(("127.0.0.1", 0))
    connected = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                held.append(conn)
                connected.set()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api/v1", connected, held
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_second_run_is_refused_naming_the_holder_and_a_killed_holder_does_not_block(
    tmp_path: Path,
) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{"id": f"j{i}", "prompt": f"lock {i}"} for i in range(3)]
    )
    out = tmp_path / "out"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    base_env["DASHSCOPE_API_KEY"] = CANARY_KEY
    with _silent_service() as (silent_url, connected, held):
        env = {**base_env, "DASHSCOPE_HTTP_BASE_URL": silent_url}
        holder = subprocess.Popen(
            run_args(jobs, out, "--concurrency", "1"),
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # The holder's call is on the wire (it took the lock before any call).
            assert connected.wait(timeout=60), "the holder never called"
            second = subprocess.run(
                run_args(jobs, out), env=env, cwd=REPO, capture_output=True, text=True, timeout=60
            )
            assert second.returncode == 2, second.stderr
            assert f"pid {holder.pid}" in second.stderr and str(out) in second.stderr
            assert "Traceback" not in second.stderr
            assert len(held) == 1  # the second run sent nothing

            # Reading needs no lock: a dry run and `status` answer while the holder runs.
            dry = subprocess.run(
                [*run_args(jobs, out), "--dry-run"],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert dry.returncode == 0, dry.stderr
            status = subprocess.run(
                [*run_args(jobs, out)[:3], "status", str(out)],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert status.returncode == 0, status.stderr
        finally:
            holder.kill()
            holder.wait(timeout=30)
        assert holder.returncode == -9
    # The dead holder's pid is still written in the lock file: it must not block.
    assert f"pid={holder.pid}" in (out / ".lock").read_text()
    with serve_in_thread(MockConfig(image_size=(24, 24))) as mock:
        env = {**base_env, "DASHSCOPE_HTTP_BASE_URL": mock.base_url}
        third = subprocess.run(
            run_args(jobs, out), env=env, cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert third.returncode == 0, third.stderr
        assert sorted(p.name for p in (out / "images").glob("*.png")) == [
            "j0-0.png",
            "j1-0.png",
            "j2-0.png",
        ]
        assert f"pid={holder.pid}" not in (out / ".lock").read_text()


@pytest.mark.anyio
async def test_two_runs_in_one_process_cannot_share_a_folder(tmp_path: Path) -> None:
    """POSIX locks belong to the process, so the same process is refused by its registry."""
    from wanbatch import FolderInUse

    jobs = write_jobs(tmp_path / "jobs.jsonl", [{"id": "a", "prompt": "in-process lock"}])
    out = tmp_path / "out"
    async with MockServer(MockConfig(image_size=(24, 24), latency=0.5)) as mock:
        config = BatchConfig(base_url=mock.base_url, api_key=Secret("k"), rps=None)
        result: dict[str, object] = {}
        async with anyio.create_task_group() as tg:

            async def first() -> None:
                result["first"] = await run_batch(jobs, out, config)

            tg.start_soon(first)
            while mock.counters().in_flight == 0:
                await anyio.sleep(0.01)
            with pytest.raises(FolderInUse) as refused:
                await run_batch(jobs, out, config)
            assert refused.value.pid == os.getpid() and str(out) in str(refused.value)
        # The refused run did not drop the first one's lock, and the lock is free afterwards.
        summary = await run_batch(jobs, out, config)
        assert summary.exit_code == 0 and summary.jobs_done == 1


@pytest.mark.anyio
async def test_a_lock_file_that_is_a_symlink_is_refused_not_followed(tmp_path: Path) -> None:
    from wanbatch import OutputError

    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    jobs = write_jobs(tmp_path / "jobs.jsonl", [{"id": "a", "prompt": "symlink lock"}])
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").symlink_to(victim)
    config = BatchConfig(base_url="http://127.0.0.1:9/api/v1", api_key=Secret("k"))
    with pytest.raises(OutputError, match="lock file"):
        await run_batch(jobs, out, config)
    assert victim.read_text() == "do not touch"
