"""Reading a job file as lines of bytes, in constant memory.

UTF-8 with or without BOM, LF or CRLF, blank lines passed over; a line past
:data:`MAX_LINE_BYTES` is refused with its size and never held in memory whole; a line the
journal's done lines match (done and unchanged) comes out undecoded, as its done index.

I/O helper of the jobs stage (:mod:`wanbatch._loader`, :mod:`wanbatch._validate`,
:mod:`wanbatch._prefixscan`): stdlib and the pure core only.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any, BinaryIO

from ._donejobs import DoneLines
from ._errors import JobFileError

__all__ = ["MAX_LINE_BYTES", "open_job_file", "read_lines"]

_BOM = b"\xef\xbb\xbf"
#: The longest job line read: four reference images of 10 MB inline (as base64, 56 MB) fit in
#: it. A longer line is refused with its size, and never held in memory whole.
MAX_LINE_BYTES = 64 * 1024 * 1024


def job_file_problem(path: str) -> JobFileError | None:
    """Why the job file (of any format) cannot be read, or None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return JobFileError(path, 0, "file", "no such file")
    except OSError as exc:
        return JobFileError(path, 0, "file", f"cannot read: {exc.strerror}")
    if stat.S_ISDIR(st.st_mode):
        return JobFileError(path, 0, "file", "is a directory; give a job file")
    return None


def open_job_file(path: str) -> BinaryIO | JobFileError:
    """Open the job file, or the error explaining why it cannot be."""
    problem = job_file_problem(path)
    if problem is not None:
        return problem
    try:
        return open(path, "rb")  # closed by the caller's `with`
    except OSError as exc:
        return JobFileError(path, 0, "file", f"cannot read: {exc.strerror}")


def read_lines(
    fh: BinaryIO,
    path: str,
    seen: list[Any] | None = None,
    start: tuple[int, int] = (1, 0),
    done: DoneLines | None = None,
) -> Iterator[tuple[int, str | JobFileError | int]]:
    """Yield ``(lineno, text)`` for each non-blank line, or a decoding error for that line.

    Reads the binary file one buffered line at a time (constant memory: a line longer than
    :data:`MAX_LINE_BYTES` comes out as an error with its size, and is passed over in blocks
    without being held whole), strips a UTF-8 BOM on line 1 and a trailing LF or CRLF.
    ``seen[0]`` is kept at the last line number read (blank lines included), ``seen[1]`` at
    that line's byte offset, ``seen[2]`` at the bytes of the last line passed over as done.
    ``start`` (line number, byte offset) begins the reading at a line found by an earlier pass.
    A line ``done`` matches (done and unchanged) comes out as its done index (an ``int``),
    undecoded.
    """
    seen = seen if seen is not None else [0, 0, b""]
    while len(seen) < 3:
        seen.append(b"" if len(seen) == 2 else 0)
    match = done.match if done is not None and len(done) else None
    lineno, offset = start
    lineno -= 1
    if offset:
        fh.seek(offset)
    readline = fh.readline
    while raw := readline(_READ_LIMIT):
        lineno += 1
        seen[0], seen[1] = lineno, offset  # this line's number and byte offset
        offset += len(raw)
        if len(raw) > MAX_LINE_BYTES and len(raw.rstrip(b"\r\n")) > MAX_LINE_BYTES:
            whole = raw.endswith(b"\n")
            size = len(raw) - (len(raw) - len(raw.rstrip(b"\r\n")) if whole else 0)
            del raw
            yield lineno, _too_long(path, lineno, size, None if whole else fh)
            offset = fh.tell()
            continue
        if lineno == 1 and raw.startswith(_BOM):
            raw = raw[3:]
        if match is not None:
            # The resume fast path: a done line is a hash and a bisect, not a decode and parse.
            body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
            index = match(body)
            if index >= 0:
                seen[2] = body  # for a duplicate-id error naming the id
                yield lineno, index
                continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield lineno, JobFileError.not_utf8(path, lineno, raw, exc)
            continue
        text = text.rstrip("\r\n")
        if text and not text.isspace():
            yield lineno, text


#: Bytes one read of a line may return: the longest line, its CRLF, and one byte to tell.
_READ_LIMIT = MAX_LINE_BYTES + 3


def _too_long(path: str, lineno: int, size: int, rest: BinaryIO | None) -> JobFileError:
    """The error for a line over :data:`MAX_LINE_BYTES` whose first ``size`` bytes were read;
    reads the ``rest`` of it (if not None) to its end in 1 MiB blocks, keeping none."""
    if rest is not None:  # blocks and a search (readline() is slow on a line this long)
        while block := rest.read(1 << 20):
            end = block.find(b"\n")
            if end >= 0:
                size += end - (end > 0 and block[end - 1] == 13)  # the line break is not the line's
                rest.seek(end + 1 - len(block), os.SEEK_CUR)  # the next line starts there
                break
            size += len(block)
    human = f"{size / (1 << 30):.1f} GiB" if size >= 1000 << 20 else f"{size / (1 << 20):.1f} MiB"
    return JobFileError(
        path,
        lineno,
        "line",
        f"is {size:,} bytes ({human}); a job line may be at most "
        f"{MAX_LINE_BYTES // 1_048_576} MiB (room for four 10 MB reference images inline)",
    )
