"""The one limiter that decides the pace of generation calls: slots, rate, AIMD, cool-down.

I/O shell: anyio only (no aiohttp/tqdm). Time and sleep come from a
:class:`~wanbatch._clock.Clock`, so tests drive it in virtual time; the decisions come from the pure
:class:`~wanbatch._policy.Aimd` value.

A caller does::

    async with pacer.slot():
        result = await client.generate(...)
    pacer.on_success()            # or, on a 429: pacer.on_throttle(exc.retry_after)

and :meth:`Pacer.slot` waits, in this order, for

1. the shared cool-down: after a 429 *every* worker waits until one deadline, so a burst of
   429s does not turn into a burst of retries (except after a failed probe of the remembered
   ceiling, a single expected refusal: see :meth:`Pacer.on_throttle`);
2. the request rate: call starts are spaced ``1 / rps`` apart (a reservation queue: no burst,
   which is what ``Throttling.BurstRate`` punishes: docs/service.md, Rate limits);
3. capacity: fewer than the AIMD limit in flight. The limit is an ``anyio.CapacityLimiter``
   whose ``total_tokens`` follows :attr:`Aimd.effective`; when it shrinks below the tokens
   borrowed, the excess holders simply finish and nobody new gets in until the count is below.

The limit *slow-starts*: the first wave is ``min(concurrency, 5)`` calls (5 = the documented
per-account cap); each success adds one (doubling per round trip), and while calls wait for a
slot, one of them sleeps ``ramp_interval`` (0.05 s) and adds one more, until the first 429 or
``concurrency``. So ``--concurrency 20`` against a cap of 5 costs one 429 at start-up instead of
a burst of 15 refusals, and a raised quota of 20 is in full use after 0.75 s, not after two
generations (2-4 minutes on the real service). The limit is never above ``concurrency``; with the
default ``--concurrency 5`` it starts there.

A cool-down that starts while a caller waits for capacity is honoured too: a caller that gets a
token while a cool-down is running (typically the very token the throttled call gave back, just
before the engine reported the 429 and the limit was cut) returns it and queues again, so it
waits out the deadline, takes a fresh rate reservation and respects the cut limit.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from wanbatch._clock import SYSTEM_CLOCK, Clock
from wanbatch._policy import Aimd

__all__ = ["Pacer", "PacerStatistics"]


@dataclass(frozen=True, slots=True)
class PacerStatistics:
    """A snapshot of the pacer (anyio's ``statistics()`` style)."""

    #: The current effective concurrency limit (AIMD), at most ``concurrency``.
    limit: int
    #: Calls inside :meth:`Pacer.slot` now.
    in_flight: int
    #: Callers waiting in :meth:`Pacer.slot` (cool-down, rate or capacity).
    waiting: int
    #: 429s reported through :meth:`Pacer.on_throttle` so far.
    throttles: int
    #: Seconds left of the shared cool-down (0 when none is active).
    cooldown_remaining: float
    #: The lowest level the service throttled at, while remembered (see :class:`Aimd`).
    ceiling: int | None = None


class Pacer:
    """Concurrency bound + request rate + adaptive (AIMD) limit + shared 429 cool-down.

    Args:
        concurrency: the most calls ever in flight (``--concurrency``).
        rps: the most call starts per second (``--rps``), or ``None`` for no rate limit.
        cooldown: seconds every worker pauses after a 429 (at least; ``Retry-After`` extends it).
        aimd: the adaptive limit's starting value; default ``Aimd(maximum=concurrency)`` (slow
            start from ``min(concurrency, 5)``), with a burst window no shorter than twice the
            cool-down.
        clock: where the pacer reads monotonic time and sleeps (the run's; virtual in tests).
    """

    def __init__(
        self,
        concurrency: int,
        rps: float | None,
        *,
        cooldown: float = 1.0,
        ramp_interval: float | None = 0.05,
        aimd: Aimd | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if rps is not None and not (rps > 0 and math.isfinite(rps)):
            raise ValueError(f"rps must be a positive number or None, got {rps!r}")
        if cooldown < 0:
            raise ValueError(f"cooldown must be >= 0, got {cooldown!r}")
        if aimd is None:
            aimd = Aimd(
                maximum=concurrency, window=max(2.0, 2 * cooldown), ramp_interval=ramp_interval
            )
        elif aimd.maximum > concurrency:
            raise ValueError("aimd.maximum must not exceed concurrency")
        self._aimd = aimd
        self._interval = 0.0 if rps is None else 1.0 / rps
        self._cooldown = cooldown
        self._clock = clock.monotonic
        self._sleep = clock.sleep
        self._limiter = anyio.CapacityLimiter(aimd.effective)
        self._next_start = -math.inf  # the earliest time the next call may start
        self._cooldown_until = -math.inf
        self._in_flight = 0
        self._waiting = 0
        self._throttles = 0
        self._peak = 0  # the most in flight since the last cut: the level a 429 refused
        self._ramp_driver = False  # whether a waiter is sleeping until the next slow-start step

    # -- the slot -----------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for the cool-down, a rate reservation and capacity; hold the capacity inside."""
        token = self.try_acquire() or await self.acquire()
        try:
            yield
        finally:
            self.release(token)

    def try_acquire(self) -> object | None:
        """A slot now, if one is free and nothing asks to wait (nobody queued, no cool-down, no
        rate spacing due); else ``None``. The usual case in steady state, without the cost of
        queueing (a cancel scope and a scheduling round trip a call). Give it back with
        :meth:`release`.
        """
        if self._waiting:
            return None  # first come, first served
        now = self._clock()
        if now < self._cooldown_until or (self._interval > 0 and self._next_start > now):
            return None
        token = object()
        try:
            self._limiter.acquire_on_behalf_of_nowait(token)
        except anyio.WouldBlock:
            return None
        if self._over_limit():
            self._limiter.release_on_behalf_of(token)
            return None
        if self._interval > 0:
            self._next_start = now + self._interval
        self._taken()
        return token

    async def acquire(self) -> object:
        """Wait for the cool-down, a rate reservation and capacity; return the slot's token.

        Cancellation-safe: cancelled while waiting, it holds nothing.
        """
        token = object()  # a borrower per slot: one task may hold several slots
        self._waiting += 1
        try:
            while True:
                await self._wait_cooldown()
                if await self._drive_ramp():
                    continue
                await self._wait_rate()
                await self._limiter.acquire_on_behalf_of(token)
                if self._clock() >= self._cooldown_until and not self._over_limit():
                    break
                # A 429 arrived while we queued: the token may be the one the throttled call
                # just gave back, before the limit was cut. Give it back and queue again.
                self._limiter.release_on_behalf_of(token)
        finally:
            self._waiting -= 1
        self._taken()
        return token

    def release(self, token: object) -> None:
        """Give back a slot from :meth:`acquire` or :meth:`try_acquire`."""
        self._in_flight -= 1
        self._limiter.release_on_behalf_of(token)

    def _taken(self) -> None:
        self._in_flight += 1
        self._peak = max(self._peak, self._in_flight)

    async def _drive_ramp(self) -> bool:
        """Slow start's time-based step: one waiter sleeps until it is due, then grows the limit.

        Only when no slot is free (demand exceeds the limit) and nobody else drives it; the
        other waiters queue for capacity and take the slots the steps add (FIFO). Returns
        whether it drove a step (the caller then re-checks the cool-down and queues again).
        """
        if self._ramp_driver or self._limiter.available_tokens >= 1:
            return False
        if self._aimd.ramp_at is None:
            self._set(self._aimd.on_tick(self._clock()))  # start the ramp clock
        due = self._aimd.ramp_due(self._clock())
        if due is None:
            return False
        self._ramp_driver = True
        try:
            await self._sleep(due)
        finally:
            self._ramp_driver = False
        self._set(self._aimd.on_tick(self._clock()))
        return True

    def _over_limit(self) -> bool:
        return self._limiter.borrowed_tokens > self._limiter.total_tokens

    async def _wait_cooldown(self) -> None:
        # The deadline may move while we sleep (another 429): loop until it has passed.
        while (remaining := self._cooldown_until - self._clock()) > 0:
            await self._sleep(remaining)

    async def _wait_rate(self) -> None:
        if self._interval <= 0:
            return
        now = self._clock()
        start = max(now, self._next_start)
        self._next_start = start + self._interval  # reserve before sleeping: FIFO, no burst
        if start > now:
            await self._sleep(start - now)

    # -- feedback -----------------------------------------------------------------------------

    def on_success(self) -> None:
        """A call succeeded: let the AIMD limit grow, if the limit was what held us back.

        Growth is earned only while demand reaches the limit (callers waiting, or as many in
        flight as allowed), so a limit that was never used cannot grow past what was tested.
        """
        demand = self._in_flight + self._waiting + 1  # +1: the caller, out of its slot by now
        if demand >= self._aimd.effective:
            self._set(self._aimd.on_success())

    def on_throttle(self, retry_after: float | None = None) -> None:
        """The service answered 429: start the shared cool-down and cut the AIMD limit.

        The cool-down ends at ``now + max(cooldown, retry_after)`` (never earlier than a
        deadline already set). The cut happens at most once per burst (:class:`Aimd` window).

        A failed *probe* (the limit was at the remembered ceiling, or slow start had gone past its
        first wave: :attr:`Aimd.exploring`) starts
        no cool-down unless the server sent ``Retry-After``: it is one expected refusal, the
        limit steps back to the level that holds (which is full), so there is no burst to
        damp, and pausing every worker would only idle the slots that free up meanwhile. A
        second refusal inside the burst window is no longer a probe and pauses everyone.
        """
        now = self._clock()
        self._throttles += 1
        pause = 0.0 if self._aimd.exploring else self._cooldown
        if retry_after is not None and retry_after > pause:
            pause = retry_after
        if pause > 0:
            self._cooldown_until = max(self._cooldown_until, now + pause)
        before = self._aimd
        self._set(before.on_throttle(now, level=max(1, self._peak)))
        if self._aimd is not before:
            self._peak = self._in_flight  # measure the next overflow level afresh

    def _set(self, aimd: Aimd) -> None:
        self._aimd = aimd
        effective = aimd.effective
        if self._limiter.total_tokens != effective:
            # Growing wakes that many waiters; shrinking below the borrowed count lets the
            # excess holders finish (anyio allows total < borrowed).
            self._limiter.total_tokens = effective

    # -- introspection ------------------------------------------------------------------------

    @property
    def aimd(self) -> Aimd:
        """The current AIMD value."""
        return self._aimd

    def statistics(self) -> PacerStatistics:
        """A frozen snapshot: limit, in flight, waiting, throttles, cool-down left."""
        return PacerStatistics(
            limit=self._aimd.effective,
            in_flight=self._in_flight,
            waiting=self._waiting,
            throttles=self._throttles,
            cooldown_remaining=max(0.0, self._cooldown_until - self._clock()),
            ceiling=self._aimd.ceiling,
        )
