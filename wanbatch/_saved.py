"""The images a journal records as saved, read back from its file.

I/O, shared by :mod:`wanbatch._views` (the ``metadata.jsonl`` view) and :mod:`wanbatch._folder`
(the check of the images on disk): :func:`current_saved` lists the ``saved`` records of every
done job's current generation, :func:`image_on_disk` checks one, :func:`records` reads the
records of one event.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wanbatch._lifecycle import Status
from wanbatch._recordcheck import well_formed
from wanbatch._state import RunState
from wanbatch._touchlog import TouchLog

__all__ = ["JOURNAL_NAME", "current_saved", "image_on_disk", "records"]

JOURNAL_NAME = "journal.jsonl"
#: Completed jobs remembered while listing saved images, to drop duplicate records.
RECENT_JOBS = 4096


def records(path: Path, event: str, offset: int = 0, lines: int = 0) -> Iterator[tuple[int, Any]]:
    """(line number, record) of the journal's ``event`` records from byte ``offset`` (which
    follows ``lines`` lines)."""
    marker = f'"{event}"'
    with path.open("rb") as fh:
        fh.seek(offset)
        for lineno, raw in enumerate(fh, start=lines + 1):
            line = raw.decode("utf-8", "replace")
            if marker not in line:
                continue
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError):
                continue
            # The records the fold took: a damaged one is neither folded nor listed.
            if isinstance(rec, dict) and rec.get("event") == event and well_formed(rec):
                yield lineno, rec


#: The start of a ``saved`` record as :class:`Journal` writes it (compact JSON, these keys
#: first): read without a JSON parse where only the file matters. Any other form is parsed.
_SAVED_HEAD = re.compile(
    rb'"event":"saved","id":"([A-Za-z0-9._-]{1,128})","k":(\d{1,3}),'
    rb'"file":"([^"\\]{1,1024})","bytes":(\d{1,15})[,}]'
)


def _saved_heads(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, record) of the journal's ``saved`` records, with only ``id``, ``k``,
    ``file`` and ``bytes`` when the record has the usual form (~4x faster than a parse)."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if b'"saved"' not in raw:
                continue
            m = _SAVED_HEAD.search(raw)
            if m is not None and raw.endswith(b"\n"):  # a whole line
                file = m[3].decode("utf-8", "replace")
                yield (
                    lineno,
                    {"id": m[1].decode(), "k": int(m[2]), "file": file, "bytes": int(m[4])},
                )
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("event") == "saved":
                yield lineno, rec


def current_saved(
    path: Path,
    state: RunState,
    offset: int = 0,
    lines: int = 0,
    listed: TouchLog | None = None,
    *,
    heads: bool = False,
) -> Iterator[tuple[dict[str, Any], int, int]]:
    """(``saved`` record, k, generation line) of every image of every DONE job's current
    generation, each once, from byte ``offset`` of the journal ``path`` on.

    With ``listed``, jobs that were DONE before the replay it logged are passed over. With
    ``heads`` (from the start only), records may hold only ``id``, ``k``, ``file``, ``bytes``.
    """
    # Images written per job, for jobs still being read; a job leaves once complete and is
    # remembered in a short recent list, so memory stays flat over a million jobs.
    written: dict[str, int] = {}
    recent: OrderedDict[str, None] = OrderedDict()
    found = _saved_heads(path) if heads else records(path, "saved", offset, lines)
    for lineno, rec in found:
        job_id = rec.get("id", "")
        if job_id in recent or not isinstance(job_id, str):
            continue  # a duplicate record of an image already listed
        # As state.job(job_id), without building a JobState: a run may check a million.
        newer = state.jobs.get(job_id)
        done = state.done.get(job_id) if newer is None or newer.status is Status.FAILED else None
        if done is None or lineno < done[1]:
            continue  # not done, or a record of an earlier generation
        if listed is not None and listed.before.get(job_id, (None,))[0] is Status.DONE:
            continue
        gen_line, all_saved = done[1], (1 << done[2]) - 1
        try:
            k = int(rec["k"])
        except (KeyError, TypeError, ValueError):
            continue  # a damaged record
        if k < 0:
            continue
        mask = written.get(job_id, 0)
        if mask >> k & 1 or not all_saved >> k & 1:
            continue  # listed already, or not an image of the job's current generation
        mask |= 1 << k
        if mask == all_saved:
            written.pop(job_id, None)
            recent[job_id] = None
            if len(recent) > RECENT_JOBS:
                recent.popitem(last=False)
        else:
            written[job_id] = mask
        yield rec, k, gen_line


def image_on_disk(out_dir: str, rec: dict[str, Any]) -> bool:
    """Whether the file a ``saved`` record names is there, a regular file of its size."""
    name = rec.get("file")
    if not isinstance(name, str):
        return False
    try:
        info = os.stat(os.path.join(out_dir, name))
    except (OSError, ValueError):
        return False
    size = rec.get("bytes")
    return stat.S_ISREG(info.st_mode) and (type(size) is not int or info.st_size == size)
