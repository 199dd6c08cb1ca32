"""Duplicate job ids: each id kept in a few bytes, so a million-line file needs no more.

Pure: stdlib only.
"""

from __future__ import annotations

from array import array

__all__ = ["IdSet"]


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
