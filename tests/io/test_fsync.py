"""GroupSync: files fsynced in batches, errors kept per file, never abandoned half way."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import anyio
import pytest

from wanbatch._fsync import GroupSync

pytestmark = pytest.mark.anyio


def _open_files(folder: Path, count: int) -> list[int]:
    fds = []
    for i in range(count):
        fd = os.open(folder / f"f{i}", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"x" * (i + 1))
        fds.append(fd)
    return fds


async def test_files_that_arrive_during_a_batch_share_the_next_one(tmp_path: Path) -> None:
    syncer = GroupSync()
    fds = _open_files(tmp_path, 10)
    try:
        async with anyio.create_task_group() as tg:
            for fd in fds:
                tg.start_soon(syncer.sync, fd)
    finally:
        for fd in fds:
            os.close(fd)
    # The first file starts a batch alone; the nine queued behind it go in one more hop.
    assert (syncer.batches, syncer.files) == (2, 10)


async def test_one_bad_file_fails_alone(tmp_path: Path) -> None:
    syncer = GroupSync()
    good = _open_files(tmp_path, 2)
    bad = os.open(tmp_path / "bad", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(bad)  # a closed descriptor: fsync fails with EBADF
    outcomes: dict[int, BaseException | None] = {}

    async def sync(fd: int) -> None:
        try:
            await syncer.sync(fd)
        except OSError as exc:
            outcomes[fd] = exc
        else:
            outcomes[fd] = None

    try:
        async with anyio.create_task_group() as tg:
            for fd in (good[0], bad, good[1]):
                tg.start_soon(sync, fd)
    finally:
        for fd in good:
            os.close(fd)
    assert outcomes[good[0]] is None and outcomes[good[1]] is None
    error = outcomes[bad]
    assert isinstance(error, OSError) and error.errno == errno.EBADF


async def test_a_cancelled_caller_still_waits_for_its_fsync(tmp_path: Path) -> None:
    syncer = GroupSync()
    (fd,) = _open_files(tmp_path, 1)
    try:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await syncer.sync(fd)  # shielded: returns only once the fsync is done
            await anyio.lowlevel.checkpoint()  # the cancellation lands here
            pytest.fail("the cancellation was not delivered after the sync")
        assert scope.cancelled_caught
        assert syncer.files == 1 and not syncer._busy  # the batch is over, not abandoned
    finally:
        os.close(fd)


async def test_the_syncer_is_reusable_after_it_went_idle(tmp_path: Path) -> None:
    syncer = GroupSync()
    fds = _open_files(tmp_path, 3)
    try:
        for fd in fds:  # one after the other: each finds the syncer idle
            await syncer.sync(fd)
    finally:
        for fd in fds:
            os.close(fd)
    assert (syncer.batches, syncer.files) == (3, 3)


async def test_a_large_file_gets_a_hop_of_its_own(tmp_path: Path) -> None:
    syncer = GroupSync(solo_bytes=4)
    fds = _open_files(tmp_path, 6)  # sizes 1..6 bytes: three under solo_bytes, three over
    try:
        async with anyio.create_task_group() as tg:
            for size, fd in enumerate(fds, start=1):
                tg.start_soon(syncer.sync, fd, size)
    finally:
        for fd in fds:
            os.close(fd)
    assert syncer.solo == 3  # synced in parallel, each at once
    assert (syncer.batches, syncer.files) == (2, 3)  # the small ones still share hops


async def test_an_executor_that_is_shut_down_fails_the_batch_not_the_syncer(
    tmp_path: Path,
) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.get_running_loop()
    dead = ThreadPoolExecutor(1)
    dead.shutdown()
    loop.set_default_executor(dead)
    syncer = GroupSync(solo_bytes=100)
    (small, large) = _open_files(tmp_path, 2)
    try:
        with pytest.raises(OSError, match="could not be started"):
            await syncer.sync(small)
        with pytest.raises(OSError, match="could not be started"):
            await syncer.sync(large, 1000)
        loop.set_default_executor(ThreadPoolExecutor(2))
        await syncer.sync(small)  # usable again: not stuck "busy" after the failure
    finally:
        os.close(small)
        os.close(large)
    assert syncer.files == 1


async def test_a_native_task_cancel_still_waits_for_the_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    release = threading.Event()
    synced: list[int] = []
    real_fsync = os.fsync

    def blocked_fsync(fd: int) -> None:
        release.wait(timeout=30)
        real_fsync(fd)
        synced.append(fd)

    monkeypatch.setattr(os, "fsync", blocked_fsync)
    syncer = GroupSync()
    first, second = _open_files(tmp_path, 2)
    try:
        running = asyncio.ensure_future(syncer.sync(first))
        for _ in range(3):
            await asyncio.sleep(0)
        queued = asyncio.ensure_future(syncer.sync(second))  # waits behind the running batch
        for _ in range(3):
            await asyncio.sleep(0)
        queued.cancel()  # asyncio's own cancellation: an anyio shield does not stop it
        for _ in range(3):
            await asyncio.sleep(0)
        assert not queued.done()  # held back: its fd is still to be synced
        release.set()
        await running
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert synced == [first, second]  # the cancelled caller returned only after its fsync
    finally:
        release.set()
        os.close(first)
        os.close(second)
