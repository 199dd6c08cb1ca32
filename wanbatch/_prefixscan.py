"""The job file's done prefix: found at the end of a run, checked at the start of the next.

:func:`scan_done_prefix` finds the file's leading run of done, unchanged lines (a
:class:`~wanbatch._doneprefix.DonePrefix`, kept in the output folder by the journal);
:func:`usable_prefix` tells whether a kept prefix still describes this file, journal state and
run defaults, so that a resume over a million done lines need not read them again.

Stage (jobs): imports the line reader (:mod:`wanbatch._lines`), the pure core and the stdlib.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from typing import Any, BinaryIO

from ._donejobs import DoneLines
from ._doneprefix import DonePrefix
from ._errors import JobFileError
from ._ids import JobIds, has_capital
from ._jobinput import JobInput
from ._lines import open_job_file, read_lines
from ._state import RunState

__all__ = ["scan_done_prefix", "usable_prefix"]


def _salt_digest(salt: str) -> str:
    # "ids-nocase": a prefix holds no id with a capital letter (see scan_done_prefix); one
    # written before that rule has another digest, so it is not used.
    return hashlib.blake2b(b"ids-nocase\0" + salt.encode(), digest_size=16).hexdigest()


def _digest_prefix(fh: BinaryIO, size: int) -> str:
    digest = hashlib.blake2b(digest_size=16)
    return digest.hexdigest() if _hash_range(fh, 0, size, digest) else ""


def _remap_first(
    first: array[int], old_keys: array[int], new_keys: array[int]
) -> array[int] | None:
    """``first`` (by done index among ``old_keys``) re-indexed by ``new_keys`` (a superset: a
    done job stays done); None if an old key is missing."""
    out = array("I", bytes(4 * len(new_keys)))
    j, n = 0, len(new_keys)
    for i, key in enumerate(old_keys):
        while j < n and new_keys[j] < key:
            j += 1
        if j == n or new_keys[j] != key:
            return None
        out[j] = first[i]
    return out


def scan_done_prefix(
    path: str | os.PathLike[str],
    state: RunState,
    salt: str,
    *,
    start: DonePrefix | None = None,
    start_keys: array[int] | None = None,
    spec: JobInput | None = None,
) -> DonePrefix | None:
    """Find the job file's leading run of done, unchanged lines (see :class:`DonePrefix`).

    Returns ``None`` when the state's journal source is unknown, nothing is done, or the file
    cannot be read. Stops at the first line with work, a bad line, a duplicate id or an id
    with a capital letter.

    ``start``: the prefix the run began with (:func:`usable_prefix` accepted it) and
    ``start_keys`` the done jobs' keys then. Its lines are still done (a done job stays done),
    so the scan goes on from its end, once its bytes are seen unchanged: at the end of a resume
    over a million done lines, a digest and a re-index instead of a check of each line (~4 s).
    """
    if state.source is None or not len(state.done):
        return None
    if spec is not None and not spec.plain(path):  # a table or a sweep: no prefix cache
        return None
    spath = os.fspath(path)
    opened = open_job_file(spath)
    if isinstance(opened, JobFileError):
        return None
    done = DoneLines(state, salt)
    first: array[int] | None = None
    if start is not None and start_keys is not None and start.salt == _salt_digest(salt):
        first = _remap_first(start.first, start_keys, state.done.arrays()[0])
    digest = hashlib.blake2b(digest_size=16)
    with opened as fh:
        begin, jobs = (1, 0), 0
        if first is not None and start is not None:
            same = _hash_range(fh, 0, start.size, digest)
            if same and digest.copy().hexdigest() == start.digest:
                begin, jobs = (start.next_line, start.size), start.jobs
            else:  # the file changed under the run: check every line
                first, digest = None, hashlib.blake2b(digest_size=16)
        ids = JobIds(done, first)
        seen: list[Any] = [0, 0, b""]
        end: tuple[int, int] | None = None
        fh.seek(begin[1])  # read_lines seeks only to a non-zero offset
        last: tuple[int, int] = (0, -1)  # line number and done index of the last done line
        for lineno, item in read_lines(fh, spath, seen, start=begin, done=done):
            # An id with a capital letter ends the prefix too: a later line may hold it in
            # other case, which only a reading of this line can tell (see JobIds.add_case).
            if not isinstance(item, int) or has_capital(seen[2]) or ids.add_done(item, lineno):
                end = (lineno, seen[1])
                break
            jobs += 1
            last = (lineno, item)
        if end is None:  # the whole file: the next line would start at its end
            size = fh.seek(0, os.SEEK_END)
            end = (max(seen[0], begin[0] - 1) + 1, size)
            fh.seek(max(0, size - 1))
            if seen[0] and size and fh.read(1) != b"\n":
                # The last line has no line break: text appended later would continue it, so
                # the prefix ends where that line starts (a prefix ends at a line break).
                end = (seen[0], seen[1])
                if last[0] == seen[0]:
                    jobs -= 1
                    ids.first[last[1]] = 0
        if jobs == 0:
            return None
        if not _hash_range(fh, begin[1] if first is not None else 0, end[1], digest):
            return None
    return DonePrefix(
        state.source, _salt_digest(salt), end[1], end[0], jobs, digest.hexdigest(), ids.first
    )


def _hash_range(fh: BinaryIO, start: int, end: int, digest: Any) -> bool:
    """Feed bytes ``[start, end)`` of ``fh`` to ``digest``; False if the file is shorter."""
    fh.seek(start)
    left = end - start
    while left > 0:
        block = fh.read(min(left, 1 << 20))
        if not block:
            return False
        digest.update(block)
        left -= len(block)
    return True


def usable_prefix(
    prefix: DonePrefix | None,
    path: str | os.PathLike[str],
    state: RunState,
    salt: str,
    spec: JobInput | None = None,
) -> DonePrefix | None:
    """``prefix`` if it describes this job file, journal state and defaults, else ``None``
    (always None unless ``spec`` reads the file as plain JSONL)."""
    if (
        prefix is None
        or (spec is not None and not spec.plain(path))
        or prefix.source != state.source
        or prefix.salt != _salt_digest(salt)
        or len(prefix.first) != len(state.done)
    ):
        return None
    try:
        with open(path, "rb") as fh:
            same = _digest_prefix(fh, prefix.size) == prefix.digest
    except OSError:
        return None
    return prefix if same else None
