"""The journal's record schema: its events, the fields each carries, one builder per event
(:func:`generated_record`, :func:`saved_record`, ...: no other module makes a record), and the
bounds a record's fields must keep to be read are in :mod:`wanbatch._recordcheck`.

Pure: stdlib only, no I/O. The fold of these records into a run's state is
:mod:`wanbatch._state`.

Journal format v1 (one JSON object per line; ``v`` and ``ts`` on every record):

- ``run``: a run started (``jobs_file``, ``version``, ``jobs``: valid jobs in the file,
  ``endpoint``: the API base URL without credentials, ``mock``: true when it was the built-in
  mock, i.e. a loopback address; ``shard``: ``"I/N"`` when the run ran one shard of the file,
  absent or ``null`` for every job).
- ``end``: that run reached its end (``stopped``: why it stopped early, or ``null``). A run
  with no ``end`` after its ``run`` was killed or crashed (or is still running).
- ``generated``: a call succeeded (``id``, ``model``, ``fp``, ``attempt``, ``request_id``,
  ``images: [{"url", "expires"}]``, ``texts``, ``usage``, ``prompt``, ``seed``, ``size``, ``meta``,
  ``clock_offset``: the service's clock minus the client's, in seconds, from the answer's ``Date``).
  Written *before* any download, so a crash never costs a second generation while URLs are valid.
- ``saved``: image ``k`` of the current generation is on disk (``file``, ``bytes``, ``sha256``,
  plus ``prompt``/``seed``/``size``/``request_id``/``meta`` for ``metadata.jsonl``).
- ``expired``: image ``k``'s URL expired before it was downloaded: the store refused it (no
  clock decides that; older journals may hold ``judged: "client"`` records, read the same).
- ``submitted``: a task was submitted for job ``id`` (task mode): ``task``, its id, and
  ``request_id``. Written before the task is waited on; a later ``attempt``, ``generated`` or
  ``failed`` of the job closes it, and a resumed run polls a task still open.
- ``attempt``: one failed attempt that will be retried (``code``, ``status``, ``possibly_billed``).
- ``failed``: the job failed for good (``code``, ``message``, ``status``, ``source``).
- ``meta``: a done job's line changed but not its request (its ``meta`` was edited, or only its
  spelling): ``fp``, ``gen_line``, ``images`` as its generation had them, the new line's
  ``line`` hash and ``meta``. The job is done from this line now; ``metadata.jsonl`` shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NewType

__all__ = [
    "EVENTS",
    "JOURNAL_VERSION",
    "Record",
    "SavedInfo",
    "abandoned_record",
    "attempt_record",
    "cut_answer_record",
    "end_record",
    "expired_record",
    "failed_record",
    "generated_record",
    "meta_record",
    "run_record",
    "saved_record",
    "submitted_record",
]

JOURNAL_VERSION = 1
#: The events of format v1. A record with another event is ignored (forward compatibility).
EVENTS = (
    "run",
    "end",
    "generated",
    "saved",
    "expired",
    "attempt",
    "failed",
    "meta",
    "submitted",
)


# ------------------------------------------------------------------ builders
# One per event: every record the engine journals is made here, so the schema above is the one
# place its fields are named. A record is the event and its fields in the order they are
# written; the journal puts ``v`` and ``ts`` in front. ``"event"`` then ``"id"`` come first in
# every job record (a torn ``generated`` line is recognised by them: see
# :mod:`wanbatch._journal`).

#: A journal record as a builder below makes it (the journal adds ``v`` and ``ts``).
Record = NewType("Record", dict[str, Any])


@dataclass(frozen=True, slots=True)
class SavedInfo:
    """The fields of an image's ``metadata.jsonl`` row that its ``saved`` record carries."""

    prompt: str | None
    seed: int | None
    size: Any
    request_id: str | None
    meta: Any
    #: The model that made the image (None in records of runs before there was a choice).
    model: str | None

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> SavedInfo:
        """The fields as an earlier ``saved`` record holds them (taken as they are)."""
        return cls(
            prompt=record.get("prompt"),
            seed=record.get("seed"),
            size=record.get("size"),
            request_id=record.get("request_id"),
            meta=record.get("meta"),
            model=record.get("model"),
        )


def run_record(
    *, jobs_file: str, version: str, jobs: int, endpoint: str, mock: bool, shard: str | None = None
) -> Record:
    """A run started (``shard``: ``"I/N"`` when it runs one shard of the job file)."""
    return Record(
        {
            "event": "run",
            "jobs_file": jobs_file,
            "version": version,
            "jobs": jobs,
            "endpoint": endpoint,
            "mock": mock,
            "shard": shard,
        }
    )


def end_record(*, stopped: str | None) -> Record:
    """The run reached its end (``stopped``: why it stopped early, or None)."""
    return Record({"event": "end", "stopped": stopped})


def generated_record(
    *,
    job_id: str,
    model: str | None,
    fp: str,
    line: int,
    attempt: int,
    request_id: str | None,
    images: Sequence[tuple[str, float | None]],
    texts: Sequence[str],
    usage: Mapping[str, Any],
    info: SavedInfo,
    duration: float,
    clock_offset: float,
    cut: str | None = None,
) -> Record:
    """A call answered: its image URLs and their expiry, written before any download."""
    record = {
        "event": "generated",
        "id": job_id,
        "model": model,
        "fp": fp,
        "line": line,
        "attempt": attempt,
        "request_id": request_id,
        "images": [{"url": url, "expires": expires} for url, expires in images],
        "texts": list(texts),
        "usage": dict(usage),
        "prompt": info.prompt,
        "seed": info.seed,
        "size": info.size,
        "meta": info.meta,
        "duration": round(duration, 3),
        "clock_offset": round(clock_offset),
    }
    if cut:
        record["cut"] = cut
    return Record(record)


def saved_record(
    *,
    job_id: str,
    k: int,
    file: str,
    size: int,
    sha256: str,
    width: int,
    height: int,
    info: SavedInfo,
) -> Record:
    """Image ``k`` of the job's current generation is on disk (``file``, ``size`` bytes)."""
    return Record(
        {
            "event": "saved",
            "id": job_id,
            "k": k,
            "file": file,
            "bytes": size,
            "sha256": sha256,
            "width": width,
            "height": height,
            "prompt": info.prompt,
            "seed": info.seed,
            "size": info.size,
            "request_id": info.request_id,
            "meta": info.meta,
            "model": info.model,
        }
    )


def submitted_record(*, job_id: str, task: str, request_id: str | None) -> Record:
    """A task was submitted for the job (task mode), before it is waited on."""
    return Record({"event": "submitted", "id": job_id, "task": task, "request_id": request_id})


def expired_record(*, job_id: str, k: int) -> Record:
    """The store refused image ``k``'s URL as expired before it was downloaded."""
    return Record({"event": "expired", "id": job_id, "k": k})


def attempt_record(
    *,
    job_id: str,
    attempt: int,
    code: str,
    status: int | None,
    message: str,
    request_id: str | None,
    possibly_billed: bool,
    retry: bool,
) -> Record:
    """One failed attempt (``retry``: another follows)."""
    return Record(
        {
            "event": "attempt",
            "id": job_id,
            "attempt": attempt,
            "code": code,
            "status": status,
            "message": message,
            "request_id": request_id,
            "possibly_billed": possibly_billed,
            "retry": retry,
        }
    )


def abandoned_record(*, job_id: str, attempt: int) -> Record:
    """A call in flight when the run aborted: the service may still bill it."""
    return attempt_record(
        job_id=job_id,
        attempt=attempt,
        code="Abandoned",
        status=None,
        message="the run was aborted while the call was in flight",
        request_id=None,
        possibly_billed=True,
        retry=True,
    )


def cut_answer_record(*, job_id: str) -> Record:
    """A paid answer whose ``generated`` line was torn (the journal cut it on opening):
    possibly billed, and counted as a lost answer of its job (``job_id`` "" when unknown)."""
    return attempt_record(
        job_id=job_id,
        attempt=0,
        code="JournalCut",
        status=None,
        message="a paid answer whose journal record was cut off (disk full or a crash while "
        "writing it)",
        request_id=None,
        possibly_billed=True,
        retry=True,
    )


def failed_record(
    *,
    job_id: str,
    fp: str,
    attempts: int,
    code: str,
    status: int | None,
    message: str,
    request_id: str | None,
    source: str,
) -> Record:
    """The job failed for good (``source``: its job line, for ``failed.jsonl``)."""
    return Record(
        {
            "event": "failed",
            "id": job_id,
            "fp": fp,
            "attempts": attempts,
            "code": code,
            "status": status,
            "message": message,
            "request_id": request_id,
            "source": source,
        }
    )


def meta_record(
    *, job_id: str, fp: str, gen_line: int, images: int, line: int, meta: Any
) -> Record:
    """A done job's line changed but not its request: done from this line, with its ``meta``."""
    return Record(
        {
            "event": "meta",
            "id": job_id,
            "fp": fp,
            "gen_line": gen_line,
            "images": images,
            "line": line,
            "meta": meta,
        }
    )
