"""Duplicate job ids: each id kept in a few bytes, so a million-line file needs no more.

- :class:`IdSet`, ids as 64-bit hashes in open-addressing arrays;
- :class:`JobIds`, the ids of one job file: done ids by their done index, the rest hashed;
  ids that differ only in letter case count as duplicates (they name the same files on macOS
  and Windows);
- :func:`check_new_id` and :func:`check_done_id`, the duplicate error a line gets, if any.

Pure: stdlib only.
"""

from __future__ import annotations

import json
from array import array

from ._donejobs import DoneLines
from ._errors import JobFileError
from ._jobs import Job, check_id

__all__ = ["IdSet", "JobIds", "check_done_id", "check_new_id", "given_id", "has_capital"]


class IdSet:
    """A set of job ids kept as 64-bit hashes in open-addressing arrays, with each id's line.

    12 bytes per slot (about 24 MB for a million ids), where a ``dict`` of ``str`` would take
    well over 100 MB. Two different ids share a hash with odds around 1e-8 in a million-line
    file (and the hash is salted per process, so such a false duplicate would not repeat).
    """

    __slots__ = ("_count", "_keys", "_limit", "_lines", "_mask")

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._count = 0
        self._alloc(1 << max(4, (capacity - 1).bit_length()))

    def _alloc(self, size: int) -> None:
        self._keys = array("Q", bytes(8 * size))
        self._lines = array("I", bytes(4 * size))
        self._mask = size - 1
        self._limit = size * 7 // 10

    def __len__(self) -> int:
        """Number of distinct id hashes held."""
        return self._count

    @staticmethod
    def key(job_id: str) -> int:
        """The id's nonzero 64-bit hash (0 marks an empty slot)."""
        h = hash(job_id) & 0xFFFF_FFFF_FFFF_FFFF
        return h or 1

    def add(self, job_id: str, line: int = 0) -> int:
        """Add ``job_id`` seen on ``line``; return 0 if new, else the line it was first seen on
        (``line`` 0 is stored as 0, so pass real line numbers to tell "new" from "seen")."""
        return self.add_key_line((hash(job_id) & 0xFFFF_FFFF_FFFF_FFFF) or 1, line)

    def add_key_line(self, h: int, line: int) -> int:
        """Add a hash from :meth:`key`; 0 if new, else the first line stored for it (>= 1)."""
        keys, mask = self._keys, self._mask
        i = h & mask
        while True:
            k = keys[i]
            if k == 0:
                keys[i] = h
                self._lines[i] = line
                self._count += 1
                if self._count > self._limit:
                    self._grow()
                return 0
            if k == h:
                return self._lines[i] or 1
            i = (i + 1) & mask

    def __contains__(self, job_id: object) -> bool:
        """True if ``job_id``'s hash was added."""
        return isinstance(job_id, str) and self.get(job_id) > 0

    def get(self, job_id: str) -> int:
        """The line ``job_id`` was first added with (>= 1), or 0 when it was not added."""
        h = self.key(job_id)
        keys, mask = self._keys, self._mask
        i = h & mask
        while True:
            k = keys[i]
            if k == 0:
                return 0
            if k == h:
                return self._lines[i] or 1
            i = (i + 1) & mask

    def _grow(self) -> None:
        old_keys, old_lines = self._keys, self._lines
        self._alloc(2 * len(old_keys))
        keys, lines, mask = self._keys, self._lines, self._mask
        for h, line in zip(old_keys, old_lines, strict=True):
            if h:  # re-insert; the keys are distinct, so only empty slots are looked for
                i = h & mask
                while keys[i]:
                    i = (i + 1) & mask
                keys[i] = h
                lines[i] = line


class JobIds:
    """Duplicate-id detection: done ids by their done index (4 bytes each), the rest hashed.

    Ids that differ only in letter case (``Fox``, ``fox``) are duplicates too: they name the
    same image files on macOS and Windows. Those are found through :meth:`add_case`: only ids
    with a capital letter are kept a second time, lowercased.
    """

    __slots__ = ("_done", "_folded", "_other", "first")

    def __init__(self, done: DoneLines | None, first: array[int] | None = None) -> None:
        self._done = done if done is not None and len(done) else None
        if first is not None and self._done is not None and len(first) == len(self._done):
            self.first = array("I", first)  # a copy: the caller's stays as it was
        else:
            self.first = array("I", bytes(4 * len(self._done))) if self._done else array("I")
        self._other = IdSet()
        self._folded = IdSet(16)  # lowercased ids that had a capital letter

    def add_done(self, index: int, lineno: int) -> int:
        """Count done index ``index`` seen on ``lineno``: 0 if new, else its first line."""
        first = self.first[index]
        if first:
            return first
        self.first[index] = lineno
        return 0

    def add(self, job_id: str, lineno: int) -> int:
        """Count ``job_id`` seen on ``lineno``: 0 if new, else the line it was first seen on."""
        if self._done is not None:
            index = self._done.index(job_id)
            if index >= 0:
                return self.add_done(index, lineno)
        return self._other.add(job_id, lineno)

    def add_case(self, job_id: str, lineno: int) -> int:
        """After :meth:`add` found ``job_id`` new: 0, or the first line of an id that differs
        from it only in letter case."""
        if job_id.islower():  # the common case: no capital letter
            return self._folded.get(job_id) if len(self._folded) else 0
        folded = job_id.lower()
        if folded == job_id:  # no letter at all
            return self._folded.get(folded) if len(self._folded) else 0
        first = self._folded.add(folded, lineno)
        if first:
            return first
        # The all-lowercase spelling, on a line before (counted as written, done or not).
        if self._done is not None:
            index = self._done.index(folded)
            if index >= 0:
                return self.first[index]
        return self._other.get(folded)


def has_capital(raw_line: bytes) -> bool:
    """True when the id of a done line (its raw bytes) has a capital letter."""
    job_id = DoneLines.job_id(raw_line)
    return job_id != job_id.lower()


def _dup_error(path: str, lineno: int, first: int, job_id: str, derived: bool) -> JobFileError:
    hint = " (derived from the request: the two lines ask the same)" if derived else ""
    message = f"duplicate id '{job_id}' (first on line {first}){hint}"
    return JobFileError(path, lineno, "id", message)


def _case_error(path: str, lineno: int, first: int, job_id: str) -> JobFileError:
    message = (
        f"duplicate id '{job_id}' in other letter case (first on line {first}): ids that "
        "differ only in case name the same image files on macOS and Windows"
    )
    return JobFileError(path, lineno, "id", message)


def check_new_id(
    ids: JobIds, path: str, lineno: int, job_id: str, derived: bool = False
) -> JobFileError | None:
    """Count ``job_id`` on ``lineno``; the duplicate error if an earlier line has it."""
    first = ids.add(job_id, lineno)
    if first:
        return _dup_error(path, lineno, first, job_id, derived)
    first = ids.add_case(job_id, lineno)
    return _case_error(path, lineno, first, job_id) if first else None


def check_done_id(
    ids: JobIds, path: str, lineno: int, index: int, raw: bytes
) -> JobFileError | None:
    """:func:`check_new_id` for a done line passed over undecoded (``raw``: its bytes)."""
    first = ids.add_done(index, lineno)
    job_id = DoneLines.job_id(raw)
    if first:
        return _dup_error(path, lineno, first, job_id, False)
    first = ids.add_case(job_id, lineno)
    return _case_error(path, lineno, first, job_id) if first else None


def given_id(text: str, job: Job | None) -> str | None:
    """The id a line that has errors gives, if it gives a valid one (for duplicate checks)."""
    if job is not None:
        return job.id
    try:
        data = json.loads(text)
    except ValueError:
        return None
    job_id = data.get("id") if isinstance(data, dict) else None
    return job_id if isinstance(job_id, str) and check_id(job_id) is None else None
