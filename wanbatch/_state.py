"""The journal fold: ``replay(lines) -> RunState``, each record applied by the job lifecycle's
transition table (:mod:`wanbatch._lifecycle`).

Pure: stdlib only, no I/O, no clock. Rule: everything that decides what a resumed run does lives
in the pure core (this fold, the record schema in :mod:`wanbatch._records`, the plan in
:mod:`wanbatch._plan`), so it is tested without files, servers or an event loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wanbatch._donejobs import DoneJobs
from wanbatch._errors import JournalError
from wanbatch._lifecycle import COMPLETE, Status, transition
from wanbatch._recordcheck import (
    MAX_CLOCK_OFFSET_S,
    MAX_RECORD_IMAGES,
    VERSION_LIMIT,
    count,
    float_or_none,
    well_formed,
)
from wanbatch._records import JOURNAL_VERSION
from wanbatch._touchlog import TouchLog
from wanbatch._verdicts import is_throttle

__all__ = ["JobState", "RunState", "replay"]


class JobState:
    """What the journal says about one job. Small on purpose: a run may hold a million."""

    __slots__ = (
        "expiries",
        "failure",
        "fp",
        "gen_line",
        "images",
        "line",
        "saved",
        "short_fp",
        "status",
    )

    def __init__(self) -> None:
        self.status: Status | None = None
        #: The request fingerprint its records carry ("" when they carry none).
        self.fp: str = ""
        #: A done job rebuilt from its packed entry keeps 28 bits of its fingerprint
        #: (:func:`wanbatch._donejobs.short_fp`), here, and no ``fp``; None for any other job.
        self.short_fp: int | None = None
        #: line_hash() of the job line it was generated from (0: unknown).
        self.line: int = 0
        #: Journal line number of the job's latest ``generated`` record (its current generation).
        self.gen_line: int = 0
        #: (url, expires) per image of the current generation; cleared once DONE.
        self.images: tuple[tuple[str, float | None], ...] = ()
        #: Bit k set = image k of the current generation is saved.
        self.saved: int = 0
        #: (code, message, journal line) of the last ``failed`` record while FAILED.
        self.failure: tuple[str, str, int] | None = None
        #: Generations whose URLs expired before all images were saved (0 after a failure).
        self.expiries: int = 0

    def pending_images(self) -> list[tuple[int, str, float | None]]:
        """(k, url, expires) of images generated but not yet saved."""
        return [
            (k, url, exp) for k, (url, exp) in enumerate(self.images) if not self.saved >> k & 1
        ]


@dataclass
class RunState:
    """The fold of a journal: every job's state plus run-wide totals."""

    #: Jobs that are not done (generated, expired, failed): a run holds few of these.
    jobs: dict[str, JobState] = field(default_factory=dict)
    #: Finished jobs, packed.
    done: DoneJobs = field(default_factory=DoneJobs)
    lines: int = 0
    #: Images generated (bought) over all runs in this folder.
    images_generated: int = 0
    calls_succeeded: int = 0
    failed_attempts: int = 0
    throttled: int = 0
    possibly_billed: int = 0
    runs: int = 0
    jobs_file: str | None = None
    #: The shard of the job file the last run ran (``"I/N"``; None: every job).
    shard: str | None = None
    #: The service's clock minus the client's (seconds), as the latest ``generated`` record
    #: that carries it measured: named in the likely cause when URLs expire.
    clock_offset: float = 0.0
    #: Valid jobs in the job file when the last run started (its ``run`` record).
    jobs_in_file: int = 0
    #: The last run wrote its ``end`` record (it was not killed, and did not crash), and
    #: why it stopped early, if it did (``None``: it ran out of work).
    run_ended: bool = False
    stop_reason: str | None = None
    #: The service of the last run that named one (``run`` records of older journals do not):
    #: its base URL, and whether it was the mock.
    endpoint: str | None = None
    mock: bool | None = None
    #: Line numbers of records that could not be read (a torn last line is the usual one).
    damaged: list[int] = field(default_factory=list)
    #: Calls that lost their answer (each possibly billed) per job not answered or failed since.
    lost: dict[str, int] = field(default_factory=dict)
    #: Tasks submitted and not seen to end (job id -> task id): a resumed run polls them.
    tasks: dict[str, str] = field(default_factory=dict)
    #: Names the exact journal content this state folds (``"<bytes>:<tail digest>"``), when
    #: the reader knows it (a snapshot taken or loaded with nothing after it), else ``None``.
    #: Caches derived from the state (the resume prefix) are valid only for the same source.
    source: str | None = None

    def apply(self, record: Mapping[str, Any], lineno: int) -> None:
        """Fold one journal record into the state, as :data:`wanbatch._lifecycle.TRANSITIONS` says.

        A record that is not :func:`well_formed` is only listed in ``damaged``.
        """
        if not well_formed(record):
            self.damaged.append(lineno)
            return
        event = record.get("event")
        if event == "run":
            self.runs += 1
            self.jobs_file = record.get("jobs_file")
            shard = record.get("shard")
            self.shard = shard if isinstance(shard, str) else None
            jobs = record.get("jobs")
            self.jobs_in_file = jobs if type(jobs) is int and 0 <= jobs < 2**63 else 0
            self.run_ended, self.stop_reason = False, None
            mock = record.get("mock")
            if isinstance(mock, bool):
                self.mock = mock
                endpoint = record.get("endpoint")
                self.endpoint = endpoint if isinstance(endpoint, str) else None
            return
        if event == "end":
            stopped = record.get("stopped")
            self.run_ended, self.stop_reason = True, stopped if isinstance(stopped, str) else None
            return
        job_id = record.get("id")
        if not isinstance(job_id, str):
            self.damaged.append(lineno)
            return
        if event == "submitted":
            self.tasks[job_id] = str(record["task"])
            return
        if event in ("attempt", "generated", "failed") and record.get("code") != "JournalCut":
            # The job's task ended (or it had none). A cut answer is not its task's end: the
            # task is polled again, and its result read, instead of being bought again.
            self.tasks.pop(job_id, None)
        if event == "attempt":
            self.failed_attempts += 1
            if is_throttle(record.get("status"), record.get("code"), record.get("message")):
                self.throttled += 1
            if record.get("possibly_billed"):
                self.possibly_billed += 1
                # Per job, until it is answered or fails: the bound on buying blind survives
                # restarts (a run that keeps losing answers must not reset it).
                self.lost[job_id] = self.lost.get(job_id, 0) + 1
            return
        job = self.jobs.get(job_id)
        if event in ("generated", "failed"):
            self.lost.pop(job_id, None)
        after = transition(job.status if job is not None else None, str(event))
        if after is None:
            # Not a move of the lifecycle: a re-download of an image already counted, a stray
            # record, or an event from the same format version this one does not know (ignored
            # on purpose, for forward compatibility).
            return
        if event == "generated":
            if job is None:
                job = self.jobs[job_id] = JobState()
            images = tuple(
                (str(i["url"]), float_or_none(i.get("expires"))) for i in record["images"]
            )
            job.status = after
            job.fp = str(record.get("fp", ""))
            line = record.get("line", 0)
            job.line = line if isinstance(line, int) else 0
            job.gen_line = lineno
            job.images = images
            job.saved = 0
            job.failure = None
            self.images_generated += len(images)
            self.calls_succeeded += 1
            offset = float_or_none(record.get("clock_offset"))
            if offset is not None and abs(offset) < MAX_CLOCK_OFFSET_S:
                self.clock_offset = offset
            self._complete_if_saved(job_id, job)
        elif event == "saved":
            assert job is not None  # the table moves no job without state on ``saved``
            job.status = after
            k = int(record["k"])
            if 0 <= k < len(job.images):
                job.saved |= 1 << k
            self._complete_if_saved(job_id, job)
        elif event == "expired":
            assert job is not None  # the table moves no job without state on ``expired``
            job.status = after
            job.expiries += 1  # once per generation: its sibling images' records add none
        elif event == "meta":
            # Done from this line: packed. A failed job's open state stays; DONE wins over it.
            self.done.add(
                job_id,
                str(record["fp"]),
                count(record["gen_line"], "gen_line"),
                count(record["images"], "images", MAX_RECORD_IMAGES + 1),
                count(record["line"], "line", 1 << 32),
            )
        elif event == "failed":
            if job is None:
                job = self.jobs[job_id] = JobState()
                job.fp = str(record.get("fp", ""))
            job.status = after
            job.failure = (str(record.get("code", "")), str(record.get("message", "")), lineno)
            job.expiries = 0  # --retry-failed starts the job afresh, with the same bound

    def _complete_if_saved(self, job_id: str, job: JobState) -> None:
        """Every image of the job's generation is on disk: it is done, and packed away."""
        if job.saved.bit_count() == len(job.images) and transition(job.status, COMPLETE):
            self._finish(job_id, job)

    def _finish(self, job_id: str, job: JobState) -> None:
        self.done.add(job_id, job.fp, job.gen_line, len(job.images), job.line)
        del self.jobs[job_id]

    def job(self, job_id: str) -> JobState | None:
        """The state of one job (a done job comes back as a small DONE JobState)."""
        job = self.jobs.get(job_id)
        if job is not None and job.status is not Status.FAILED:
            return job  # a newer generation than any earlier finish
        done = self.done.get(job_id)
        if done is None:
            return job
        # Never un-do a job whose images are on disk: DONE wins over a later failure.
        fp, gen_line, images = done
        state = JobState()
        state.status = Status.DONE
        state.short_fp = fp
        state.gen_line = gen_line
        state.saved = (1 << images) - 1
        return state

    def __len__(self) -> int:
        """Jobs the journal knows of."""
        return len(self.jobs) + len(self.done)

    def status_counts(self) -> dict[str, int]:
        """Jobs by state, each job counted once."""
        counts = {"done": len(self.done)}
        for job_id, job in self.jobs.items():
            if job.status is Status.FAILED and job_id in self.done:
                continue
            if job.status is not None:
                counts[job.status.value] = counts.get(job.status.value, 0) + 1
        return counts


def replay(
    lines: Iterable[str], state: RunState | None = None, touched: TouchLog | None = None
) -> RunState:
    """Fold journal lines (text, newline optional) into a :class:`RunState`.

    With ``state`` (a snapshot of the journal's first ``state.lines`` lines), ``lines`` are the
    lines after those. A line that is not a JSON object (a torn last line after a crash, or
    garbage) is recorded in ``damaged`` and skipped. A record from a newer format raises
    :class:`JournalError`. ``touched`` notes how each job a record names stood before it.
    """
    state = state if state is not None else RunState()
    for lineno, line in enumerate(lines, start=state.lines + 1):
        state.lines = lineno
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
            state.damaged.append(lineno)
            _count_cut_answer(state, line)
            continue
        if not isinstance(record, dict):
            state.damaged.append(lineno)
            continue
        version = record.get("v", JOURNAL_VERSION)
        if isinstance(version, int) and version >= VERSION_LIMIT:
            state.damaged.append(lineno)  # damage (a huge number), not a format to come
            continue
        if isinstance(version, int) and version > JOURNAL_VERSION:
            raise JournalError(
                f"journal line {lineno} is format v{version}, written by a newer wanbatch "
                f"(this one reads v{JOURNAL_VERSION}); upgrade wanbatch to resume this folder"
            )
        if touched is not None:
            job_id = record.get("id")
            if isinstance(job_id, str):
                touched.note(state, job_id)
        try:
            state.apply(record, lineno)
        except (LookupError, TypeError, ValueError, ArithmeticError):
            state.damaged.append(lineno)
    return state


#: The start of a ``generated`` record as the journal writes it: its job id.
_GENERATED_ID = re.compile(r'"event":"generated","id":"([A-Za-z0-9._-]{1,128})"')


def _count_cut_answer(state: RunState, line: str) -> None:
    """A torn last line that was a ``generated`` record is a paid answer the journal could not
    take whole (disk full, a crash mid-write): possibly billed, and a lost answer of its job.
    The next run's journal cuts the line and records it as such (an ``attempt``)."""
    if line.endswith("\n") or '"event":"generated"' not in line:
        return
    state.possibly_billed += 1
    found = _GENERATED_ID.search(line)
    if found is not None:
        state.lost[found[1]] = state.lost.get(found[1], 0) + 1
