"""Frozen events the engine emits while it runs.

Pure: stdlib only. The progress bar, the summary and users' own code subscribe to these
(``run_batch(..., on_event=callback)``); the engine never prints. Don't subclass these.
"""

from __future__ import annotations

from dataclasses import dataclass

from wanbatch._timeplan import TimePlan

__all__ = [
    "CallFailed",
    "CallStarted",
    "Event",
    "Generated",
    "ImageSaved",
    "JobDone",
    "JobFailed",
    "KeyRetired",
    "RunAborted",
    "RunPlanned",
    "RunStopping",
    "ThrottledEvent",
    "UrlExpiredEvent",
    "ValidationNotes",
]


@dataclass(frozen=True, slots=True)
class ValidationNotes:
    """The job file passed validation with notes: warnings, or invalid lines ``skip_invalid``
    skips. ``first`` holds the first few problems as ``wanbatch validate`` prints them
    (``FILE:LINE: field: message``, warnings as ``... field: warning: message``), in line order.
    """

    path: str
    warnings: int  #: warnings in the whole file
    skipped_lines: int  #: invalid lines skipped (0 unless skip_invalid)
    errors: int  #: errors on those lines
    first: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RunPlanned:
    """The plan is known: how many jobs there are and what each needs."""

    total: int
    already_done: int
    already_failed: int
    to_call: int
    to_download: int
    #: Images the calls planned may buy at most, and the price of one (CNY).
    images_max: int = 0
    price: float = 0.0
    #: How long the calls take (the progress bar's first ETA); ``None`` when not planned.
    time_plan: TimePlan | None = None
    #: The keys of a key pool (0 for one key).
    keys: int = 0


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A generation call was sent (``attempt`` counts from 1)."""

    job_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ThrottledEvent:
    """The service answered 429; every worker pauses, the concurrency limit may shrink."""

    job_id: str
    code: str
    limit: int
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class CallFailed:
    """One attempt failed; ``will_retry`` says whether the job gets another attempt."""

    job_id: str
    attempt: int
    code: str
    message: str
    will_retry: bool
    possibly_billed: bool


@dataclass(frozen=True, slots=True)
class Generated:
    """A call succeeded; its image URLs are journaled and queued for download."""

    job_id: str
    images: int
    request_id: str | None


@dataclass(frozen=True, slots=True)
class ImageSaved:
    """One image is on disk under its final name, verified."""

    job_id: str
    index: int
    file: str
    size: int


@dataclass(frozen=True, slots=True)
class UrlExpiredEvent:
    """A result URL expired before it could be downloaded."""

    job_id: str
    index: int


@dataclass(frozen=True, slots=True)
class JobDone:
    """Every image of the job is on disk."""

    job_id: str
    images: int


@dataclass(frozen=True, slots=True)
class JobFailed:
    """The job failed for good (recorded in ``failed.jsonl``)."""

    job_id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class RunStopping:
    """No new calls will start: fatal answer, interrupt, or the image cap was reached.

    The run waits for the ``in_flight`` calls (and their images' downloads): at most
    ``wait_s`` more seconds (the call timeout), typically ``typical_s`` a call (the mean of this
    run's answered calls; ``None`` before the first answer). ``tasks``: journaled tasks the run
    stops waiting on at once (task mode); they go on at the service, the next run collects them.
    """

    reason: str
    in_flight: int = 0
    wait_s: float | None = None
    typical_s: float | None = None
    tasks: int = 0


@dataclass(frozen=True, slots=True)
class RunAborted:
    """Everything in progress was cancelled (a second Ctrl-C, or the journal cannot be written).

    The ``abandoned`` calls in flight may still be billed by the service; each is counted (and
    journaled, when the journal can still be written) as possibly billed.
    """

    reason: str
    abandoned: int


@dataclass(frozen=True, slots=True)
class KeyRetired:
    """A key of the pool got an answer fatal for its account: no call starts on it again.

    ``label`` shows the key safely (``#2 …a1b9``); ``active`` keys of ``total`` are left.
    """

    label: str
    code: str
    message: str
    active: int
    total: int


Event = (
    ValidationNotes
    | RunPlanned
    | CallStarted
    | ThrottledEvent
    | CallFailed
    | Generated
    | ImageSaved
    | UrlExpiredEvent
    | JobDone
    | JobFailed
    | RunStopping
    | RunAborted
    | KeyRetired
)
