"""Pacer in virtual time: concurrency bound, request spacing, shared cool-down, AIMD.

No real sleeps: :class:`FakeClock` is the pacer's clock *and* sleep. Sleepers park on events;
a driver lets every runnable task run (many checkpoints), then jumps time to the earliest
sleeper's deadline (trio's ``MockClock`` autojump idea).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import pytest

from wanbatch._pacing import Pacer, PacerStatistics
from wanbatch._policy import Aimd

pytestmark = pytest.mark.anyio

EPS = 1e-9


class FakeClock:
    """A virtual monotonic clock whose ``sleep`` only returns when time is jumped forward."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), event))
        await event.wait()

    async def run(self, main: Callable[[], Awaitable[None]], *, limit: float = 1e7) -> None:
        """Run ``main`` to completion, jumping time whenever every task is blocked."""
        finished = anyio.Event()

        async def wrapper() -> None:
            await main()
            finished.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(wrapper)
            while True:
                for _ in range(50):  # let everything runnable run
                    await anyio.lowlevel.checkpoint()
                if finished.is_set():
                    break
                assert self._sleepers, "deadlock: every task waits and nobody sleeps"
                deadline = self._sleepers[0][0]
                assert deadline < limit, "virtual time ran away"
                self.now = max(self.now, deadline)
                while self._sleepers and self._sleepers[0][0] <= self.now:
                    heapq.heappop(self._sleepers)[2].set()


def make(clock: FakeClock, concurrency: int, rps: float | None = None, **kw: object) -> Pacer:
    return Pacer(concurrency, rps, clock=clock, **kw)  # type: ignore[arg-type]


async def test_concurrency_bound_holds() -> None:
    clock = FakeClock()
    pacer = make(clock, 3)
    rng = random.Random(7)
    in_slot = peak = done = 0
    limits: list[int] = []

    async def worker() -> None:
        nonlocal in_slot, peak, done
        for _ in range(5):
            async with pacer.slot():
                in_slot += 1
                peak = max(peak, in_slot)
                await clock.sleep(rng.uniform(1, 10))
                in_slot -= 1
            pacer.on_success()
            limits.append(pacer.statistics().limit)
            done += 1

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(worker)

    await clock.run(main)
    assert done == 100
    assert peak == 3
    assert max(limits) == 3  # the AIMD limit never exceeds concurrency
    stats = pacer.statistics()
    assert (stats.in_flight, stats.waiting, stats.throttles) == (0, 0, 0)


async def test_call_starts_are_spaced_by_the_rate() -> None:
    clock = FakeClock()
    pacer = make(clock, 10, rps=2.0)
    starts: list[float] = []

    async def worker() -> None:
        for _ in range(3):
            async with pacer.slot():
                starts.append(clock.now)
            pacer.on_success()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(worker)

    await clock.run(main)
    assert len(starts) == 30
    assert starts[0] == 0.0
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.5 - EPS  # never a burst
    assert starts[-1] == pytest.approx(29 * 0.5)  # and no time lost either


async def test_one_429_pauses_every_worker_until_the_shared_deadline() -> None:
    clock = FakeClock()
    pacer = make(clock, 4, rps=10.0, cooldown=1.0)
    starts: list[float] = []
    throttled_at: list[float] = []

    async def worker(n: int) -> None:
        for i in range(6):
            async with pacer.slot():
                starts.append(clock.now)
                await clock.sleep(2.0 + n * 0.1)
            if n == 0 and i == 2:
                throttled_at.append(clock.now)
                pacer.on_throttle(retry_after=5.0)  # the server asked for 5 s
                stats = pacer.statistics()
                assert stats.cooldown_remaining == pytest.approx(5.0)
                assert stats.throttles == 1
            else:
                pacer.on_success()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for n in range(4):
                tg.start_soon(worker, n)

    await clock.run(main)
    (t,) = throttled_at
    assert not [s for s in starts if t < s < t + 5.0 - EPS]  # nobody called during the pause
    after = sorted(s for s in starts if s >= t + 5.0 - EPS)
    assert after[0] == pytest.approx(t + 5.0)
    # The queue that built up during the pause leaves at the request rate, not as a burst.
    assert all(b - a >= 0.1 - EPS for a, b in itertools.pairwise(after))


async def test_cooldown_is_at_least_the_configured_pause() -> None:
    clock = FakeClock()
    pacer = make(clock, 2, cooldown=3.0)
    pacer.on_throttle(retry_after=0.5)
    assert pacer.statistics().cooldown_remaining == 3.0
    pacer.on_throttle(None)
    assert pacer.statistics().cooldown_remaining == 3.0
    started: list[float] = []

    async def main() -> None:
        async with pacer.slot():
            started.append(clock.now)

    await clock.run(main)
    assert started == [3.0]


async def test_a_429_during_a_capacity_wait_is_still_honoured() -> None:
    clock = FakeClock()
    pacer = make(clock, 1, cooldown=4.0)
    starts: list[float] = []

    async def holder() -> None:
        async with pacer.slot():
            starts.append(clock.now)
            await clock.sleep(1.0)
            pacer.on_throttle(None)  # another worker's 429 arrives while we still hold it

    async def waiter() -> None:
        await clock.sleep(0.5)
        async with pacer.slot():  # queued for capacity when the 429 arrives
            starts.append(clock.now)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            tg.start_soon(waiter)

    await clock.run(main)
    assert starts == [0.0, 5.0]


async def test_aimd_shrinks_on_throttle_and_grows_back() -> None:
    clock = FakeClock()
    pacer = make(clock, 8, cooldown=0.5)
    service_cap = 4
    held = 0
    in_slot = peak = 0
    limits: list[int] = []
    completed = 0

    async def worker() -> None:
        nonlocal held, in_slot, peak, completed
        while completed < 400:
            async with pacer.slot():
                in_slot += 1
                peak = max(peak, in_slot)
                if held >= service_cap:
                    await clock.sleep(0.1)
                    ok = False
                else:
                    held += 1
                    await clock.sleep(10.0)
                    held -= 1
                    ok = True
                in_slot -= 1
            if ok:
                completed += 1
                pacer.on_success()
            else:
                pacer.on_throttle(None)
            limits.append(pacer.statistics().limit)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(worker)

    await clock.run(main)
    stats = pacer.statistics()
    assert peak <= 8
    assert max(limits) <= 8
    assert min(limits) <= 4  # slow start (5) stepped back to the cap
    assert stats.limit in (4, 5)  # and settled at the hidden cap (probing one above)
    assert stats.ceiling in (5, None)
    assert stats.throttles <= 0.03 * completed + 3  # a few to find the cap, then ~1 per 64
    # Throughput: 400 calls of 10 s at cap 4 take >= 1000 s; allow the probing overhead.
    assert clock.now <= 1000 * 1.08


async def test_shrinking_below_the_borrowed_tokens_lets_holders_finish() -> None:
    clock = FakeClock()
    pacer = make(clock, 4, aimd=Aimd(4, window=0.0, ceiling=5))  # 4 held before: a 429 is a drop
    starts: list[float] = []

    async def long_call(n: int) -> None:
        async with pacer.slot():
            starts.append(clock.now)
            await clock.sleep(10.0 + n)

    async def newcomer() -> None:
        await clock.sleep(1.0)
        pacer.on_throttle(None)  # cooldown 1 s; limit 4 -> 2 with 4 in flight
        assert pacer.statistics().limit == 2
        async with pacer.slot():
            starts.append(clock.now)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for n in range(4):
                tg.start_soon(long_call, n)
            tg.start_soon(newcomer)

    await clock.run(main)
    # The newcomer waits until in flight < 2, i.e. three of the four have finished (t = 12).
    assert starts[-1] == 12.0


async def test_a_cancelled_waiter_leaves_no_trace() -> None:
    clock = FakeClock()
    pacer = make(clock, 1)
    entered: list[str] = []

    async def holder() -> None:
        async with pacer.slot():
            await clock.sleep(5.0)

    async def impatient() -> None:
        with anyio.move_on_after(0):  # cancelled while queued for capacity (real-time 0 s)
            async with pacer.slot():
                entered.append("impatient")

    async def patient() -> None:
        await clock.sleep(1.0)
        async with pacer.slot():
            entered.append("patient")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await anyio.lowlevel.checkpoint()
            tg.start_soon(impatient)
            tg.start_soon(patient)

    await clock.run(main)
    assert entered == ["patient"]
    assert pacer.statistics() == PacerStatistics(1, 0, 0, 0, 0.0, None)


def test_growth_needs_demand() -> None:
    # A limit that was never reached cannot grow from successes (no evidence it is safe).
    clock = FakeClock()
    pacer = make(clock, 8, aimd=Aimd(8, limit=4.0))
    for _ in range(50):
        pacer.on_success()  # nobody waiting, nobody in flight: demand 1 < 4
    assert pacer.statistics().limit == 4


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0, None), {}),
        ((2, 0.0), {}),
        ((2, float("inf")), {}),
        ((2, None), {"cooldown": -1.0}),
        ((2, None), {"aimd": Aimd(3)}),
    ],
)
def test_rejects_nonsense(args: tuple[int, float | None], kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Pacer(*args, **kwargs)  # type: ignore[arg-type]


class HiddenCap:
    """A fake service in virtual time: holds at most ``cap(now)`` calls, refuses one more."""

    def __init__(self, clock: FakeClock, cap: Callable[[float], int], latency: float) -> None:
        self.clock, self.cap, self.latency = clock, cap, latency
        self.rng = random.Random(5)
        self.held = self.calls = self.throttled = 0
        self.refused_at: list[float] = []
        self.starts: list[tuple[float, int]] = []  # (time, held after the start) of accepted calls

    async def worker(self, pacer: Pacer, jobs: list[int]) -> None:
        while jobs:
            jobs.pop()
            async with pacer.slot():
                self.calls += 1
                if self.held >= self.cap(self.clock.now):
                    await self.clock.sleep(0.005)
                    ok = False
                else:
                    self.held += 1
                    self.starts.append((self.clock.now, self.held))
                    await self.clock.sleep(self.latency * self.rng.uniform(0.75, 1.25))
                    self.held -= 1
                    ok = True
            if ok:
                pacer.on_success()
            else:
                self.throttled += 1
                self.refused_at.append(self.clock.now)
                jobs.append(0)  # the engine retries the job
                pacer.on_throttle(None)

    async def run(self, pacer: Pacer, jobs: int, workers: int) -> None:
        queue = [0] * jobs
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(self.worker, pacer, queue)


async def test_slow_start_the_first_wave_is_not_the_whole_concurrency() -> None:
    # --concurrency 20 against the documented cap of 5: 5 go out first, not 20.
    clock = FakeClock()
    pacer = make(clock, 20)
    assert pacer.statistics().limit == 5
    service = HiddenCap(clock, lambda _: 5, latency=2.0)
    first_wave: list[int] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(service.run, pacer, 200, 20)
            await clock.sleep(0.01)
            first_wave.append(pacer.statistics().in_flight)

    await clock.run(main)
    assert first_wave == [5]
    # The time-based step tries a 6th call after 0.1 s; the refusal ends slow start at once.
    assert len([t for t in service.refused_at if t < 10.0]) == 1  # slow start: one step over
    assert min(service.refused_at) < 0.5
    assert service.throttled / service.calls <= 0.03
    assert clock.now <= 200 / (5 / 2.0) * 1.05  # >= 95 % of the ideal, start-up included


async def test_slow_start_reaches_a_raised_quota_in_two_round_trips() -> None:
    clock = FakeClock()
    pacer = make(clock, 20)
    service = HiddenCap(clock, lambda _: 20, latency=2.0)
    await clock.run(lambda: service.run(pacer, 400, 20))
    assert service.throttled == 0
    reached = next(t for t, held in service.starts if held == 20)
    # 15 time-based steps of 0.05 s, not two round trips (5 -> 10 -> 20 at >= 1.5 s each).
    assert reached <= 15 * 0.05 + 0.05
    assert pacer.statistics().limit == 20


async def test_slow_start_steps_only_while_calls_wait() -> None:
    # Three workers against a limit of 5: nobody ever waits, so time alone grows nothing.
    clock = FakeClock()
    pacer = make(clock, 20)
    service = HiddenCap(clock, lambda _: 20, latency=2.0)
    await clock.run(lambda: service.run(pacer, 30, 3))
    assert pacer.statistics().limit == 5
    assert max(held for _, held in service.starts) == 3


async def test_without_ramp_interval_slow_start_grows_per_round_trip() -> None:
    clock = FakeClock()
    pacer = make(clock, 20, ramp_interval=None)
    service = HiddenCap(clock, lambda _: 20, latency=2.0)
    await clock.run(lambda: service.run(pacer, 400, 20))
    reached = next(t for t, held in service.starts if held == 20)
    assert 1.5 <= reached <= 2 * 2.5  # 5 -> 10 -> 20, each step one round trip


async def test_the_refusal_that_ends_slow_start_pauses_nobody() -> None:
    # Slow start went past its first wave: the 429 was one expected overstep, not a burst.
    clock = FakeClock()
    pacer = make(clock, 20, cooldown=5.0)
    service = HiddenCap(clock, lambda _: 5, latency=0.5)
    await clock.run(lambda: service.run(pacer, 100, 20))
    assert service.throttled == len(service.refused_at) >= 1
    first = min(service.refused_at)
    assert pacer.statistics().ceiling in (5, 6)
    # A 5 s cool-down after the first refusal would leave no start between it and +5 s.
    assert any(first < t < first + 1.0 for t, _ in service.starts)


async def test_a_cap_that_drops_then_rises_is_followed_within_seconds() -> None:
    # bench_pacing part 2 in virtual time: latency 0.5 s, cap 5 -> 2 at t=10 -> 8 at t=20.
    clock = FakeClock()
    pacer = make(clock, 20)

    def cap(t: float) -> int:
        return 5 if t < 10.0 else 2 if t < 20.0 else 8

    service = HiddenCap(clock, cap, latency=0.5)
    await clock.run(lambda: service.run(pacer, 420, 20))
    down = [held for t, held in service.starts if 12.0 <= t < 20.0]
    assert max(down) <= 2  # after the drop the service never holds more than 2 ...
    up = next(t for t, held in service.starts if t >= 20.0 and held == 8)
    assert up - 20.0 <= 5.0  # ... and after the raise the full 8 are in use within seconds
    assert service.throttled <= 0.06 * service.calls  # a changing cap: a few probes per change
    assert pacer.statistics().limit in (8, 9)


async def test_try_acquire_takes_a_free_slot_only_when_nothing_asks_to_wait() -> None:
    clock = FakeClock()
    pacer = make(clock, 2, rps=1.0, cooldown=3.0)
    first = pacer.try_acquire()
    assert first is not None and pacer.statistics().in_flight == 1
    assert pacer.try_acquire() is None  # the rate: the next start is 1 s away
    clock.now = 1.0
    second = pacer.try_acquire()
    assert second is not None
    clock.now = 2.0
    assert pacer.try_acquire() is None  # no capacity: both slots are held
    pacer.release(first)
    pacer.on_throttle()  # a 429 (not a probe): everyone waits out the cool-down
    pacer.release(second)
    assert pacer.statistics().in_flight == 0
    assert pacer.try_acquire() is None  # free slots, but the cool-down runs until 5.0
    clock.now = 5.5
    third = pacer.try_acquire()
    assert third is not None
    pacer.release(third)
    assert pacer.statistics().in_flight == 0


async def test_try_acquire_does_not_jump_the_queue() -> None:
    clock = FakeClock()
    pacer = make(clock, 1)
    held = pacer.try_acquire()
    assert held is not None
    order: list[str] = []

    async def waiter() -> None:
        token = await pacer.acquire()
        order.append("waiter")
        pacer.release(token)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await clock.sleep(0.1)
            pacer.release(held)  # the slot is free, but somebody queued for it first
            assert pacer.try_acquire() is None
            await clock.sleep(0.1)
        order.append("main")

    await clock.run(main)
    assert order == ["waiter", "main"]
