"""sha256 of large downloads in a helper process: off the event loop and off the GIL.

Hashing on the event loop costs 0.57 ms per MB of the loop's one core (SHA-NI, 1.75 GB/s),
which on 5 MB images held download throughput to 67-76 % of the floor loop's
(``benchmarks/bench_download.py``). A worker thread does not help: every update takes the GIL
back from the loop. So a helper process (:mod:`wanbatch._hashworker`) reads each large temp
file back from the page cache 1 MiB behind the writer and answers the digest once the file is
complete, while the fsync runs: the hash runs on another core, in parallel with the download.

Correctness never depends on the helper. If it cannot start, dies, stalls or answers an error,
the file is hashed here instead, read back from disk (:func:`hash_file`), and the helper is not
used again in this run. Small files are always hashed inline: for them a message round trip
costs more than it saves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["FileHasher", "FollowedFile", "hash_file"]

log = logging.getLogger("wanbatch")

#: Files with a known length at least this large go to the helper.
MIN_BYTES = 1 << 20
#: The helper is told of progress every this many bytes written.
PROGRESS_STEP = 1 << 20
WORKER = Path(__file__).with_name("_hashworker.py")


def hash_file(path: Path, size: int) -> str:
    """sha256 of the first ``size`` bytes of ``path``; ``OSError`` if it holds fewer."""
    digest = hashlib.sha256()
    view = memoryview(bytearray(1 << 20))
    done = 0
    with open(path, "rb", buffering=0) as fh:
        while done < size:
            n = fh.readinto(view[: min(len(view), size - done)])
            if not n:
                raise OSError(f"{path} has {done} bytes, {size} were written")
            digest.update(view[:n])
            done += n
    return digest.hexdigest()


def _helper_env() -> dict[str, str]:
    """The helper's environment: what a Python process needs to start, nothing else."""
    keep = (
        "PATH",
        "SYSTEMROOT",  # Windows
        "LD_LIBRARY_PATH",  # a shared libpython outside the default paths
        "DYLD_LIBRARY_PATH",
        "TMPDIR",
        "TEMP",
        "TMP",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
    )
    return {name: os.environ[name] for name in keep if name in os.environ}


def _is_sha256_hex(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


class FileHasher:
    """One helper process for a run's large downloads, started at first use.

    Bound to the event loop it is first used on (the engine makes one per run and closes it
    with :meth:`aclose`).
    """

    def __init__(
        self,
        *,
        min_bytes: int = MIN_BYTES,
        argv: list[str] | None = None,
        stall_timeout: float = 30.0,
    ) -> None:
        self.min_bytes = min_bytes
        #: Seconds (plus 1 s per 20 MB) an answer may take before the helper counts as stalled.
        self.stall_timeout = stall_timeout
        self._argv = argv or [sys.executable, "-I", str(WORKER)]
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None
        self._pending: dict[int, asyncio.Future[str]] = {}
        self._keys = itertools.count()
        self._broken = False
        self._closed = False
        #: Digests the helper gave, and files hashed in-process because it could not.
        self.answered = 0
        self.fallbacks = 0

    def wants(self, length: int | None) -> bool:
        """Whether a download of ``length`` bytes (None: unknown) should use the helper."""
        return length is not None and length >= self.min_bytes and not self._broken

    async def follow(self, path: Path, fd: int) -> FollowedFile:
        """Start following ``path``, open for writing as ``fd``, about to be written in order.

        The helper gets the absolute path as file-system bytes and the file's device and inode,
        and refuses a file it opens under that name that is not this one.
        """
        await self._start()
        key = next(self._keys)
        followed = FollowedFile(self, key, path)
        try:
            info = os.fstat(fd)
            name = os.fsencode(path.absolute()).hex()  # noqa: ASYNC240 - getcwd, no disk wait
        except OSError as exc:  # the optional path must not fail the download: hash it here
            self._give_up(f"cannot name the file for the hash helper ({exc}); hashing in-process")
            return followed
        self._send("O", key, name, info.st_dev, info.st_ino)
        return followed

    @property
    def usable(self) -> bool:
        return not self._broken and self._proc is not None

    async def _start(self) -> None:
        if self._proc is not None or self._broken:
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._proc is not None or self._broken or self._closed:
                return
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self._argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=_helper_env(),  # nothing of the run's: no API key in its environment
                    # Same session as wanbatch (its own would be a scheduler autogroup of its
                    # own, preempting the event loop: 4-stream downloads fell from 81-90 % to
                    # 64-77 % of the floor). It ignores SIGINT and SIGTERM sent to the group:
                    # stopping is the engine's; it ends with its input, also if wanbatch dies.
                )
            except Exception as exc:  # an optional helper must never fail a download: OSError,
                # NotImplementedError on an event loop without subprocesses, ...
                self._give_up(f"cannot start the hash helper ({exc!r}); hashing in-process")
                return
            self._proc = proc
            self._reader = asyncio.get_running_loop().create_task(self._read_answers(proc))
            if self._closed:  # aclose() ran while it started: end it at once
                self._give_up("closed")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(proc.wait(), 5)

    async def _read_answers(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            async for line in proc.stdout:
                key, hexdigest, *why = json.loads(line)
                if hexdigest is not None and not _is_sha256_hex(hexdigest):
                    raise ValueError(f"not a sha256: {hexdigest!r}")
                waiter = self._pending.pop(key, None)
                if waiter is None or waiter.done():
                    continue
                if hexdigest is None:
                    log.debug("hash helper: %s; hashing in-process", why[0] if why else "failed")
                    waiter.set_exception(OSError(why[0] if why else "the hash helper failed"))
                else:
                    self.answered += 1
                    waiter.set_result(hexdigest)
        except Exception as exc:  # a garbled answer (or anything else): stop trusting it
            self._give_up(f"the hash helper answered garbage ({exc}); hashing in-process")
            return
        if not self._closed:
            self._give_up("the hash helper exited; hashing in-process")
        self._fail_pending()

    def _send(self, *message: object) -> None:
        proc = self._proc
        if self._broken or proc is None or proc.stdin is None or proc.stdin.is_closing():
            self._give_up("the hash helper is gone; hashing in-process")
            return
        proc.stdin.write(json.dumps(message).encode() + b"\n")

    def _expect(self, key: int) -> asyncio.Future[str]:
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if self._broken:
            waiter.set_exception(OSError("the hash helper is gone"))
        else:
            self._pending[key] = waiter
        return waiter

    def _give_up(self, why: str) -> None:
        if not self._broken and not self._closed:
            log.warning(why)
        self._broken = True
        self._fail_pending()
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for waiter in pending.values():
            if not waiter.done():
                waiter.set_exception(OSError("the hash helper is gone"))

    async def aclose(self) -> None:
        """End the helper (it exits at the end of its input) and wait for it."""
        self._closed = True
        proc, reader = self._proc, self._reader
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(asyncio.TimeoutError):  # stuck in the kernel: leave it
                await asyncio.wait_for(proc.wait(), 5)
        if reader is not None:
            reader.cancel()  # waited for, not awaited: a cancellation of our caller stays theirs
            await asyncio.wait([reader], timeout=5)
        self._fail_pending()


class FollowedFile:
    """One file the helper hashes while it is written (see :meth:`FileHasher.follow`)."""

    def __init__(self, hasher: FileHasher, key: int, path: Path) -> None:
        self._hasher = hasher
        self._key = key
        self._path = path
        self._told = 0
        self._answer: asyncio.Future[str] | None = None

    def due(self, size: int) -> bool:
        """Whether the helper should hear of ``size`` bytes written (every ``PROGRESS_STEP``)."""
        return size - self._told >= PROGRESS_STEP

    def written(self, size: int) -> None:
        """``size`` bytes are in the file (flushed to the OS): the helper may hash that far."""
        self._hasher._send("U", self._key, size)
        self._told = size

    def complete(self, size: int) -> None:
        """The file is complete at ``size`` bytes (flushed): ask for its digest."""
        self._answer = self._hasher._expect(self._key)
        self._hasher._send("E", self._key, size)

    async def sha256(self, size: int) -> str:
        """The file's digest, from the helper; on any failure of it, hashed here from disk.

        Raises:
            OSError: the file cannot be read back here, or holds fewer than ``size`` bytes.
        """
        if self._answer is None:
            self.complete(size)
        assert self._answer is not None
        try:
            # Generous: the helper reads from the page cache at GB/s; a stalled one is killed.
            limit = self._hasher.stall_timeout + size / 20e6
            return await asyncio.wait_for(asyncio.shield(self._answer), limit)
        except asyncio.TimeoutError:
            self._hasher._give_up("the hash helper stalled; hashing in-process")
            if self._answer.done() and not self._answer.cancelled():
                self._answer.exception()  # failed by the give-up: retrieved, not logged
        except OSError:
            pass  # the helper failed on this file or died: the fallback below answers
        self._hasher.fallbacks += 1
        return await asyncio.to_thread(hash_file, self._path, size)

    def abandon(self) -> None:
        """The download failed: the helper can drop the file (no answer is awaited)."""
        if self._answer is not None and self._answer.done():
            if not self._answer.cancelled():
                self._answer.exception()  # a failed answer nobody awaits: retrieved, not logged
            return  # answered: the helper has already dropped the file
        self._hasher._pending.pop(self._key, None)
        if self._answer is not None:
            self._answer.cancel()
        if self._hasher.usable:
            self._hasher._send("X", self._key)
