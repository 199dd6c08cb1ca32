"""What every part of a run shares: its events, its stop and abort, and journal writes that
abort the run when they fail.

Stopping (fatal answer, first Ctrl-C, image cap) cancels only *waiting* (for a slot, a backoff,
the next job); calls in flight finish and their images download. Aborting (second Ctrl-C, or a
journal that cannot be written) cancels everything, and counts the calls it abandons as
possibly billed.
"""

from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import Callable, Iterator

import anyio

from wanbatch import _events as ev
from wanbatch._clock import SYSTEM_CLOCK, Clock
from wanbatch._config import BatchConfig
from wanbatch._errors import OutputError
from wanbatch._journal import Journal
from wanbatch._records import Record
from wanbatch._streaks import CallStreaks
from wanbatch._summary import ExitCode, RunSummary

__all__ = ["EventCallback", "RunControl"]

EventCallback = Callable[[ev.Event], None]


class RunControl:
    """The run's shared state: listeners, stop reason and exit code, calls in flight, and the
    clock every part of the run reads time from and sleeps with."""

    def __init__(
        self, config: BatchConfig, summary: RunSummary, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.config = config
        self.summary = summary
        self.clock = clock
        self.listeners: list[EventCallback] = []
        self.stop_reason: str | None = None
        self.exit_code: ExitCode | None = None
        self._stopping = anyio.Event()
        #: Set by :meth:`abort` (a second Ctrl-C), also after the run's work ended.
        self.aborted = anyio.Event()
        self._wait_scopes: set[anyio.CancelScope] = set()
        #: The scope of the run's task group, cancelled by an abort.
        self.abort_scope: anyio.CancelScope | None = None
        self.rand = random.Random()
        #: The service's clock minus ours: the journal's last measure, then each answer's.
        self.clock_offset = 0.0
        # Calls in flight (call number -> monotonic start), and the streaks that stop a batch
        # that cannot reach the service or keeps losing (possibly paid) answers.
        self.in_flight: dict[int, float] = {}
        self.call_numbers = itertools.count()
        #: How many of the calls in flight are journaled tasks (task mode: a stop leaves them).
        self.tasks_waiting: Callable[[], int] = lambda: 0
        self.streaks = CallStreaks(
            config.base_url,
            # Calls in flight at most: each key of a pool has its own --concurrency.
            concurrency=config.concurrency * max(1, len(config.keys)),
            call_timeout=config.call_timeout,
        )

    def emit(self, event: ev.Event) -> None:
        for callback in self.listeners:
            callback(event)

    def service_now(self) -> float:
        """The service's time, by our clock and the offset its answers showed."""
        return self.clock.now() + self.clock_offset

    def request_stop(self, reason: str = "interrupted", exit_code: ExitCode | None = None) -> None:
        """Start no new call; let calls in flight finish and their images download."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.exit_code = exit_code or ExitCode.INTERRUPTED
            now = self.clock.monotonic()
            starts = self.in_flight.values()
            tasks = min(self.tasks_waiting(), len(starts))
            self.emit(
                ev.RunStopping(
                    reason,
                    in_flight=len(starts) - tasks,
                    tasks=tasks,
                    wait_s=max(0.0, max(starts) + self.config.call_timeout - now)
                    if starts
                    else None,
                    typical_s=(
                        self.streaks.answered_s / self.streaks.answered
                        if self.streaks.answered
                        else None
                    ),
                )
            )
        self._halt()

    def _halt(self) -> None:
        """No new call starts; every wait ends."""
        self._stopping.set()
        for scope in list(self._wait_scopes):
            scope.cancel()

    def abort(self, reason: str, exit_code: ExitCode) -> None:
        """Cancel everything now; calls in flight count as possibly billed."""
        abandoned = len(self.in_flight)
        if abandoned:
            calls = "1 call" if abandoned == 1 else f"{abandoned} calls"
            reason += (
                f"; {calls} in flight abandoned "
                "(the service may still bill them: counted as possibly billed)"
            )
        if self.stop_reason not in (None, "interrupted"):
            reason += f" (while stopping: {self.stop_reason})"
        self.stop_reason = reason
        if self.exit_code is None or exit_code is ExitCode.FATAL:
            self.exit_code = exit_code
        self._halt()
        self.aborted.set()
        self.emit(ev.RunAborted(reason, abandoned))
        if self.abort_scope is not None:
            self.abort_scope.cancel()

    @property
    def stopping(self) -> bool:
        """True once no new call may start."""
        return self._stopping.is_set()

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[anyio.CancelScope]:
        """A scope for *waiting* that a stop request cancels."""
        with anyio.CancelScope() as scope:
            if self.stopping:
                scope.cancel()
            self._wait_scopes.add(scope)
            try:
                yield scope
            finally:
                self._wait_scopes.discard(scope)

    def journal(self, journal: Journal, record: Record) -> None:
        """Append a record; on a write error abort the run and raise OutputError.

        Once a record cannot be written no later one can (the journal keeps what it has), so
        nothing is waited for: a call in flight would come back paid and unrecorded. Workers
        catch that OutputError and end quietly: the stop reason carries the message.
        """
        try:
            journal.append(record)
        except OutputError as exc:
            self.abort(str(exc), ExitCode.FATAL)
            raise
