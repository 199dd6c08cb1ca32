"""The journal's record schema: its events, the fields each carries, one builder per event
(:func:`generated_record`, :func:`saved_record`, ...: no other module makes a record), and the
bounds a record's fields must keep to be read (:func:`well_formed`).

Pure: stdlib only, no I/O. The fold of these records into a run's state is
:mod:`wanbatch._state`.

Journal format v1 (one JSON object per line; ``v`` and ``ts`` on every record):

- ``run``: a run started (``jobs_file``, ``version``, ``jobs``: valid jobs in the file,
  ``endpoint``: the API base URL without credentials, ``mock``: true when it was the built-in
  mock, i.e. a loopback address).
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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NewType

__all__ = [
    "COUNT_LIMIT",
    "EVENTS",
    "JOURNAL_VERSION",
    "MAX_CLOCK_OFFSET_S",
    "MAX_RECORD_IMAGES",
    "VERSION_LIMIT",
    "Record",
    "SavedInfo",
    "abandoned_record",
    "attempt_record",
    "checked",
    "count",
    "cut_answer_record",
    "end_record",
    "expired_record",
    "expiry",
    "failed_record",
    "float_or_none",
    "generated_record",
    "meta_record",
    "run_record",
    "saved_record",
    "submitted_record",
    "well_formed",
]

JOURNAL_VERSION = 1
#: A record's ``"v"`` at or above this is damage, not a newer format: such a line is skipped.
VERSION_LIMIT = 1000
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
#: Clock offsets beyond this (about 30 years) are damage, not a clock: ignored.
MAX_CLOCK_OFFSET_S = 1e9
#: The most images one record may list: a call returns at most 5, and a packed done job
#: (:class:`wanbatch._donejobs.DoneJobs`) keeps its image count in 4 bits. A record listing
#: more is damaged.
MAX_RECORD_IMAGES = 15
#: Counts and line numbers read back from a journal or a snapshot are below this: a damaged
#: file may hold any number, and none may make a shift, an array or a float blow up.
COUNT_LIMIT = 1 << 63


def float_or_none(value: object) -> float | None:
    """A JSON number as a float; ``None`` for anything else, or an int too large for one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return None
    return None


def checked(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name}: wrong type")
    return value


def count(value: object, name: str, limit: int = COUNT_LIMIT) -> int:
    """``value`` if it is an int in ``[0, limit)`` (not a bool, not a float), else ValueError."""
    if type(value) is not int or not 0 <= value < limit:
        raise ValueError(f"{name}: not a count below {limit}")
    return value


def _is_count(value: object, limit: int = COUNT_LIMIT) -> bool:
    return type(value) is int and 0 <= value < limit


def expiry(value: object) -> float | None:
    """An image's ``expires``: None (unknown) or finite Unix seconds >= 0 (all that
    :func:`wanbatch._urls.parse_expiry` gives), else ValueError."""
    if value is None:
        return None
    if type(value) is int and 0 <= value < 1 << 1023:  # converts to a finite float
        return float(value)
    if type(value) is float and 0 <= value < math.inf:  # NaN fails the comparison
        return value
    raise ValueError("expires: not Unix seconds")


def _expiry_ok(value: object) -> bool:
    try:
        expiry(value)
    except ValueError:
        return False
    return True


def well_formed(record: Mapping[str, Any]) -> bool:
    """Whether a journal record's fields that the fold reads have their types and ranges.

    A record that fails is damaged (skipped, listed in
    :attr:`wanbatch._state.RunState.damaged`): a flipped bit or a hand edit must never crash a
    resume or make it allocate by a number it read. Fields the fold does not read are not looked
    at, so a ``generated`` record whose URLs are intact keeps them (they were paid for) whatever
    its other fields hold.
    """
    event = record.get("event")
    if event == "run":
        return isinstance(record.get("jobs_file"), (str, type(None)))
    if event == "end":
        return isinstance(record.get("stopped"), (str, type(None)))
    if not isinstance(record.get("id"), str):
        return False
    if event == "generated":
        images, line = record.get("images"), record.get("line")
        return (
            isinstance(images, list)
            and len(images) <= MAX_RECORD_IMAGES
            and all(
                isinstance(i, dict)
                and isinstance(i.get("url"), str)
                and _expiry_ok(i.get("expires"))
                for i in images
            )
            and (line is None or _is_count(line, 1 << 32))
            and isinstance(record.get("fp", ""), str)
        )
    if event == "meta":
        return (
            isinstance(record.get("fp"), str)
            and _is_count(record.get("gen_line"))
            and _is_count(record.get("images"), MAX_RECORD_IMAGES + 1)
            and _is_count(record.get("line"), 1 << 32)
        )
    if event == "submitted":
        task = record.get("task")
        return isinstance(task, str) and 0 < len(task) <= 256
    if event == "saved" or (event == "expired" and "k" in record):
        return _is_count(record.get("k"), MAX_RECORD_IMAGES)
    return True


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


def run_record(*, jobs_file: str, version: str, jobs: int, endpoint: str, mock: bool) -> Record:
    """A run started."""
    return Record(
        {
            "event": "run",
            "jobs_file": jobs_file,
            "version": version,
            "jobs": jobs,
            "endpoint": endpoint,
            "mock": mock,
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
