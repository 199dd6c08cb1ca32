"""Shared helpers of the benchmark scripts (not a benchmark itself).

- :class:`MockProcess`: ``python -m wanbatch.mock`` in its own process, with its counters and
  ``/mock/config`` over loopback HTTP, so the mock's CPU never mixes with the client's.
- :func:`run_measured`: run a client subprocess and read *its own* rusage with ``os.wait4``
  (CPU seconds and peak RSS of that child alone, the per-child form of
  ``getrusage(RUSAGE_CHILDREN)``).
- job files: editing-mode jobs with one small reference PNG as a data URI (``n=1``), so wanbatch,
  the floor loop and the official SDK all send the same one-image request.
- :func:`table`: print rows as a Markdown table.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY = sys.executable
KEY = "sk-bench-0123456789"


def png_rgb(width: int, height: int, rgb: tuple[int, int, int] = (90, 140, 200)) -> bytes:
    """A valid solid RGB PNG (no alpha), built with zlib only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


#: 240x240 is the smallest reference image the API accepts; a few hundred bytes as a data URI.
REF_URI = "data:image/png;base64," + base64.b64encode(png_rgb(240, 240)).decode("ascii")


def job_id(prefix: str, index: int) -> str:
    return f"{prefix}{index:07d}"


def job_line(index: int, prefix: str = "j") -> str:
    """One editing-mode job: prompt + one reference image; n defaults to 1 in wanbatch."""
    return json.dumps(
        {"id": job_id(prefix, index), "prompt": f"bench prompt {index}", "images": [REF_URI]},
        separators=(",", ":"),
    )


def write_jobs(path: Path, count: int, *, start: int = 0, prefix: str = "j") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(start, start + count):
            fh.write(job_line(i, prefix) + "\n")
    return path


# ------------------------------------------------------------------------------------ mock
class MockProcess:
    """The mock server in its own process (``python -m wanbatch.mock --port 0 ...``)."""

    def __init__(self, **knobs: Any) -> None:
        argv = [PY, "-m", "wanbatch.mock", "--port", "0"]
        for name, value in knobs.items():
            if value is None:
                continue
            flag = "--" + name.replace("_", "-")
            if isinstance(value, tuple):
                value = f"{value[0]}x{value[1]}"
            argv += [flag, str(value)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.close()
            raise RuntimeError(f"the mock did not start: {self.base_url!r}")
        self.origin = self.base_url.removesuffix("/api/v1")

    def _request(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.origin + path,
            data=data,
            method="GET" if data is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read() or b"null")

    def counters(self) -> dict[str, Any]:
        return self._request("/mock/counters")

    def configure(self, **knobs: Any) -> Any:
        return self._request("/mock/config", knobs)

    def reset_counters(self) -> None:
        self._request("/mock/reset-counters", {})

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> MockProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InFlightSampler:
    """Polls the mock's ``in_flight`` every ``interval`` seconds on a thread."""

    def __init__(self, mock: MockProcess, interval: float = 0.1) -> None:
        self.mock = mock
        self.interval = interval
        #: (t, in_flight, throttled, calls)
        self.samples: list[tuple[float, int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                c = self.mock.counters()
                self.samples.append(
                    (time.monotonic(), int(c["in_flight"]), int(c["throttled"]), int(c["calls"]))
                )
            except OSError:
                pass
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> InFlightSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------------------- children
@dataclass
class Measured:
    """A finished child process and its own resource usage."""

    returncode: int
    stdout: str
    stderr: str
    wall: float
    cpu_user: float
    cpu_sys: float
    maxrss_mb: float
    started: float  # time.monotonic() at spawn

    @property
    def cpu(self) -> float:
        return self.cpu_user + self.cpu_sys

    def last_json(self) -> dict[str, Any]:
        for line in reversed(self.stdout.splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(
            f"child printed no JSON (exit {self.returncode}):\n{self.stdout[-2000:]}\n"
            f"{self.stderr[-3000:]}"
        )


def run_measured(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 900.0,
    cwd: Path | None = None,
) -> Measured:
    """Run ``argv``, wait with ``os.wait4`` and return its output, wall time and rusage."""
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"wb-bench-{os.getpid()}-{time.time_ns()}"
    with open(f"{out_path}.out", "w+") as out, open(f"{out_path}.err", "w+") as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=err, env=env, cwd=cwd or REPO, text=True
        )
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    for suffix in (".out", ".err"):
        Path(f"{out_path}{suffix}").unlink(missing_ok=True)
    return Measured(
        proc.returncode,
        stdout,
        stderr,
        wall,
        usage.ru_utime,
        usage.ru_stime,
        usage.ru_maxrss / 1024.0,  # KiB on Linux
        started,
    )


def wanbatch_child(
    jobs: Path,
    out: Path,
    base_url: str,
    *,
    concurrency: int,
    rps: float | None = None,
    download_concurrency: int = 8,
    profile: Path | None = None,
    dry_run: bool = False,
    timeout: float = 900.0,
    no_fsync: bool = False,
    **config: Any,
) -> Measured:
    """``run_batch`` in a fresh subprocess (see ``_child_wanbatch.py``).

    ``no_fsync`` (a diagnostic, never a mode of wanbatch): the child replaces ``os.fsync`` with
    a no-op, to split wanbatch's CPU into the durability it buys and everything else.
    """
    spec = {
        "no_fsync": no_fsync,
        "jobs": str(jobs),
        "out": str(out),
        "base_url": base_url,
        "concurrency": concurrency,
        "rps": rps,
        "download_concurrency": download_concurrency,
        "profile": str(profile) if profile else None,
        "dry_run": dry_run,
        "config": config,
    }
    return run_measured([PY, str(HERE / "_child_wanbatch.py"), json.dumps(spec)], timeout=timeout)


# ---------------------------------------------------------------------------------- output
def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} "
        f"{platform.release()}, {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def count_pngs(folder: Path) -> tuple[int, int]:
    """(files, valid PNGs) under ``folder``: valid = PNG signature, IHDR first, IEND last."""
    files = valid = 0
    if not folder.is_dir():
        return 0, 0
    for path in folder.iterdir():
        if not path.is_file():
            continue
        files += 1
        data = path.read_bytes()
        if (
            data.startswith(b"\x89PNG\r\n\x1a\n")
            and data[12:16] == b"IHDR"
            and data.endswith(b"\x00\x00\x00\x00IEND\xaeB`\x82")
        ):
            valid += 1
    return files, valid
