"""Done jobs, packed: :class:`DoneJobs` (a few bytes a finished job), and :class:`DoneLines`,
which tells from a raw job line's bytes that a resume may pass over it (:func:`line_hash`).

Pure: stdlib only, no I/O.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

from wanbatch._lifecycle import Status

if TYPE_CHECKING:
    from wanbatch._state import RunState

__all__ = ["SORT_RUN", "DoneJobs", "DoneLines", "line_hash", "short_fp"]


def _id_key(job_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(job_id.encode(), digest_size=8).digest(), "big")


def line_hash(text: str, salt: str) -> int:
    """32-bit hash of a job line and the run's defaults (never 0, which means unknown).

    A resume passes over a done job whose line hashes the same without parsing it again.
    """
    digest = hashlib.blake2b(f"{salt}\0{text}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") or 1


#: The first ``"id": "..."`` of a raw job line. It may sit inside another string: harmless,
#: since a match also needs the hash of the whole line to equal the one recorded for that id.
_ID_FIELD = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9][A-Za-z0-9._-]{0,127})"')


class DoneLines:
    """Which job lines a resume passes over unread: done, and generated from this very line.

    The check runs on the raw bytes of a line (no UTF-8 decode, no JSON parse): the id found by a
    regex, its packed entry in :class:`DoneJobs` (one hash, one bisect) and the line's hash
    against the one its ``generated`` record holds. A job with a newer record that is not a
    failure (it is being generated again) is not passed over. Indices (``0 <= i < len(self)``)
    name done jobs, so a reader can tell duplicate ids apart with an array instead of a set.
    """

    __slots__ = ("_jobs", "_keys", "_lines", "_salted")

    def __init__(self, state: RunState, salt: str) -> None:
        self._keys, _vals, self._lines = state.done.arrays()
        self._jobs = state.jobs
        self._salted = hashlib.blake2b(f"{salt}\0".encode(), digest_size=4)

    def __len__(self) -> int:
        return len(self._keys)

    def match(self, raw: bytes) -> int:
        """The done index of a line (bytes, without its line break) if it needs no work, else -1.

        ``line_hash(text, salt)`` of the decoded line is the hash of exactly these bytes.
        """
        m = _ID_FIELD.search(raw)
        if m is None:
            return -1
        job_id = m.group(1)
        keys = self._keys
        key = int.from_bytes(hashlib.blake2b(job_id, digest_size=8).digest(), "big")
        i = bisect_left(keys, key)
        if i == len(keys) or keys[i] != key:
            return -1
        recorded = self._lines[i]
        if recorded == 0:
            return -1
        h = self._salted.copy()
        h.update(raw)
        if (int.from_bytes(h.digest(), "big") or 1) != recorded:
            return -1
        if self._jobs:
            newer = self._jobs.get(job_id.decode("ascii"))
            if newer is not None and newer.status is not Status.FAILED:
                return -1
        return i

    @staticmethod
    def job_id(raw: bytes) -> str:
        """The id :meth:`match` read from a line it matched (ASCII by the id rule)."""
        m = _ID_FIELD.search(raw)
        return m.group(1).decode("ascii") if m else "?"

    def index(self, job_id: str) -> int:
        """The done index of ``job_id`` (changed or not), or -1 when it is not done."""
        keys = self._keys
        key = _id_key(job_id)
        i = bisect_left(keys, key)
        return i if i < len(keys) and keys[i] == key else -1


def short_fp(fingerprint: str) -> int:
    """28 bits of a request fingerprint (a sha256 hex digest): enough to notice a change."""
    try:
        return int(fingerprint[:7], 16)
    except ValueError:
        return 0


#: Entries sorted at once when freezing; larger tails are sorted in runs and merged, so the
#: transient memory of a sort stays small next to the packed arrays themselves.
SORT_RUN = 1 << 16


def _sorted_indices(keys: array[int], start: int, stop: int) -> Iterator[int]:
    """Indices ``start..stop`` of ``keys`` by key; equal keys keep their order (stable)."""
    if stop - start <= SORT_RUN:
        return iter(sorted(range(start, stop), key=keys.__getitem__))
    runs = [
        array("I", sorted(range(lo, min(stop, lo + SORT_RUN)), key=keys.__getitem__))
        for lo in range(start, stop, SORT_RUN)
    ]
    # (key, index) pairs: ties go to the lower index, so the merge is stable too.
    merged = heapq.merge(*(((keys[i], i) for i in run) for run in runs))
    return (i for _, i in merged)


class DoneJobs:
    """Finished jobs, packed in two arrays: 16 bytes a job instead of a JobState and its id.

    A resumed run over a million done jobs must fit in memory and start fast, and a done job is
    final: all the plan and the views need of it is its request fingerprint, the journal line of
    its generation and its image count. Ids are kept as 64-bit hashes (a false match among a
    million ids has odds of about 1 in 10^7). Appends are O(1); the first lookup sorts once.
    """

    __slots__ = ("_keys", "_lines", "_sorted", "_vals")

    # ``_sorted`` is the length of the sorted, duplicate-free prefix of the arrays; appends go
    # after it. Freezing sorts only the appended part and merges, so a resume that loaded a
    # snapshot (all sorted) and replayed a few new records never sorts a million entries again.

    def __init__(self) -> None:
        self._keys = array("Q")
        self._vals = array("Q")
        self._lines = array("I")  # line_hash() of the job line, 0 if unknown
        self._sorted = 0

    def add(self, job_id: str, fingerprint: str, gen_line: int, images: int, line: int = 0) -> None:
        """Record a finished job (a later record for the same id wins)."""
        packed = (
            (min(gen_line, 0xFFFFFFFF)) | (min(images, 15) << 32) | (short_fp(fingerprint) << 36)
        )
        self._keys.append(_id_key(job_id))
        self._vals.append(packed)
        self._lines.append(line & 0xFFFFFFFF)

    def _freeze(self) -> None:
        keys, vals, lines = self._keys, self._vals, self._lines
        done = self._sorted
        if done == len(keys):
            return
        # Later records win: sort the appended part (stable), keep each key's last entry, then
        # merge it into the sorted prefix, where an appended entry replaces an equal key.
        tail = _sorted_indices(keys, done, len(keys))
        new_keys, new_vals, new_lines = array("Q"), array("Q"), array("I")

        def put(i: int) -> None:
            if new_keys and new_keys[-1] == keys[i]:
                new_vals[-1], new_lines[-1] = vals[i], lines[i]
            else:
                new_keys.append(keys[i])
                new_vals.append(vals[i])
                new_lines.append(lines[i])

        i = 0
        for j in tail:
            while i < done and keys[i] <= keys[j]:
                put(i)
                i += 1
            put(j)
        while i < done:
            put(i)
            i += 1
        self._keys, self._vals, self._lines = new_keys, new_vals, new_lines
        self._sorted = len(new_keys)

    def _index(self, job_id: str) -> int:
        self._freeze()
        key = _id_key(job_id)
        i = bisect_left(self._keys, key)
        return i if i < len(self._keys) and self._keys[i] == key else -1

    def unchanged(self, job_id: str, line: int) -> bool:
        """True when the job is done and was generated from this very job line."""
        i = self._index(job_id)
        return i >= 0 and self._lines[i] != 0 and self._lines[i] == line & 0xFFFFFFFF

    def get(self, job_id: str) -> tuple[int, int, int] | None:
        """(short fingerprint, generation line, images) of a finished job, or None."""
        i = self._index(job_id)
        if i < 0:
            return None
        packed = self._vals[i]
        return packed >> 36, packed & 0xFFFFFFFF, (packed >> 32) & 15

    def settled_gen_line(self, job_id: str) -> int:
        """The generation line of a job among those sorted already (0: not among them).

        No sort: a replay asks this before each record, between appends
        (:class:`wanbatch._touchlog.TouchLog`).
        """
        key = _id_key(job_id)
        i = bisect_left(self._keys, key, 0, self._sorted)
        if i < self._sorted and self._keys[i] == key:
            return self._vals[i] & 0xFFFFFFFF
        return 0

    def __contains__(self, job_id: object) -> bool:
        return isinstance(job_id, str) and self.get(job_id) is not None

    def __len__(self) -> int:
        self._freeze()
        return len(self._keys)

    def arrays(self) -> tuple[array[int], array[int], array[int]]:
        """The packed arrays, frozen: keys, values, line hashes (a snapshot writes them as is)."""
        self._freeze()
        return self._keys, self._vals, self._lines

    @classmethod
    def from_arrays(cls, keys: array[int], vals: array[int], lines: array[int]) -> DoneJobs:
        """Rebuild from :meth:`arrays` (as read back from a snapshot)."""
        if not len(keys) == len(vals) == len(lines):
            raise ValueError("snapshot arrays differ in length")
        done = cls()
        done._keys, done._vals, done._lines = keys, vals, lines
        done._sorted = len(keys)
        return done

    def to_bytes(self) -> bytes:
        """The packed arrays (for a snapshot): 20 bytes a job."""
        self._freeze()
        return self._keys.tobytes() + self._vals.tobytes() + self._lines.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> DoneJobs:
        """Rebuild from :meth:`to_bytes` output."""
        count, rest = divmod(len(data), 20)
        if rest:
            raise ValueError("snapshot arrays are cut short")
        done = cls()
        done._keys.frombytes(data[: 8 * count])
        done._vals.frombytes(data[8 * count : 16 * count])
        done._lines.frombytes(data[16 * count :])
        done._sorted = count  # snapshots are written frozen
        return done

    def images(self) -> int:
        """Images of all finished jobs."""
        self._freeze()
        return sum((v >> 32) & 15 for v in self._vals)
