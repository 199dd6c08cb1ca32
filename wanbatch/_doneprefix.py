"""The job file's done prefix: what a resume remembers of the file's leading done lines.

Pure: the record and the check of its fields. :mod:`wanbatch._prefixscan` finds a prefix in the job
file; :mod:`wanbatch._prefixcache` keeps it in the output folder between runs.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

__all__ = ["DonePrefix", "check_prefix"]


@dataclass(frozen=True, slots=True)
class DonePrefix:
    """The job file's leading lines that are all done and unchanged, as the end of a run found.

    A resume over a million done lines would otherwise check each line again (a hash and a
    bisect, ~4 us a line); with this it hashes the prefix's bytes in blocks (~1 GB/s) and,
    when they are the same, starts reading where the prefix ends. Valid only for the journal
    state it was taken from (``source``, :attr:`~wanbatch._state.RunState.source`) and the same
    run defaults (``salt``).
    """

    source: str
    salt: str  #: blake2b of the run defaults' JSON (the line hashes' salt)
    size: int  #: bytes of the prefix (the next line starts there)
    next_line: int  #: line number of the first line after the prefix
    jobs: int  #: done lines in the prefix
    digest: str  #: blake2b of the prefix's bytes
    #: For each done index, the line number of the prefix line that holds it (0: none): what
    #: duplicate-id detection needs of the prefix, 4 bytes a done job.
    first: array[int]


#: Line numbers are kept in 4-byte arrays; offsets and counts read back stay below 2**63.
_LINE_LIMIT = 1 << 32
_SIZE_LIMIT = 1 << 63


def check_prefix(prefix: DonePrefix) -> DonePrefix:
    """``prefix`` (as read back from its cache file) if its fields have their types and
    ranges, else ValueError: a damaged file must not make a resume start at a wrong line."""
    text = (prefix.source, prefix.salt, prefix.digest)
    if not all(isinstance(value, str) for value in text):
        raise ValueError("source, salt or digest is not text")
    counts = (prefix.size, prefix.next_line, prefix.jobs)
    if not all(type(value) is int for value in counts):
        raise ValueError("size, next_line or jobs is not an integer")
    # Each done job is a line of at least one byte, and the first line is line 1.
    if not (0 < prefix.jobs < prefix.next_line < _LINE_LIMIT and prefix.jobs <= prefix.size):
        raise ValueError("jobs, next_line or size out of range")
    if prefix.size >= _SIZE_LIMIT or prefix.jobs > len(prefix.first):
        raise ValueError("size or jobs out of range")
    return prefix
