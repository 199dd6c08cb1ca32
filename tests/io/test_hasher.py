"""FileHasher: large files' sha256 from a real helper process, and every way back to in-process."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
from pathlib import Path

import pytest

from wanbatch import _hashworker
from wanbatch._hasher import PROGRESS_STEP, FileHasher, hash_file

pytestmark = pytest.mark.anyio

CHUNK = 256 * 1024


def _data(size: int, seed: int = 1) -> bytes:
    return hashlib.shake_256(seed.to_bytes(4, "big")).digest(size)


async def _write_followed(hasher: FileHasher, path: Path, data: bytes) -> str:
    """Write ``data`` the way download_image does and return the digest the hasher gives."""
    with open(path, "wb") as fh:
        followed = await hasher.follow(path, fh.fileno())
        size = 0
        for start in range(0, len(data), CHUNK):
            chunk = data[start : start + CHUNK]
            fh.write(chunk)
            size += len(chunk)
            if followed.due(size):
                fh.flush()
                followed.written(size)
        fh.flush()
        followed.complete(size)
        return await followed.sha256(size)


async def test_the_helper_hashes_a_file_as_it_is_written(tmp_path: Path) -> None:
    data = _data(3 * PROGRESS_STEP + 12345)
    hasher = FileHasher()
    try:
        digest = await _write_followed(hasher, tmp_path / "a.part", data)
        assert digest == hashlib.sha256(data).hexdigest()
        # A second file through the same helper.
        other = _data(PROGRESS_STEP // 2, seed=2)
        assert await _write_followed(hasher, tmp_path / "b.part", other) == (
            hashlib.sha256(other).hexdigest()
        )
        assert (hasher.answered, hasher.fallbacks) == (2, 0)  # both from the helper
    finally:
        await hasher.aclose()
    assert hasher._proc is not None and hasher._proc.returncode == 0  # exited at end of input


async def test_the_helper_outlives_a_ctrl_c_or_sigterm_to_the_group(tmp_path: Path) -> None:
    """A first Ctrl-C (or SIGTERM) lets downloads in flight finish: their hashes too."""
    import signal

    hasher = FileHasher()
    try:
        first = _data(PROGRESS_STEP, seed=3)
        assert await _write_followed(hasher, tmp_path / "a.part", first) == (
            hashlib.sha256(first).hexdigest()
        )
        assert hasher._proc is not None
        hasher._proc.send_signal(signal.SIGINT)
        hasher._proc.send_signal(signal.SIGTERM)
        second = _data(PROGRESS_STEP, seed=4)
        assert await _write_followed(hasher, tmp_path / "b.part", second) == (
            hashlib.sha256(second).hexdigest()
        )
        assert (hasher.answered, hasher.fallbacks) == (2, 0)
        assert hasher._proc.returncode is None
    finally:
        await hasher.aclose()


async def test_only_large_files_of_known_length_go_to_the_helper() -> None:
    hasher = FileHasher(min_bytes=1000)
    assert hasher.wants(1000) and hasher.wants(10**9)
    assert not hasher.wants(999)
    assert not hasher.wants(None)  # no Content-Length: hashed inline
    await hasher.aclose()  # never started: nothing to end
    assert hasher._proc is None


async def test_a_helper_killed_mid_file_falls_back_to_hashing_here(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _data(2 * PROGRESS_STEP + 7)
    path = tmp_path / "a.part"
    hasher = FileHasher()
    try:
        with open(path, "wb") as fh:
            followed = await hasher.follow(path, fh.fileno())
            fh.write(data[:PROGRESS_STEP])
            fh.flush()
            followed.written(PROGRESS_STEP)
            assert hasher._proc is not None
            hasher._proc.kill()
            await hasher._proc.wait()
            fh.write(data[PROGRESS_STEP:])
            fh.flush()
            with caplog.at_level(logging.WARNING, logger="wanbatch"):
                digest = await followed.sha256(len(data))
        assert digest == hashlib.sha256(data).hexdigest()
        assert not hasher.wants(10**9)  # not used again in this run
        assert (hasher.answered, hasher.fallbacks) == (0, 1)
        assert "hash helper" in caplog.text
    finally:
        await hasher.aclose()


async def test_a_helper_that_cannot_start_falls_back(tmp_path: Path) -> None:
    data = _data(PROGRESS_STEP + 1)
    hasher = FileHasher(argv=[str(tmp_path / "no-such-python")])
    digest = await _write_followed(hasher, tmp_path / "a.part", data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert not hasher.wants(10**9)
    assert hasher.fallbacks == 1
    await hasher.aclose()


async def test_closing_while_the_helper_starts_ends_it(tmp_path: Path) -> None:
    import asyncio

    hasher = FileHasher()
    starting = asyncio.ensure_future(hasher._start())
    await asyncio.sleep(0)  # the start is under way (spawning), then aclose() runs
    await hasher.aclose()
    await starting
    assert hasher._proc is None or hasher._proc.returncode is not None
    data = _data(PROGRESS_STEP, seed=8)  # a closed hasher still gives right digests
    assert await _write_followed(hasher, tmp_path / "a.part", data) == (
        hashlib.sha256(data).hexdigest()
    )


@pytest.mark.parametrize(
    "script",
    [
        "import sys\nfor line in sys.stdin: print('not json', flush=True)",  # garbled answers
        "import sys, json\nfor line in sys.stdin:\n"
        "    m = json.loads(line)\n"
        "    if m[0] == 'E': print(json.dumps([m[1], 'abc']), flush=True)",  # not a sha256
        "import sys\nsys.stdin.read()",  # never answers (stalled)
        "pass",  # exits at once
    ],
    ids=["garbled", "not-a-digest", "stalled", "gone"],
)
async def test_a_misbehaving_helper_is_dropped_and_the_file_hashed_here(
    tmp_path: Path, script: str
) -> None:
    data = _data(PROGRESS_STEP + 99)
    hasher = FileHasher(argv=[sys.executable, "-c", script], stall_timeout=0.5)
    try:
        digest = await _write_followed(hasher, tmp_path / "a.part", data)
        assert digest == hashlib.sha256(data).hexdigest()
        assert not hasher.wants(10**9)
        assert (hasher.answered, hasher.fallbacks) == (0, 1)
    finally:
        await hasher.aclose()
    assert hasher._proc is not None and hasher._proc.returncode is not None


async def test_a_file_shorter_than_written_is_an_error_not_a_digest(tmp_path: Path) -> None:
    data = _data(PROGRESS_STEP + 5)
    path = tmp_path / "a.part"
    path.write_bytes(data)
    hasher = FileHasher()
    try:
        with open(path, "rb") as fh:
            followed = await hasher.follow(path, fh.fileno())
        followed.complete(len(data) + 10)  # claims ten bytes the file does not have
        with pytest.raises(OSError, match="bytes"):
            await followed.sha256(len(data) + 10)
        assert hasher.usable  # an error about one file does not retire the helper
    finally:
        await hasher.aclose()


def _open_fds(pid: int) -> int | None:
    fds = Path(f"/proc/{pid}/fd")
    return len(list(fds.iterdir())) if fds.exists() else None


async def test_an_abandoned_file_leaves_the_helper_usable(tmp_path: Path) -> None:
    hasher = FileHasher()
    try:
        first = _data(PROGRESS_STEP, seed=6)
        await _write_followed(hasher, tmp_path / "first.part", first)
        assert hasher._proc is not None
        fds_before = _open_fds(hasher._proc.pid)
        with open(tmp_path / "a.part", "wb") as fh:
            followed = await hasher.follow(tmp_path / "a.part", fh.fileno())
            fh.write(_data(PROGRESS_STEP))
            fh.flush()
            followed.written(PROGRESS_STEP)
            followed.abandon()  # the download failed
        data = _data(PROGRESS_STEP * 2, seed=5)
        assert await _write_followed(hasher, tmp_path / "b.part", data) == (
            hashlib.sha256(data).hexdigest()
        )
        assert hasher.usable and not hasher._pending
        assert (hasher.answered, hasher.fallbacks) == (2, 0)  # no answer for the abandoned one
        # Answers come in order: b's means the helper has read the "X" before it, and closed
        # the abandoned file (no descriptor left open in the helper).
        assert _open_fds(hasher._proc.pid) == fds_before
    finally:
        await hasher.aclose()


async def test_abandoning_after_a_failed_answer_logs_nothing(tmp_path: Path) -> None:
    """A download failing (or cancelled) after the helper was given up: no stray error."""
    import asyncio
    import gc

    errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    hasher = FileHasher()
    try:
        with open(tmp_path / "a.part", "wb") as fh:
            followed = await hasher.follow(tmp_path / "a.part", fh.fileno())
            fh.write(b"x")
            fh.flush()
            followed.complete(1)
            hasher._give_up("test")  # e.g. another file's answer stalled during this fsync
            followed.abandon()  # then this file's fsync failed
        del followed
        gc.collect()
        await asyncio.sleep(0)
        assert errors == []
    finally:
        await hasher.aclose()


async def test_the_helper_gets_no_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-must-not-leak-0123456789")
    hasher = FileHasher()
    try:
        with open(tmp_path / "a.part", "wb") as fh:
            await hasher.follow(tmp_path / "a.part", fh.fileno())
        assert hasher._proc is not None
        environ = Path(f"/proc/{hasher._proc.pid}/environ")
        if environ.exists():
            assert b"sk-must-not-leak" not in environ.read_bytes()
        assert "sk-must-not-leak" not in " ".join(hasher._argv)
    finally:
        await hasher.aclose()


def test_hash_file_reads_exactly_size_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = _data(3_000_001)
    path.write_bytes(data + b"tail")
    assert hash_file(path, len(data)) == hashlib.sha256(data).hexdigest()
    with pytest.raises(OSError, match="has 3000005 bytes"):
        hash_file(path, len(data) + 100)


def test_the_worker_protocol(tmp_path: Path) -> None:
    """The helper's loop, fed lines directly: answers, errors, and forgotten files."""
    good, short = tmp_path / "good", tmp_path / "short"
    data = _data(2 * _hashworker.READ_SIZE + 3)
    good.write_bytes(data)
    short.write_bytes(b"abc")

    def opening(key: int, path: Path, identity: Path | None = None) -> list[object]:
        info = os.stat(identity or path)
        return ["O", key, os.fsencode(path).hex(), info.st_dev, info.st_ino]

    lines = [
        json.dumps(m) + "\n"
        for m in (
            opening(1, good),
            ["U", 1, _hashworker.READ_SIZE],
            opening(2, short),
            ["O", 3, os.fsencode(tmp_path / "missing").hex(), 0, 0],
            opening(4, good),
            ["X", 4],  # forgotten: no answer
            opening(5, good, identity=short),  # the name now holds another file
            ["E", 2, 10],
            ["E", 1, len(data)],
            ["E", 3, 1],
            ["E", 4, 1],  # unknown by now: no answer
            ["E", 5, 1],
        )
    ]
    out = io.StringIO()
    _hashworker.serve(lines, out)
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert answers[0][:2] == [2, None] and "has 3 bytes, 10 were written" in answers[0][2]
    assert answers[1] == [1, hashlib.sha256(data).hexdigest()]
    assert answers[2][:2] == [3, None] and "cannot open" in answers[2][2]
    assert answers[3][:2] == [5, None] and "not the file being written" in answers[3][2]
    assert len(answers) == 4


def test_the_worker_imports_nothing_of_wanbatch() -> None:
    """Run as ``python -I <file>``: standard library only, so it starts in milliseconds."""
    source = Path(_hashworker.__file__).read_text(encoding="utf-8")
    assert "wanbatch" not in "".join(
        line for line in source.splitlines() if line.startswith(("import", "from"))
    )
    assert os.access(_hashworker.__file__, os.R_OK)
