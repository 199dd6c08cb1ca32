"""Group fsync: make many files durable with one worker-thread hop per batch, not one per file.

A thread hop per image (``run_in_executor(None, os.fsync, fd)``) was the largest single cost of
wanbatch's hot path: a thread wake, two GIL hand-offs and a loop wake-up per file, and GIL
contention that slowed every other system call of the loop (``benchmarks/bench_overhead.py``).
Here small files that finish while a batch is syncing wait for the next batch, so under load
one hop serves many files. A large file (``solo_bytes``, 1 MiB) gets a hop of its own at once:
its fsync is long next to a hop, and fsyncs of large files in parallel let the disk overlap
them (5 MB images synced one after the other in a batch ran at 66-71 % of the rate of parallel
fsyncs, ``benchmarks/bench_download.py``).

Same guarantee as a plain fsync: :meth:`GroupSync.sync` returns only once *that* file's fsync
returned, and raises *that* file's error.
"""

from __future__ import annotations

import asyncio
import os

import anyio

__all__ = ["GroupSync"]


def _fsync_all(fds: list[int]) -> list[OSError | None]:
    errors: list[OSError | None] = []
    for fd in fds:
        try:
            os.fsync(fd)
        except OSError as exc:
            errors.append(exc)
        else:
            errors.append(None)
    return errors


async def _wait_even_if_cancelled(done: asyncio.Future[None]) -> None:
    """Await ``done``; a native ``Task.cancel()`` (which an anyio shield does not stop) is held
    back until ``done`` is over, then re-raised: the caller never closes a file under its fsync.
    """
    cancelled: asyncio.CancelledError | None = None
    while not done.done():
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError as exc:
            if done.cancelled():
                raise
            cancelled = exc
        except BaseException:
            break  # done failed: result() below raises its error
    if cancelled is not None:
        raise cancelled
    done.result()


class GroupSync:
    """fsync files in batches on a worker thread; one batch in flight at a time.

    Bound to the event loop it is first used on (the engine makes one per run).
    """

    def __init__(self, solo_bytes: int = 1 << 20) -> None:
        self.solo_bytes = solo_bytes
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._busy = False
        #: Batches and the files in them, and large files synced alone (tests, benchmarks).
        self.batches = 0
        self.files = 0
        self.solo = 0

    async def sync(self, fd: int, size: int = 0) -> None:
        """fsync ``fd`` (``size`` bytes); raise its ``OSError``.

        Shielded: the caller waits for the fsync even when cancelled, so the file stays open
        until it is done.
        """
        loop = asyncio.get_running_loop()
        if size >= self.solo_bytes:
            try:
                done = loop.run_in_executor(None, os.fsync, fd)
            except RuntimeError as exc:  # the executor is shut down
                raise OSError(f"fsync could not be started: {exc}") from exc
            self.solo += 1
        else:
            done = loop.create_future()
            self._waiting.append((fd, done))
            if not self._busy:
                self._start(loop)
        with anyio.CancelScope(shield=True):
            await _wait_even_if_cancelled(done)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a batch of all waiting files; never raises (a failure goes to their futures)."""
        batch, self._waiting = self._waiting, []
        try:
            running = loop.run_in_executor(None, _fsync_all, [fd for fd, _ in batch])
        except RuntimeError as exc:  # the executor is shut down: fail this batch, stay usable
            for _, done in batch:
                if not done.done():
                    done.set_exception(OSError(f"fsync could not be started: {exc}"))
            return
        self._busy = True
        self.batches += 1
        self.files += len(batch)
        running.add_done_callback(lambda f: self._finished(loop, batch, f))

    def _finished(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[int, asyncio.Future[None]]],
        running: asyncio.Future[list[OSError | None]],
    ) -> None:
        try:
            errors: list[OSError | None] = running.result()
        except BaseException as exc:  # the executor itself failed (e.g. shut down)
            errors = [OSError(f"fsync did not run: {exc!r}") for _ in batch]
        for (_, done), error in zip(batch, errors, strict=True):
            if done.done():
                continue
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
        self._busy = False
        if self._waiting:
            self._start(loop)
