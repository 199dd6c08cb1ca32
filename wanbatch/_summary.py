"""What a run did (:class:`RunSummary`, written to ``summary.json``) and its exit code.

Pure: the engine fills a summary in; the command line and the progress display read it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ExitCode", "RunSummary"]


class ExitCode(enum.IntEnum):
    """Exit codes of ``wanbatch run`` (and ``RunSummary.exit_code``)."""

    OK = 0
    JOBS_FAILED = 1
    USAGE = 2
    FATAL = 3
    CAPPED = 4
    INTERRUPTED = 130


@dataclass
class RunSummary:
    """What a run did; written to ``summary.json``."""

    exit_code: ExitCode = ExitCode.OK
    stop_reason: str | None = None
    jobs_total: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    jobs_pending: int = 0
    skipped_invalid: int = 0  #: invalid job lines skipped (``skip_invalid``)
    validation_warnings: int = 0
    images_on_disk: int = 0
    #: Images of done jobs the journal records as saved whose file is missing or damaged
    #: (another size) and could not be fetched again (URL expired): never bought again.
    images_missing: int = 0
    images_generated_total: int = 0
    images_generated_this_run: int = 0
    images_saved_this_run: int = 0
    calls: int = 0
    calls_succeeded: int = 0
    retries: int = 0
    throttled: int = 0
    possibly_billed: int = 0
    urls_expired: int = 0
    regenerated: int = 0
    changed_jobs: int = 0
    concurrency_limit: int = 0
    duration_s: float = 0.0
    images_per_minute: float = 0.0
    estimated_cost: float = 0.0
    #: What the images generated this run cost at each model's price (CNY).
    spent_this_run: float = 0.0
    dry_run: bool = False
    #: A key pool: keys still active and retired (both 0 for one key), and each key's line
    #: (its label, never the key: see ``_pool``), after the totals above.
    keys_active: int = 0
    keys_retired: int = 0
    plan: dict[str, int] = field(default_factory=dict)
    #: How long the plan's calls take (:meth:`wanbatch._timeplan.TimePlan.to_json`).
    time_plan: dict[str, Any] = field(default_factory=dict)
    #: Problems that did not fail the run (e.g. the report page could not be written).
    warnings: list[str] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)

    def settle(self, exit_code: ExitCode | None, stop_reason: str | None) -> None:
        """Decide the exit code and stop reason of a finished run, from its counts.

        A stop's own exit code wins; otherwise failed jobs, then jobs still pending (images
        left to download), mean :attr:`ExitCode.JOBS_FAILED`.
        """
        self.stop_reason = stop_reason
        if exit_code is not None:
            self.exit_code = exit_code
        elif self.jobs_failed:
            self.exit_code = ExitCode.JOBS_FAILED
        elif self.jobs_pending:
            self.exit_code = ExitCode.JOBS_FAILED
            self.stop_reason = self.stop_reason or (
                "1 job has images still to download; run again"
                if self.jobs_pending == 1
                else f"{self.jobs_pending} jobs have images still to download; run again"
            )
        else:
            self.exit_code = ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = dict(self.__dict__)
        data["exit_code"] = int(self.exit_code)
        return data
