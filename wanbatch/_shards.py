"""Shards: a job file split across machines (or processes) by job id, ``--shard I/N``.

Pure: no I/O. A job belongs to shard ``I`` of ``N`` (1-based: ``1/3``, ``2/3``, ``3/3``) when
the first 8 bytes of the SHA-256 of its id (UTF-8), read as a big-endian unsigned number, are
``I - 1`` modulo ``N``. The id alone decides: every machine, every Python version and every
process agrees (unlike ``hash()``, which is salted per process), and reordering, editing or
appending lines never moves a job to another shard.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["MAX_SHARDS", "Shard", "parse_shard", "shard_conflict", "shard_label", "shard_of"]

#: More shards than any fleet of machines; a bound so that a typo is caught.
MAX_SHARDS = 1_000_000


def shard_of(job_id: str, count: int) -> int:
    """The shard (1 to ``count``) that job ``job_id`` belongs to when split ``count`` ways."""
    if count < 1:
        raise ValueError(f"a job file splits into 1 shard or more, not {count}")
    digest = hashlib.sha256(job_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(
                f"N, the number of shards, must be from 1 to {MAX_SHARDS}, got {self.count}"
            )
        if not 1 <= self.index <= self.count:
            raise ValueError(
                f"shards are numbered from 1 to {self.count}, got {self.index} "
                f"(the first of {self.count} is 1/{self.count})"
            )

    def holds(self, job_id: str) -> bool:
        """Whether job ``job_id`` belongs to this shard."""
        return self.count == 1 or shard_of(job_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"I/N"`` as a :class:`Shard`; raises ValueError with a message for people."""
    index_text, slash, count_text = text.strip().partition("/")
    try:
        if not slash:
            raise ValueError
        index, count = int(index_text.strip()), int(count_text.strip())
    except ValueError:
        raise ValueError(
            f"expected I/N, shard I of N (from 1/N to N/N, e.g. 2/3), got {text!r}"
        ) from None
    return Shard(index, count)


def shard_label(shard: Shard | None) -> str | None:
    """What the journal records for a run's shard: ``"I/N"``, or ``None`` for every job (no
    shard, or ``1/1``)."""
    return None if shard is None or shard.count == 1 else str(shard)


def shard_conflict(
    out_dir: str, *, runs: int, recorded: str | None, wanted: Shard | None
) -> str | None:
    """Why a folder whose journal recorded ``recorded`` (``None``: every job) over ``runs`` runs
    cannot be run as ``wanted`` (``None``: every job), or ``None`` when it can.

    A folder holds one shard for good: resuming it as another shard (or as the whole file)
    would mix two shards' jobs in one folder.
    """
    if runs == 0:
        return None
    wanted_text = shard_label(wanted)
    if recorded == wanted_text:
        return None
    held = "every job of its job file" if recorded is None else f"shard {recorded}"
    asked = "every job (no --shard)" if wanted_text is None else f"shard {wanted_text}"
    return (
        f"{out_dir} holds {held}; this run asks for {asked}: give the same --shard as the "
        "folder's runs, or use another --out folder"
    )
