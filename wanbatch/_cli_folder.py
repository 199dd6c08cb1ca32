"""The commands that read a run folder: ``wanbatch status DIR`` (a JSON report of its state)
and ``wanbatch report DIR`` (its report page written again)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from wanbatch._errors import JournalError
from wanbatch._summary import ExitCode

__all__ = ["cmd_report", "cmd_status", "reason"]


def reason(exc: BaseException) -> str:
    """What went wrong, for a one-line message (an OS error's text without its number)."""
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else None) or str(exc)


def cmd_status(args: argparse.Namespace) -> int:
    from wanbatch._folder import check_saved_images
    from wanbatch._journal import read_journal
    from wanbatch._lifecycle import Status

    out = Path(args.dir)
    try:
        if not out.is_dir():
            what = "no such folder" if not out.exists() else "is a file, not a run folder"
            print(f"wanbatch: {out}: {what}", file=sys.stderr)
            return ExitCode.USAGE
        if not (out / "journal.jsonl").is_file():
            print(f"wanbatch: {out} holds no run (no journal.jsonl)", file=sys.stderr)
            return ExitCode.USAGE
        state = read_journal(out)
        images = sum(1 for _ in (out / "images").glob("*.png")) if (out / "images").is_dir() else 0
    except JournalError as exc:  # a newer format: the same answer (and exit 2) as `run`
        print(f"wanbatch: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except (OSError, ValueError) as exc:
        print(f"wanbatch: cannot read the run in {out}: {reason(exc)}", file=sys.stderr)
        return ExitCode.USAGE
    by_status = state.status_counts()
    done, failed = by_status.get("done", 0), by_status.get("failed", 0)
    known = sum(by_status.values())
    # Jobs of the last run's file that the journal has not finished: never called yet, or
    # generated with images still to download.
    pending = max(state.jobs_in_file, known) - done - failed
    reasons = Counter(
        job.failure[0] for job in state.jobs.values() if job.status is Status.FAILED and job.failure
    )
    if state.run_ended:
        last_run = f"stopped: {state.stop_reason}" if state.stop_reason else "finished"
    else:
        last_run = "did not finish (killed, crashed or still running)"
    report = {
        "folder": str(out),
        "runs": state.runs,
        # The shard of the job file this folder holds ("I/N"), None for every job.
        "shard": state.shard,
        "last_run": last_run,
        "complete": bool(state.run_ended and not state.stop_reason and not pending and not failed),
        "jobs": done + failed + pending,
        "by_state": {"done": done, "failed": failed, "pending": pending},
        "failure_reasons": dict(reasons.most_common()),
        "images_generated": state.images_generated,
        "images_on_disk": images,
        # Recorded as saved, but the file is gone or of another size (one stat per image).
        "images_missing": check_saved_images(out, state, limit=0).missing,
        "failed_attempts": state.failed_attempts,
        "throttled": state.throttled,
        "possibly_billed": state.possibly_billed,
        # Task mode: tasks submitted whose end no run has seen (the next run collects them).
        "tasks_open": len(state.tasks),
        "damaged_journal_lines": state.damaged[:20],
    }
    print(json.dumps(report, indent=2))
    return ExitCode.OK


def cmd_report(args: argparse.Namespace) -> int:
    from wanbatch._report import write_report

    out = Path(args.dir)
    if not (out / "journal.jsonl").is_file():
        what = "no such folder" if not out.exists() else "holds no run (no journal.jsonl)"
        print(f"wanbatch: {out}: {what}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        path = write_report(out, price=args.price)
    except JournalError as exc:
        print(f"wanbatch: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except OSError as exc:
        print(f"wanbatch: cannot write the report of {out}: {reason(exc)}", file=sys.stderr)
        return ExitCode.FATAL
    print(path)
    return ExitCode.OK
