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
        followed = await hasher.follow(path)
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
        assert hasher.usable  # the helper answered: no fallback was needed
        # A second file through the same helper.
        other = _data(PROGRESS_STEP // 2, seed=2)
        assert await _write_followed(hasher, tmp_path / "b.part", other) == (
            hashlib.sha256(other).hexdigest()
        )
    finally:
        await hasher.aclose()
    assert hasher._proc is not None and hasher._proc.returncode == 0  # exited at end of input


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
            followed = await hasher.follow(path)
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
        assert "hash helper" in caplog.text
    finally:
        await hasher.aclose()


async def test_a_helper_that_cannot_start_falls_back(tmp_path: Path) -> None:
    data = _data(PROGRESS_STEP + 1)
    hasher = FileHasher(argv=[str(tmp_path / "no-such-python")])
    digest = await _write_followed(hasher, tmp_path / "a.part", data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert not hasher.wants(10**9)
    await hasher.aclose()


@pytest.mark.parametrize(
    "script",
    [
        "import sys\nfor line in sys.stdin: print('not json', flush=True)",  # garbled answers
        "import sys\nsys.stdin.read()",  # never answers (stalled)
        "pass",  # exits at once
    ],
    ids=["garbled", "stalled", "gone"],
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
    finally:
        await hasher.aclose()
    assert hasher._proc is not None and hasher._proc.returncode is not None


async def test_a_file_shorter_than_written_is_an_error_not_a_digest(tmp_path: Path) -> None:
    data = _data(PROGRESS_STEP + 5)
    path = tmp_path / "a.part"
    path.write_bytes(data)
    hasher = FileHasher()
    try:
        followed = await hasher.follow(path)
        followed.complete(len(data) + 10)  # claims ten bytes the file does not have
        with pytest.raises(OSError, match="bytes"):
            await followed.sha256(len(data) + 10)
    finally:
        await hasher.aclose()


async def test_an_abandoned_file_leaves_the_helper_usable(tmp_path: Path) -> None:
    hasher = FileHasher()
    try:
        with open(tmp_path / "a.part", "wb") as fh:
            followed = await hasher.follow(tmp_path / "a.part")
            fh.write(_data(PROGRESS_STEP))
            fh.flush()
            followed.written(PROGRESS_STEP)
            followed.abandon()  # the download failed
        data = _data(PROGRESS_STEP * 2, seed=5)
        assert await _write_followed(hasher, tmp_path / "b.part", data) == (
            hashlib.sha256(data).hexdigest()
        )
        assert hasher.usable and not hasher._pending
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
    lines = [
        json.dumps(m) + "\n"
        for m in (
            ["O", 1, str(good)],
            ["U", 1, _hashworker.READ_SIZE],
            ["O", 2, str(short)],
            ["O", 3, str(tmp_path / "missing")],
            ["O", 4, str(good)],
            ["X", 4],  # forgotten: no answer
            ["E", 2, 10],
            ["E", 1, len(data)],
            ["E", 3, 1],
            ["E", 4, 1],  # unknown by now: no answer
        )
    ]
    out = io.StringIO()
    _hashworker.serve(lines, out)
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert answers[0][:2] == [2, None] and "has 3 bytes, 10 were written" in answers[0][2]
    assert answers[1] == [1, hashlib.sha256(data).hexdigest()]
    assert answers[2][:2] == [3, None] and "cannot open" in answers[2][2]
    assert len(answers) == 3


def test_the_worker_imports_nothing_of_wanbatch() -> None:
    """Run as ``python -I <file>``: standard library only, so it starts in milliseconds."""
    source = Path(_hashworker.__file__).read_text(encoding="utf-8")
    assert "wanbatch" not in "".join(
        line for line in source.splitlines() if line.startswith(("import", "from"))
    )
    assert os.access(_hashworker.__file__, os.R_OK)
