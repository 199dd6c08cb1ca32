"""Aimd against a simulated service with a hidden concurrency cap (pure discrete-event model).

The model mirrors what :class:`wanbatch._pacing.Pacer` does with the value: call starts spaced by
``1/rps`` (or not at all), at most ``Aimd.effective`` in flight, a shared cool-down after each
429 except a failed probe, the level a 429 refused = the peak in flight since the last cut,
growth only while there is demand. The service holds at most ``cap`` calls (optionally also at
most ``service_rps`` accepted calls per sliding second, as the mock) and refuses one more at
once (429 after ``reject`` seconds). The targets (README, Benchmarks: the pacing rows):
>= 95 % of cap/latency with <= 3 % of calls throttled, start-up included; a changed cap
followed within a few seconds.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field, replace

import pytest

from wanbatch._policy import Aimd


@dataclass(frozen=True)
class Outcome:
    throughput: float  # completed calls / (cap * duration / mean latency)
    throttled: float  # 429s / all calls
    final: Aimd
    end: float  # simulated seconds at the end
    #: (time, calls the service holds, 429s so far, effective limit) after every event.
    trace: list[tuple[float, int, int, int]] = field(repr=False)

    def settle(self, start: float, end: float, cap: int, window: float = 2.0) -> float | None:
        """Seconds from ``start`` until a ``window`` with no new 429 and mean held >= 0.8 cap.

        The criterion of ``benchmarks/bench_pacing.py`` (which samples the mock every 100 ms).
        """
        samples: list[tuple[float, int, int]] = []
        k, held, thr = 0, 0, 0
        for step in range(int((end - start) / 0.1) + 1):
            t = start + step * 0.1
            while k < len(self.trace) and self.trace[k][0] <= t:
                _, held, thr, _ = self.trace[k]
                k += 1
            samples.append((t, held, thr))
        n = round(window / 0.1)
        for i in range(len(samples) - n):
            win = samples[i : i + n + 1]
            if win[-1][2] == win[0][2] and sum(s[1] for s in win) / len(win) >= 0.8 * cap:
                return samples[i][0] - start
        return None

    def first_reached(self, limit: int) -> float | None:
        """Simulated time at which the effective limit first reached ``limit``."""
        return next((t for t, _, _, eff in self.trace if eff >= limit), None)


def simulate(
    cap: int | list[tuple[float, int]],
    maximum: int,
    *,
    latency: tuple[float, float] = (60.0, 120.0),
    reject: float = 0.3,
    rps: float | None = 5.0,
    service_rps: int | None = None,
    cooldown: float = 1.0,
    duration: float = 6 * 3600.0,
    jobs: int | None = None,
    seed: int = 1,
    aimd: Aimd | None = None,
    plain: bool = False,
) -> Outcome:
    """Run ``jobs`` jobs (or an endless queue for ``duration`` simulated seconds).

    ``cap`` may be a schedule ``[(from_time, cap), ...]`` to change the hidden cap mid-run.
    ``plain=True`` replaces the growth rule by classic additive increase (+1 per round trip,
    no remembered ceiling), for comparison. With ``jobs``, throughput is against the ideal
    ``cap(0) * end / mean latency`` (the benchmark's measure, the drain of the last calls
    included).
    """
    schedule = [(0.0, cap)] if isinstance(cap, int) else cap
    rng = random.Random(seed)
    aimd = aimd or Aimd(maximum=maximum, window=max(2.0, 2 * cooldown))
    interval = 0.0 if rps is None else 1.0 / rps
    now = next_start = cooldown_until = 0.0
    held = in_flight = peak = done = throttled = 0
    accepted: list[float] = []  # the service's accepted-call times (its rate window)
    pending: list[tuple[float, bool]] = []  # (when, ok)
    trace = [(0.0, 0, 0, aimd.effective)]

    def cap_at(t: float) -> int:
        return [c for start, c in schedule if start <= t][-1]

    def queued() -> int:
        return 10**9 if jobs is None else jobs - done - in_flight

    def running() -> bool:
        return now < duration if jobs is None else done < jobs

    while running():
        if (
            now >= cooldown_until
            and now >= next_start
            and in_flight < aimd.effective
            and queued() > 0
        ):
            in_flight += 1
            peak = max(peak, in_flight)
            next_start = now + interval
            accepted = [a for a in accepted if a > now - 1.0]
            if held >= cap_at(now) or (service_rps is not None and len(accepted) >= service_rps):
                heapq.heappush(pending, (now + reject, False))
            else:
                held += 1
                accepted.append(now)
                heapq.heappush(pending, (now + rng.uniform(*latency), True))
                trace.append((now, held, throttled, aimd.effective))
            continue
        wakes = [pending[0][0]] if pending else []
        if in_flight < aimd.effective and queued() > 0:
            wakes.append(max(next_start, cooldown_until))
        now = min(wakes)
        while pending and pending[0][0] <= now:
            _, ok = heapq.heappop(pending)
            in_flight -= 1
            if ok:
                held -= 1
                done += 1
                if min(queued(), maximum) + in_flight + 1 >= aimd.effective:  # demand
                    aimd = _plain_success(aimd) if plain else aimd.on_success()
            else:
                throttled += 1
                if not aimd.probing:  # a failed probe pauses nobody (Pacer.on_throttle)
                    cooldown_until = max(cooldown_until, now + cooldown)
                before = aimd
                if plain:
                    aimd = _plain_throttle(aimd, now)
                else:
                    aimd = aimd.on_throttle(now, level=max(1, peak))
                if aimd is not before:
                    peak = in_flight
            trace.append((now, held, throttled, aimd.effective))
    mean_latency = sum(latency) / 2
    if jobs is None:
        grid = range(0, int(duration), 60)
        ideal = sum(cap_at(t) for t in grid) / len(grid) * duration / mean_latency
    else:
        ideal = cap_at(0.0) * now / mean_latency
    return Outcome(done / ideal, throttled / (done + throttled), aimd, now, trace)


def _plain_success(aimd: Aimd) -> Aimd:
    limit = min(float(aimd.maximum), aimd.current + 1.0 / aimd.current)
    return replace(aimd, limit=limit)


def _plain_throttle(aimd: Aimd, now: float) -> Aimd:
    if aimd.last_cut is not None and now < aimd.last_cut + aimd.window:
        return aimd  # one halving per burst
    return replace(aimd, limit=max(1.0, aimd.current / 2), last_cut=now)


@pytest.mark.parametrize(
    ("cap", "maximum", "latency"),
    [
        (5, 6, (60.0, 120.0)),  # the documented cap, --concurrency one too high
        (5, 20, (60.0, 120.0)),  # --concurrency far too high
        (5, 50, (5.0, 10.0)),
        (3, 5, (60.0, 120.0)),  # another client uses 2 of the account's 5
        (3, 20, (60.0, 120.0)),  # ... below the slow-start window
        (1, 5, (20.0, 40.0)),
        (10, 20, (60.0, 120.0)),  # a raised quota
    ],
)
def test_hidden_cap_is_found_with_high_throughput_and_few_429s(
    cap: int, maximum: int, latency: tuple[float, float]
) -> None:
    out = simulate(cap, maximum, latency=latency)
    assert out.throughput >= 0.95
    assert out.throttled <= 0.03
    assert out.final.effective in (cap, cap + 1)


@pytest.mark.parametrize("seed", range(1, 6))
def test_the_benchmark_batch_meets_the_targets_start_up_included(seed: int) -> None:
    # benchmarks/bench_pacing.py part 1: the mock holds 5 in flight and accepts 5 calls per
    # second, latency 2 s +/- 0.5 s; 200 jobs; --concurrency 20, no --rps. Whole run, from t=0.
    out = simulate(
        5, 20, latency=(1.5, 2.5), reject=0.005, rps=None, service_rps=5, jobs=200, seed=seed
    )
    assert out.throughput >= 0.95
    assert out.throttled <= 0.03
    # Slow start: the first wave is 5 calls, not 20, so the start-up costs one or two 429s.
    first_429 = next(i for i, e in enumerate(out.trace) if e[2] > 0)
    assert out.trace[first_429][0] >= 1.5  # nothing was refused before the first answer
    assert out.trace[-1][2] <= 4


def test_starting_at_maximum_was_the_start_up_burst() -> None:
    # Why slow start: opening with all 20 against a cap of 5 refuses 15 calls at once.
    kw = {"latency": (1.5, 2.5), "reject": 0.005, "rps": None, "service_rps": 5, "jobs": 200}
    burst = simulate(5, 20, aimd=Aimd(20, initial=20), **kw)  # type: ignore[arg-type]
    ours = simulate(5, 20, **kw)  # type: ignore[arg-type]
    assert burst.throttled > 0.03
    assert ours.throttled < burst.throttled / 2


def test_a_raised_quota_is_reached_in_a_few_round_trips_without_429() -> None:
    kw = {"latency": (1.5, 2.5), "reject": 0.005, "rps": None, "jobs": 2000}
    out = simulate(20, 20, **kw)  # type: ignore[arg-type]
    reached = out.first_reached(20)
    assert reached is not None and reached <= 2 * 2.5  # two round trips: 5 -> 10 -> 20
    assert out.throttled == 0.0
    assert out.throughput >= 0.95
    # The price of slow start when the quota really is 20: about one round trip of the run.
    at_once = simulate(20, 20, aimd=Aimd(20, initial=20), **kw)  # type: ignore[arg-type]
    assert out.end - at_once.end <= 2.0 * 2


def test_no_429_at_all_when_concurrency_matches_the_cap() -> None:
    out = simulate(5, 5)
    assert out.throttled == 0.0
    assert out.throughput >= 0.97


def test_follows_a_cap_that_drops_and_comes_back() -> None:
    hours = 3600.0
    out = simulate([(0.0, 5), (4 * hours, 2), (8 * hours, 5)], 8, duration=16 * hours)
    assert out.throughput >= 0.9  # includes two transitions
    assert out.throttled <= 0.03
    assert out.final.effective in (5, 6)


@pytest.mark.parametrize("raise_after", [4.0, 7.0, 10.0, 13.0, 16.0, 20.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cap_change_5_2_8_is_followed_within_seconds(raise_after: float, seed: int) -> None:
    # benchmarks/bench_pacing.py part 2: latency 0.5 s +/- 0.125 s, no rate cap, the cap
    # drops 5 -> 2 at t=10 and rises to 8 ``raise_after`` seconds later (10 s in the benchmark).
    up = 10.0 + raise_after
    out = simulate(
        [(0.0, 5), (10.0, 2), (up, 8)],
        20,
        latency=(0.375, 0.625),
        reject=0.005,
        rps=None,
        duration=up + 15.0,
        seed=seed,
    )
    down_s = out.settle(10.0, up, 2)
    up_s = out.settle(up, up + 15.0, 8)
    assert down_s is not None and down_s <= 3.0
    assert up_s is not None and up_s <= 6.0
    assert out.final.effective in (8, 9)


def test_a_raise_after_a_long_quiet_plateau_is_found_within_one_probe_gap() -> None:
    # No drop before the raise: the steady probe rate (1 per 64 calls) bounds the follow time.
    out = simulate(
        [(0.0, 5), (60.0, 8)],
        20,
        latency=(0.375, 0.625),
        reject=0.005,
        rps=None,
        duration=90.0,
    )
    up_s = out.settle(60.0, 90.0, 8)
    assert up_s is not None and up_s <= 64 / (5 / 0.5) + 3.0


def test_plain_aimd_misses_the_target() -> None:
    # Why the ceiling is remembered: classic AIMD saw-tooths between cap/2 and cap + 1.
    plain = simulate(5, 20, plain=True)
    ours = simulate(5, 20)
    assert plain.throughput < 0.9 or plain.throttled > 0.03
    assert ours.throughput > plain.throughput
