"""What a replay touched: the jobs a replay's records named and how each stood before, so the
views are updated from the new journal lines alone.

Pure: stdlib only, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wanbatch._lifecycle import Status

if TYPE_CHECKING:
    from wanbatch._state import RunState

__all__ = ["Before", "TouchLog"]

#: How a job stood before a replay touched it: status, generation line, failure line (0: none).
Before = tuple["Status | None", int, int]


@dataclass
class TouchLog:
    """The jobs a replay touched and how each stood before: what lets the views be updated
    from the new journal lines alone (:func:`wanbatch._views.write_views`).

    Bounded: past ``limit`` jobs it gives up (``overflow``) and frees what it held, and the
    views are rebuilt from the whole journal instead.
    """

    limit: int = 100_000
    before: dict[str, Before] = field(default_factory=dict)
    overflow: bool = False
    #: Where the replay started: journal bytes and lines before it, and the state's ``source``
    #: there ("<bytes>:<tail digest>"); set by the reader, None when it replayed from the start.
    start_offset: int = 0
    start_lines: int = 0
    start_source: str | None = None

    def note(self, state: RunState, job_id: str) -> None:
        """Before the replay applies a record naming ``job_id``: note how that job stands."""
        if self.overflow or job_id in self.before:
            return
        if len(self.before) >= self.limit:
            self.overflow = True
            self.before = {}
            return
        # As RunState.job(), without sorting the done jobs: one this replay finished was noted
        # at its first record, so a job seen for the first time is done only if it was done
        # before the replay began, i.e. among the sorted ones.
        job = state.jobs.get(job_id)
        if job is not None and job.status is not Status.FAILED:
            self.before[job_id] = (job.status, job.gen_line, 0)
            return
        gen_line = state.done.settled_gen_line(job_id)
        if gen_line:
            self.before[job_id] = (Status.DONE, gen_line, 0)
        elif job is not None:
            failed = job.failure[2] if job.failure is not None else 0
            self.before[job_id] = (job.status, job.gen_line, failed)
        else:
            self.before[job_id] = (None, 0, 0)
