"""Progress display: a tqdm bar and the end-of-run summary, both event subscribers.

The engine never prints; this module turns its events into a bar on stderr (only when stderr
is a terminal, unless forced) and prints the final summary.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm

from wanbatch import _events as ev
from wanbatch._engine import RunSummary

__all__ = ["ProgressBar", "format_summary"]


class ProgressBar:
    """A tqdm bar of jobs done, with images, failures, retries, 429s and the current limit."""

    def __init__(self, *, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._bar: tqdm[Any] | None = None
        self.images = 0
        self.failed = 0
        self.retries = 0
        self.throttled = 0
        self.limit: int | None = None

    def __call__(self, event: ev.Event) -> None:
        """Handle one engine event."""
        if isinstance(event, ev.RunPlanned):
            if self._enabled:
                self._bar = tqdm(
                    total=event.total,
                    initial=event.already_done + event.already_failed,
                    unit="job",
                    file=self._stream,
                    dynamic_ncols=True,
                    smoothing=0.05,
                )
            return
        if isinstance(event, ev.ImageSaved):
            self.images += 1
        elif isinstance(event, ev.JobDone):
            self._advance()
        elif isinstance(event, ev.JobFailed):
            self.failed += 1
            self._advance()
        elif isinstance(event, ev.CallFailed) and event.will_retry:
            self.retries += 1
        elif isinstance(event, ev.Throttled):
            self.throttled += 1
            self.limit = event.limit
        elif isinstance(event, ev.RunStopping) and self._bar is not None:
            self._bar.write(f"wanbatch: stopping: {event.reason}", file=self._stream)
        self._refresh()

    def _advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def _refresh(self) -> None:
        if self._bar is None:
            return
        elapsed = self._bar.format_dict.get("elapsed") or 0.0
        rate = self.images * 60 / elapsed if elapsed > 0 else 0.0
        postfix = f"img={self.images} fail={self.failed} retry={self.retries} 429={self.throttled}"
        if self.limit is not None:
            postfix += f" limit={self.limit}"
        self._bar.set_postfix_str(f"{postfix} {rate:.1f} img/min", refresh=False)

    def close(self) -> None:
        """Close the bar (leaves it on screen)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def format_summary(summary: RunSummary, out_dir: str) -> str:
    """The human summary printed at the end of ``wanbatch run``."""
    s = summary
    if s.dry_run:
        plan = s.plan
        return "\n".join(
            [
                f"dry run: {plan.get('jobs', 0)} jobs; {plan.get('done', 0)} already done, "
                f"{plan.get('failed', 0)} failed earlier (skipped), {plan.get('download', 0)} to "
                f"download, {plan.get('call', 0)} to generate",
                f"  at most {plan.get('images_max', 0)} images to buy, estimated cost "
                f"{s.estimated_cost:.2f} CNY; nothing was sent",
            ]
        )
    lines = [
        f"wanbatch: {s.jobs_done}/{s.jobs_total} jobs done, {s.jobs_failed} failed, "
        f"{s.jobs_pending} pending; {s.images_on_disk} images in {out_dir}/images",
        f"  this run: {s.calls} calls ({s.retries} retries, {s.throttled} throttled, "
        f"{s.possibly_billed} possibly billed), {s.images_generated_this_run} images generated, "
        f"{s.images_saved_this_run} saved, {s.duration_s:.1f} s, "
        f"{s.images_per_minute:.1f} images/min",
    ]
    if s.urls_expired:
        lines.append(
            f"  {s.urls_expired} result URL(s) expired before download; "
            f"{s.regenerated} job(s) generated again"
        )
    if s.changed_jobs:
        lines.append(
            f"  warning: {s.changed_jobs} job id(s) were generated from a different "
            f"request earlier; their existing images were kept"
        )
    if s.jobs_failed:
        lines.append(f"  failed jobs are listed in {out_dir}/failed.jsonl")
    if s.images_missing:
        lines.append(
            f"  {s.images_missing} image(s) recorded as saved are missing or damaged in "
            f"{out_dir}/images and could not be downloaded again (URL expired); they are not "
            f"bought again"
        )
    if s.stop_reason:
        lines.append(f"  stopped: {s.stop_reason}")
    return "\n".join(lines)
