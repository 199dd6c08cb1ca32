"""The pass before a run: every line of the job file validated and planned against the
journal in one read, then the decision whether the run may start (and, for a dry run, its
result).

Nothing here calls the service or writes to the output folder.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wanbatch import _events as ev
from wanbatch._calltimes import time_plan_for
from wanbatch._config import BatchConfig
from wanbatch._donejobs import DoneLines
from wanbatch._doneprefix import DonePrefix
from wanbatch._errors import InvalidJobs, JournalError
from wanbatch._models import price_for, run_region
from wanbatch._plan import Action, plan_job
from wanbatch._prefixcache import read_prefix
from wanbatch._prefixscan import usable_prefix
from wanbatch._state import RunState
from wanbatch._summary import ExitCode, RunSummary
from wanbatch._timeplan import TimePlan
from wanbatch._validate import ValidationReport, first_problems, validate_file

__all__ = ["NOTES_SHOWN", "PLAN_KEYS", "RunPlan", "accept_plan", "plan_run"]

#: What the plan counts (``RunSummary.plan``, the dry-run report).
PLAN_KEYS = (
    "jobs",
    "call",
    "download",
    "done",
    "failed",
    "changed",
    "matched",
    "images_max",
    "regenerate",
)
#: Problems of the job file shown at the start of a run (validate lists them all).
NOTES_SHOWN = 10


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What the validate-and-plan pass found."""

    #: Jobs by what the run does with them (:data:`PLAN_KEYS`).
    counts: dict[str, int]
    report: ValidationReport
    #: The done prefix the last run's end found, still usable (its lines were not read), and
    #: the done keys then: the end of this run scans on from it.
    start_prefix: DonePrefix | None
    start_keys: array[int] | None
    #: What the calls planned may cost at most, CNY (each image at its model's price).
    cost: float
    #: How long the calls take (with the call times measured in the folder, if any).
    time_plan: TimePlan

    def planned_event(self) -> ev.RunPlanned:
        """The event that announces a real run (its plan and its most cost)."""
        counts = self.counts
        return ev.RunPlanned(
            total=counts["jobs"],
            already_done=counts["done"],
            already_failed=counts["failed"],
            to_call=counts["call"],
            to_download=counts["download"],
            images_max=counts["images_max"],
            price=self.cost / max(1, counts["images_max"]),
            time_plan=self.time_plan,
        )


def plan_run(
    jobs_path: Path, out_dir: Path, config: BatchConfig, state: RunState, *, salt: str
) -> RunPlan:
    """Validate every line and plan it against ``state`` in the same pass (counts by action).

    ``salt``: folded into the line hashes (a change of run defaults makes every line "changed").
    Blocking: run it on a worker thread.
    """
    counts = dict.fromkeys(PLAN_KEYS, 0)
    cost = 0.0
    calls: dict[str, int] = {}  # calls planned, by model (the time plan)
    shard = config.shard

    def on_job(job_id: str, max_new_images: int, model: str) -> None:
        nonlocal cost
        if shard is not None and not shard.holds(job_id):
            return  # another shard's job: validated, not planned
        job_state = state.job(job_id)
        counts["jobs"] += 1
        counts["matched"] += job_state is not None
        # The request fingerprint needs the body, built later; "changed" is counted then.
        plan = plan_job(
            job_state,
            "",
            retry_failed=config.retry_failed,
            regenerate_expired=config.regenerate_expired,
        )
        counts["regenerate"] += plan.regenerate
        if plan.action is Action.CALL:
            counts["call"] += 1
            counts["images_max"] += max_new_images
            cost += max_new_images * price_for(config, model)
            calls[model] = calls.get(model, 0) + 1
        elif plan.action is Action.DOWNLOAD:
            counts["download"] += 1
        elif plan.action is Action.SKIP_DONE:
            counts["done"] += 1
        else:
            counts["failed"] += 1

    # The done prefix the last run's end found: when the job file still starts with the
    # same bytes, those lines are not read again (a resume over 1M done jobs: ~0.1 s, not 4).
    prefix = usable_prefix(read_prefix(out_dir), jobs_path, state, salt, config.job_input)
    # The end of the run scans on from it (a copy of the done keys: 8 bytes a job).
    start_keys = array("Q", state.done.arrays()[0]) if prefix is not None else None
    report = validate_file(
        jobs_path,
        config.defaults,
        done=DoneLines(state, salt),
        prefix=prefix,
        on_job=on_job,
        region=run_region(config),
        spec=config.job_input,
    )
    counts["jobs"] += report.skipped_done
    counts["matched"] += report.skipped_done
    counts["done"] += report.skipped_done
    time_plan = time_plan_for(out_dir, config, calls, counts["images_max"])
    return RunPlan(counts, report, prefix, start_keys, cost, time_plan)


def accept_plan(
    plan: RunPlan,
    state: RunState,
    summary: RunSummary,
    *,
    jobs_path: Path,
    out_dir: Path,
    config: BatchConfig,
    emit: Callable[[ev.Event], None],
) -> None:
    """Decide whether the run may start, and fill the summary's plan.

    Emits :class:`~wanbatch.ValidationNotes` for warnings and skipped lines. Raises
    :class:`InvalidJobs` for a job file with errors (unless ``skip_invalid``) or with no valid
    job, :class:`JournalError` for a folder holding a run of another job file. A dry run ends
    here: its summary says what a real run would do.
    """
    report, counts = plan.report, plan.counts
    summary.skipped_invalid = report.invalid_lines
    summary.validation_warnings = report.warning_count
    # Nothing valid to run (no job at all, or every line invalid) is an error even with
    # skip_invalid: a run that can buy nothing is a mistake.
    refused = report.valid_jobs == 0 or (report.error_count > 0 and not config.skip_invalid)
    if report.warning_count or (report.error_count and not refused):
        # The warnings, and what skip_invalid skips (InvalidJobs carries the errors).
        emit(
            ev.ValidationNotes(
                str(jobs_path),
                report.warning_count,
                0 if refused else report.invalid_lines,
                0 if refused else report.error_count,
                tuple(first_problems(report, NOTES_SHOWN, errors=not refused)),
            )
        )
    if refused:
        raise InvalidJobs(str(jobs_path), list(report.errors), report.error_count)
    # A shard's run counts only its own jobs (counts["jobs"]: those of the file otherwise).
    summary.jobs_total = report.valid_jobs if config.shard is None else counts["jobs"]
    summary.plan = counts
    if len(state) and counts["jobs"] and counts["matched"] == 0:
        raise JournalError(
            f"{out_dir} holds a run of another job file ({state.jobs_file}): none of its "
            f"{len(state)} job ids is in {jobs_path}; use a new --out folder"
        )
    summary.estimated_cost = round(plan.cost, 4)
    summary.time_plan = plan.time_plan.to_json()
    if summary.dry_run:
        summary.jobs_done = counts["done"]
        summary.jobs_failed = counts["failed"]
        summary.jobs_pending = counts["call"] + counts["download"]
        summary.exit_code = ExitCode.OK
