"""Progress display: a tqdm bar and the end-of-run summary, both event subscribers.

The engine never prints; this module turns its events into a bar on stderr (only when stderr
is a terminal, unless forced) and prints the final summary.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm

from wanbatch import _events as ev
from wanbatch._clock import SYSTEM_CLOCK, Clock
from wanbatch._summary import RunSummary
from wanbatch._timeplan import format_duration

__all__ = [
    "Eta",
    "ProgressBar",
    "format_cost",
    "format_summary",
    "format_validation_notes",
    "plural",
]

#: The currency of the service's prices and of ``--price``.
CURRENCY = "CNY"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``"1 image"``, ``"2 images"`` (``many`` for irregular plurals)."""
    return f"{count} {noun}" if count == 1 else f"{count} {many or noun + 's'}"


def format_cost(amount: float) -> str:
    """A sum of money as shown to users: ``"1.76 CNY"``."""
    return f"{amount:,.2f} {CURRENCY}"


def plan_line(event: ev.RunPlanned) -> str:
    """The line printed when a real run starts: what it will do and what it may cost."""
    done = event.already_done
    parts = [
        f"{event.to_call} to generate",
        f"{event.to_download} to download",
        f"{done} already done",
    ]
    if event.already_failed:
        parts.append(f"{event.already_failed} failed earlier (skipped)")
    cost = format_cost(event.images_max * event.price)
    return (
        f"wanbatch: {plural(event.total, 'job')}: {', '.join(parts)}; at most "
        f"{plural(event.images_max, 'image')}, at most {cost} ({event.price:g} {CURRENCY} an image)"
    )


class Eta:
    """Time left: the time plan's figure counting down from the start, then (once a round of
    calls, one per slot, has finished) the pace this run measured."""

    def __init__(self, planned_s: float, jobs: int, slots: int) -> None:
        self.planned_s = planned_s
        self.jobs = jobs  #: jobs this run has to finish
        self.slots = max(1, slots)

    def seconds(self, elapsed: float, finished: int) -> float:
        """Seconds left after ``elapsed`` seconds with ``finished`` jobs finished."""
        if finished >= self.slots and elapsed > 0:
            return max(0, self.jobs - finished) * elapsed / finished
        return max(0.0, self.planned_s - elapsed)

    def text(self, elapsed: float, finished: int) -> str:
        """``"12 min"``: :meth:`seconds` for people."""
        return format_duration(self.seconds(elapsed, finished))


class ProgressBar:
    """The plan line, then a tqdm bar of jobs done with images, money spent, failures, retries,
    429s, the current limit and a pause the service asked for."""

    def __init__(
        self,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._stream = stream or sys.stderr
        self._clock = clock
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._bar: tqdm[Any] | None = None
        self.images = 0
        self.images_bought = 0
        self.price = 0.0
        self.failed = 0
        self.retries = 0
        self.throttled = 0
        self.limit: int | None = None
        #: A key pool: (keys active, keys in the pool); None for one key.
        self.keys: tuple[int, int] | None = None
        #: The pause the service asked for (``Retry-After``): its length and monotonic end.
        self.pause: tuple[float, float] | None = None
        self.finished = 0  #: jobs done or failed in this run
        self.eta: Eta | None = None

    def __call__(self, event: ev.Event) -> None:
        """Handle one engine event; a terminal that is gone (hung up: EIO) silences the bar,
        so that a closed terminal stops the run by its SIGHUP drain, not by a write error."""
        try:
            self._handle(event)
        except OSError:
            if self._bar is not None:
                self._bar.disable = True  # its close() and finalizer write nothing now
            self._bar, self._enabled = None, False

    def _handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.ValidationNotes):  # shown whether or not the bar is
            self._stream.write(format_validation_notes(event) + "\n")
            return
        if isinstance(event, ev.RunPlanned):
            self.price = event.price
            if event.keys:
                self.keys = (event.keys, event.keys)
            print(plan_line(event), file=self._stream, flush=True)
            if event.time_plan is not None and event.time_plan.calls:
                print(f"wanbatch: time: {event.time_plan.describe()}", file=self._stream)
                self.eta = Eta(
                    event.time_plan.seconds,
                    event.total - event.already_done - event.already_failed,
                    event.time_plan.keys * event.time_plan.in_flight,
                )
            if self._enabled:
                self._bar = tqdm(
                    total=event.total,
                    initial=event.already_done + event.already_failed,
                    unit="job",
                    file=self._stream,
                    dynamic_ncols=True,
                    smoothing=0.05,
                    # The ETA is ours (Eta: the time plan, then this run's pace), not tqdm's.
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
                )
            return
        if isinstance(event, ev.ImageSaved):
            self.images += 1
        elif isinstance(event, ev.Generated):
            self.images_bought += event.images
        elif isinstance(event, ev.JobDone):
            self.finished += 1
            self._advance()
        elif isinstance(event, ev.JobFailed):
            self.failed += 1
            self.finished += 1
            self._advance()
        elif isinstance(event, ev.CallFailed) and event.will_retry:
            self.retries += 1
        elif isinstance(event, ev.ThrottledEvent):
            self.throttled += 1
            self.limit = event.limit
            if event.retry_after:
                self.pause = (event.retry_after, self._clock.monotonic() + event.retry_after)
        elif isinstance(event, ev.RunStopping):
            if self._bar is not None or event.in_flight or event.reason == "interrupted":
                self._say(_stopping_text(event))  # else the summary's "stopped:" line says it
        elif isinstance(event, ev.KeyRetired):
            self.keys = (event.active, event.total)
            self._say(
                f"wanbatch: key {event.label} retired ({event.code}: {event.message}); "
                f"{event.active} of {plural(event.total, 'key')} left"
            )
        elif isinstance(event, ev.RunAborted):
            reason = event.reason
            self._say(
                f"wanbatch: {reason if reason.startswith('aborted') else 'aborting: ' + reason}"
            )
        self._refresh()

    def _say(self, text: str) -> None:
        """A line for the user now (above the bar, or plain when there is no bar)."""
        if self._bar is not None:
            self._bar.write(text, file=self._stream)
        else:
            print(text, file=self._stream, flush=True)

    def _advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def _refresh(self) -> None:
        if self._bar is None:
            return
        self._bar.set_postfix_str(self.postfix(), refresh=False)

    def postfix(self) -> str:
        """The text after the bar: images, money spent, failures, retries, 429s, limit, pause."""
        elapsed = (self._bar.format_dict.get("elapsed") if self._bar else None) or 0.0
        rate = self.images * 60 / elapsed if elapsed > 0 else 0.0
        eta = "" if self.eta is None else f"eta {self.eta.text(elapsed, self.finished)} "
        text = (
            f"{eta}img={self.images} spent={format_cost(self.images_bought * self.price)} "
            f"fail={self.failed} retry={self.retries} 429={self.throttled}"
        )
        if self.limit is not None:
            text += f" limit={self.limit}"
        if self.keys is not None:
            text += f" keys={self.keys[0]}/{self.keys[1]}"
        if self.pause is not None and self.pause[1] > self._clock.monotonic():
            text += f" paused {self.pause[0]:g} s (the service asked)"
        return f"{text} {rate:.1f} img/min"

    def close(self) -> None:
        """Close the bar (leaves it on screen)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def format_validation_notes(notes: ev.ValidationNotes) -> str:
    """The job file's problems a run prints before it starts: the first few as ``wanbatch
    validate`` prints them, then what was skipped and how many warnings there are."""
    lines = list(notes.first)
    more = notes.errors + notes.warnings - len(notes.first)
    if more > 0:
        lines.append(f"  ... and {more} more: `wanbatch validate {notes.path}` lists them all")
    said = []
    if notes.skipped_lines:
        said.append(f"skipping {plural(notes.skipped_lines, 'invalid line')} (--skip-invalid)")
    if notes.warnings:
        said.append(plural(notes.warnings, "warning"))
    lines.append(f"wanbatch: {notes.path}: {'; '.join(said)}")
    return "\n".join(lines)


def _stopping_text(event: ev.RunStopping) -> str:
    """What the first Ctrl-C (or any stop) waits for, and what a second one would do."""
    text = f"wanbatch: stopping: {event.reason}; no new call starts"
    # After a Ctrl-C (or SIGTERM/SIGHUP), the next one is "again"; after a stop of the
    # engine's own (a fatal answer, --max-images), it is the first.
    ctrl_c = "Ctrl-C again" if event.reason == "interrupted" else "Ctrl-C"
    if event.tasks:
        tasks = "1 task" if event.tasks == 1 else f"{event.tasks} tasks"
        text += (
            f"; {tasks} go on at the service and the next run collects them ({ctrl_c} "
            "cancels those still pending)"
        )
    if not event.in_flight:
        return text + f"; finishing the downloads in progress ({ctrl_c} stops at once)"
    calls = "1 call" if event.in_flight == 1 else f"{event.in_flight} calls"
    how_long = []
    if event.wait_s is not None:
        how_long.append(f"at most {event.wait_s:.0f} s more")
    if event.typical_s is not None:
        how_long.append(f"calls took {event.typical_s:.0f} s on average so far")
    when = f" ({'; '.join(how_long)})" if how_long else ""
    return (
        f"{text}; waiting for {calls} in flight{when} and their downloads. {ctrl_c} "
        "abandons them: the service may still bill them (counted as possibly billed)"
    )


def format_summary(summary: RunSummary, out_dir: str, *, price: float | None = None) -> str:
    """The human summary printed at the end of ``wanbatch run`` (``price``: CNY an image)."""
    s = summary
    if s.dry_run:
        plan = s.plan
        return "\n".join(
            [
                f"dry run: {plural(plan.get('jobs', 0), 'job')}; {plan.get('done', 0)} already "
                f"done, {plan.get('failed', 0)} failed earlier (skipped), "
                f"{plan.get('download', 0)} to download, {plan.get('call', 0)} to generate",
                f"  at most {plural(plan.get('images_max', 0), 'image')} to buy, at most "
                f"{format_cost(s.estimated_cost)}; nothing was sent",
                *([f"  time: {s.time_plan['text']}"] if s.time_plan.get("text") else []),
            ]
        )
    lines = [
        f"wanbatch: {s.jobs_done}/{plural(s.jobs_total, 'job')} done, {s.jobs_failed} failed, "
        f"{s.jobs_pending} pending; {plural(s.images_on_disk, 'image')} in {out_dir}/images",
        f"  this run: {plural(s.calls, 'call')} ({plural(s.retries, 'retry', 'retries')}, "
        f"{s.throttled} throttled), {plural(s.images_generated_this_run, 'image')} generated, "
        f"{s.images_saved_this_run} saved, {s.duration_s:.1f} s, "
        f"{s.images_per_minute:.1f} images/min",
    ]
    if price is not None:
        spent = (
            f"  spent: {format_cost(s.images_generated_this_run * price)} for "
            f"{plural(s.images_generated_this_run, 'image')} ({price:g} {CURRENCY} an image)"
        )
    else:
        spent = f"  bought: {plural(s.images_generated_this_run, 'image')}"
    # Always shown, 0 too: after trouble, "nothing else may have cost" is worth saying.
    calls = "failed call" if s.possibly_billed == 1 else "failed calls"
    spent += f"; besides, {s.possibly_billed} possibly billed ({calls} sent before failing)"
    lines.append(spent)
    if s.urls_expired:
        lines.append(
            f"  {plural(s.urls_expired, 'result URL')} expired before download; "
            f"{plural(s.regenerated, 'job')} generated again"
        )
    if s.changed_jobs:
        lines.append(
            f"  warning: {plural(s.changed_jobs, 'job id')} "
            f"{'was' if s.changed_jobs == 1 else 'were'} generated from a different request "
            "earlier; the existing images were kept"
        )
    if s.jobs_failed:
        lines.append(f"  failed jobs are listed in {out_dir}/failed.jsonl")
    if s.images_missing:
        lines.append(
            f"  {s.images_missing} image(s) recorded as saved are missing or damaged in "
            f"{out_dir}/images and could not be downloaded again (URL expired); they are not "
            f"bought again"
        )
    if s.keys:
        lines.append(_keys_line(s))
    if s.stop_reason:
        lines.append(f"  stopped: {s.stop_reason}")
    return "\n".join(lines)


def _keys_line(s: RunSummary) -> str:
    """The key pool in one line: keys active, and the first few retired by label."""
    line = f"  keys: {s.keys_active} of {len(s.keys)} active"
    retired = [k for k in s.keys if k.get("state") == "retired"]
    if retired:
        shown = ", ".join(
            f"{k['key']} ({str(k.get('retired_by', '')).split(':')[0]})" for k in retired[:3]
        )
        more = f" and {len(retired) - 3} more" if len(retired) > 3 else ""
        line += f"; retired: {shown}{more} (summary.json lists each key)"
    return line
