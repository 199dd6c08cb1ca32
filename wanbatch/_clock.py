"""The one source of time for a run: wall clock, monotonic clock and sleep.

The engine and its parts (the pacer, the API client's timings, the backoff waits, the expiry
checks, the progress bar) read time and wait only through a :class:`Clock`, passed down as
``clock=`` from :class:`~wanbatch.BatchRun`; :data:`SYSTEM_CLOCK` is the real one. A test
passes a simulated clock whose sleep only moves virtual time forward, so that backoff and
expiry behaviour is checked without real waiting.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    """Where a run's time comes from."""

    def now(self) -> float:
        """Wall-clock time, Unix seconds (compared with URL expiries and ``Date`` headers)."""
        ...

    def monotonic(self) -> float:
        """Seconds of a clock that never goes back (durations, deadlines)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a cancellation point, also for ``seconds <= 0``)."""
        ...


class SystemClock:
    """This computer's clocks and anyio's sleep."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SYSTEM_CLOCK"


#: The default clock of every part that takes ``clock=``.
SYSTEM_CLOCK: Clock = SystemClock()
