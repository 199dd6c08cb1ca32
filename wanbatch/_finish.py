"""The end of a real run: the journal folded once more (its snapshot written), the job file's
done prefix for the next resume, the views, and the summary with the run's exit code.

Runs on a worker thread after the journal is closed.
"""

from __future__ import annotations

import json
import os
from array import array
from pathlib import Path

from wanbatch._control import RunControl
from wanbatch._doneprefix import DonePrefix
from wanbatch._journal import read_journal
from wanbatch._models import run_region
from wanbatch._prefixcache import write_prefix
from wanbatch._prefixscan import scan_done_prefix
from wanbatch._report import try_write_report
from wanbatch._summary import ExitCode
from wanbatch._touchlog import TouchLog
from wanbatch._views import write_views

__all__ = ["finish_run"]


def finish_run(
    out_dir: Path,
    jobs_path: Path,
    control: RunControl,
    *,
    salt: str,
    start_prefix: DonePrefix | None,
    start_keys: array[int] | None,
    rebuild_views: bool,
    started: float,
) -> None:
    """Write what the folder shows after the run, and fill in ``control.summary``.

    ``rebuild_views``: write the views whole, not only this run's new rows. ``started``: the
    run's start by ``control.clock.monotonic()``.
    """
    touched = TouchLog()  # lets the views take only this run's new rows
    state = read_journal(out_dir, write_snapshot=True, touched=touched)
    prefix = scan_done_prefix(
        jobs_path,
        state,
        salt,
        start=start_prefix,
        start_keys=start_keys,
        spec=control.config.job_input,
    )
    write_prefix(out_dir, prefix)
    try:
        write_views(out_dir, state, None if rebuild_views else touched)
    except OSError as exc:
        control.request_stop(
            f"cannot write the views of {out_dir}: {exc.strerror or exc}", ExitCode.FATAL
        )
    summary = control.summary
    by_status = state.status_counts()
    done, failed, images = by_status["done"], by_status.get("failed", 0), state.done.images()
    summary.jobs_done = done
    summary.jobs_failed = failed
    summary.jobs_pending = max(0, summary.jobs_total - done - failed)
    summary.images_on_disk = max(0, images - summary.images_missing)
    summary.images_generated_total = state.images_generated
    summary.duration_s = round(control.clock.monotonic() - started, 3)
    if summary.duration_s > 0:
        summary.images_per_minute = round(
            summary.images_saved_this_run * 60 / summary.duration_s, 2
        )
    summary.settle(control.exit_code, control.stop_reason)
    config = control.config
    problem = try_write_report(out_dir, price=config.price_per_image, region=run_region(config))
    if problem is not None:
        summary.warnings.append(problem)
    tmp = out_dir / ".summary.json.tmp"
    try:
        tmp.write_text(json.dumps(summary.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, out_dir / "summary.json")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if summary.exit_code == ExitCode.OK:
            summary.exit_code = ExitCode.FATAL
        summary.stop_reason = summary.stop_reason or (
            f"cannot write {out_dir / 'summary.json'}: {exc.strerror or exc}"
        )
