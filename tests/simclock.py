"""A simulated clock for runs in tests: every sleep returns at once, having moved time forward.

Pass it as ``clock=`` to :func:`wanbatch.run_batch` (or ``BatchRun``, ``Pacer``, ``ApiClient``):
backoffs, cool-downs, ``Retry-After`` pauses and download retries then cost no real time, so a
test can run at the default backoff settings (1 s, doubling to 60 s) and still take
milliseconds. Real time keeps passing underneath (the mock answers over real sockets), so the
clock reads the system's clocks plus the time slept so far: durations of real work stay real,
and a wait shows up as a jump.

Sleeps are not ordered against each other (two tasks that each sleep 1 s move the clock 2 s):
enough for waits whose length matters, not for a schedule of concurrent sleepers (the pacer's
own tests use an autojump clock for that: ``tests/io/test_pacing.py``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio.lowlevel

from wanbatch import BatchConfig, RunSummary, run_batch


class SimulatedClock:
    """A :class:`wanbatch._clock.Clock` whose ``sleep`` only moves virtual time forward."""

    def __init__(self, *, offset: float = 0.0) -> None:
        #: Seconds added to the system's clocks: ``offset`` at the start, plus every sleep.
        self.offset = offset
        #: Every sleep asked for, in order (a test can check the backoff it was given).
        self.sleeps: list[float] = []

    @property
    def slept(self) -> float:
        """Virtual seconds slept so far."""
        return sum(s for s in self.sleeps if s > 0)

    def now(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self.offset += seconds
        # A checkpoint, as a real sleep is one: other tasks run, and a cancelled scope (a stop
        # request ending a backoff) raises here.
        await anyio.lowlevel.checkpoint()

    def advance(self, seconds: float) -> None:
        """Move time forward without a sleep (e.g. a day, to let URLs expire)."""
        self.offset += seconds


async def run_simulated(
    jobs: str | Path,
    out: str | Path,
    config: BatchConfig | None = None,
    *,
    clock: SimulatedClock | None = None,
    **kwargs: Any,
) -> RunSummary:
    """:func:`wanbatch.run_batch` on a simulated clock (a fresh one unless ``clock`` is given)."""
    return await run_batch(jobs, out, config, clock=clock or SimulatedClock(), **kwargs)
