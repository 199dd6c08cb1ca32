"""The checksummed cache files: what is written reads back; anything else is refused, reported
in one warning line and removed, without reading by a number found in the file."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from array import array
from pathlib import Path

import pytest

from wanbatch._cachefile import MAGIC, read_verified, write_verified


def _sample(path: Path) -> bytes:
    header = {"format": 7, "source": "123:abc", "nested": {"a": [1, 2]}}
    parts = [array("Q", [1, 2**64 - 1, 3]), array("I", [9, 8])]
    assert write_verified(path, header, parts)
    return path.read_bytes()


def test_what_is_written_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    _sample(path)
    read = read_verified(path, "QI")
    assert read is not None
    header, (keys, lines) = read
    assert header == {"format": 7, "source": "123:abc", "nested": {"a": [1, 2]}}
    assert keys.tolist() == [1, 2**64 - 1, 3] and lines.tolist() == [9, 8]
    assert write_verified(path, {"rows": 0})  # no arrays at all
    assert read_verified(path) == ({"rows": 0}, [])
    assert read_verified(tmp_path / "absent") is None


def test_every_cut_and_every_flipped_bit_is_refused_reported_and_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache"
    good = _sample(path)
    damaged = [good[:size] for size in range(len(good))]
    damaged += [
        good[:pos] + bytes([good[pos] ^ 1 << bit]) + good[pos + 1 :]
        for pos in range(len(good))
        for bit in (0, 5)
    ]
    damaged.append(good + b"\0")  # extended
    for data in damaged:
        path.write_bytes(data)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wanbatch"):
            assert read_verified(path, "QI") is None
        assert len(caplog.records) == 1 and str(path) in caplog.text
        assert "rebuilt from the journal" in caplog.text
        assert not path.exists()


def test_other_arrays_than_expected_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    for expected in ("Q", "QQ", "IQ", "QIQ", ""):
        _sample(path)
        assert read_verified(path, expected) is None


def _signed(path: Path, header: object, tail: bytes = b"") -> None:
    """A file whose checksum is right for whatever ``header`` claims."""
    body = json.dumps(header).encode() + b"\n" + tail
    path.write_bytes(MAGIC + b" " + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)


@pytest.mark.parametrize(
    "layout",
    [
        [["Q", 8, 10**12]],  # a huge count: refused before reading, no MemoryError
        [["Q", 8, 2**70]],
        [["Q", 8, -1]],
        [["Q", 8, "1"]],
        [["Q", 4, 1]],
        [["Q", 8]],
        [5],
        ["Q"],
        "QQ",
        None,
    ],
)
def test_array_counts_and_types_out_of_range_are_refused(tmp_path: Path, layout: object) -> None:
    path = tmp_path / "cache"
    _signed(path, {"arrays": layout, "byteorder": sys.byteorder}, b"\0" * 8)
    assert read_verified(path, "Q") is None


@pytest.mark.parametrize("header", [[1, 2], "x", 5, None, "[" * 100_000])
def test_a_header_that_is_not_an_object_is_refused(tmp_path: Path, header: object) -> None:
    path = tmp_path / "cache"
    if isinstance(header, str) and header.startswith("["):
        body = header.encode() + b"\n"  # nested past the JSON parser's depth
        path.write_bytes(MAGIC + b" " + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    else:
        _signed(path, header)
    assert read_verified(path) is None


def test_a_write_that_fails_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "cache"
    assert not write_verified(path, {"a": 1}, [array("I", [1])])
    assert not path.parent.exists()
