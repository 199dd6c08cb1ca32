"""Backoff, parse_retry_after and Aimd: pure values, no loop, no clock."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wanbatch._policy import RETRY_AFTER_CAP, Aimd, Backoff, parse_retry_after

# -- Backoff ----------------------------------------------------------------------------------


def test_backoff_caps_grow_then_stop_at_maximum() -> None:
    b = Backoff(initial=1.0, maximum=60.0, multiplier=2.0)
    assert [b.cap(a) for a in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert b.delay(3, rand=1.0) == 4.0
    assert b.delay(3, rand=0.0) == 0.0
    assert b.delay(3, rand=0.5) == 2.0


@pytest.mark.parametrize("attempt", [64, 1_100, 10_000, 10**9])
def test_backoff_huge_attempts_clamp_instead_of_overflowing(attempt: int) -> None:
    assert Backoff().delay(attempt, rand=1.0) == 60.0
    assert Backoff(multiplier=10.0).delay(attempt, rand=0.25) == 15.0


def test_backoff_attempt_zero_or_negative_is_treated_as_the_first() -> None:
    assert Backoff().cap(0) == Backoff().cap(-5) == 1.0


@given(
    attempt=st.integers(min_value=1, max_value=100_000),
    rand=st.floats(min_value=0.0, max_value=1.0),
    retry_after=st.none() | st.floats(allow_nan=True, allow_infinity=True),
)
def test_backoff_is_always_within_bounds(
    attempt: int, rand: float, retry_after: float | None
) -> None:
    delay = Backoff(initial=0.5, maximum=30.0).delay(attempt, retry_after=retry_after, rand=rand)
    assert 0.0 <= delay <= 30.0
    assert not math.isnan(delay)


def test_backoff_honours_retry_after_within_the_cap() -> None:
    b = Backoff(initial=1.0, maximum=60.0)
    assert b.delay(1, retry_after=7.0, rand=0.1) == 7.0  # the server asked for longer
    assert b.delay(6, retry_after=7.0, rand=1.0) == 32.0  # our own backoff is longer still
    assert b.delay(1, retry_after=600.0, rand=0.0) == 60.0  # capped at maximum
    assert b.delay(1, retry_after=-3.0, rand=0.5) == 0.5  # nonsense counts as zero
    assert b.delay(1, retry_after=math.nan, rand=0.5) == 0.5


@pytest.mark.parametrize("rand", [-0.1, 1.5, math.nan])
def test_backoff_rejects_a_bad_random_draw(rand: float) -> None:
    with pytest.raises(ValueError, match="rand"):
        Backoff().delay(1, rand=rand)


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 5.0, "maximum": 1.0}, {"multiplier": 0.5}, {"maximum": math.inf}],
)
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_backoff_is_a_frozen_value() -> None:
    b = Backoff()
    with pytest.raises(AttributeError):
        b.initial = 3.0  # type: ignore[misc]
    assert b == Backoff(1.0, 60.0, 2.0)


# -- parse_retry_after -------------------------------------------------------------------------

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),  # negative: do not wait at all
        ("99999", RETRY_AFTER_CAP),  # huge: capped
        ("1e9", None),  # not RFC delta-seconds
        ("soon", None),
        ("", None),
        ("   ", None),
        (None, None),
        ("Wed, 32 Foo 2015 25:61:00 GMT", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after_values(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def _http_date(unix: float) -> str:
    return format_datetime(datetime.fromtimestamp(unix, tz=timezone.utc), usegmt=True)


def test_parse_retry_after_http_date() -> None:
    assert parse_retry_after(_http_date(NOW + 30), NOW) == 30.0
    assert parse_retry_after(_http_date(NOW - 30), NOW) == 0.0  # in the past
    assert parse_retry_after(_http_date(NOW + 86_400), NOW) == RETRY_AFTER_CAP
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    # a date without a zone is UTC (RFC 5322 "-0000")
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000", 1445412470.0) == 10.0


def test_parse_retry_after_date_needs_now() -> None:
    assert parse_retry_after(_http_date(NOW + 30), None) is None
    assert parse_retry_after("12", None) == 12.0


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, NOW)
    assert result is None or 0.0 <= result <= RETRY_AFTER_CAP


# -- Aimd --------------------------------------------------------------------------------------


def test_aimd_slow_starts_from_the_initial_window_never_above_maximum() -> None:
    assert Aimd(5).effective == 5  # the default --concurrency 5: starts at --concurrency
    assert Aimd(3).effective == 3
    assert Aimd(20).effective == 5  # --concurrency 20: the first wave is the documented cap
    assert Aimd(20, initial=2).effective == 2
    assert Aimd(5, limit=2.7).effective == 2
    assert Aimd(5, limit=99).effective == 5
    assert Aimd(5, limit=0.1, minimum=2).effective == 2


def test_aimd_slow_start_doubles_per_round_trip_up_to_maximum() -> None:
    # A raised quota (real cap 20): no 429, so the limit reaches 20 in two round trips.
    a = Aimd(20)
    levels = []
    for _ in range(3):  # a round trip at level L completes L calls
        for _ in range(a.effective):
            a = a.on_success()
        levels.append(a.effective)
    assert levels == [10, 20, 20]
    assert a.ceiling is None


def test_aimd_slow_start_ends_at_the_first_429() -> None:
    a = Aimd(20).on_success()  # 6 allowed; the 6th in flight is refused: the cap is 5
    a = a.on_throttle(1.0, level=6)
    assert (a.effective, a.ceiling) == (5, 6)  # back to the step that held: no halving
    for _ in range(10):
        a = a.on_success()
    assert a.effective == 5  # the plateau: no more +1 per success


def test_aimd_slow_start_steps_one_level_per_ramp_interval() -> None:
    a = Aimd(20, ramp_interval=0.1)
    assert a.ramp_due(0.0) == 0.1
    a = a.on_tick(3.0)  # the first tick only starts the clock
    assert (a.effective, a.ramp_at) == (5, 3.0)
    assert a.on_tick(3.05) is a  # not due yet
    assert a.ramp_due(3.05) == pytest.approx(0.05)
    a = a.on_tick(3.1)
    assert a.effective == 6
    a = a.on_tick(10.0)  # a long gap (nobody waited) still earns one step, not 69
    assert a.effective == 7
    for step in range(1, 20):
        a = a.on_tick(10.0 + step * 0.1)
    assert a.effective == 20 and not a.ramping and a.ramp_due(99.0) is None


def test_aimd_time_steps_stop_with_a_ceiling_or_without_an_interval() -> None:
    assert Aimd(20).ramp_due(0.0) is None  # no interval: successes only
    assert Aimd(20).on_tick(5.0) == Aimd(20)
    a = Aimd(20, ramp_interval=0.1).on_tick(0.0).on_tick(0.1).on_throttle(0.2, level=6)
    assert (a.ceiling, a.ramping, a.ramp_due(1.0)) == (6, False, None)
    assert a.on_tick(5.0) is a


def test_aimd_exploring_is_a_level_not_yet_known_to_fit() -> None:
    a = Aimd(20)
    assert not a.exploring  # the first wave: a refusal there is a real burst
    a = a.on_success()
    assert a.exploring  # slow start past its first wave
    a = a.on_throttle(1.0, level=6)
    assert not a.exploring  # the safe level
    assert not Aimd(5).on_success().exploring  # at maximum from the start: nothing to explore


@pytest.mark.parametrize(
    "kwargs",
    [
        {"maximum": 0},
        {"maximum": 3, "minimum": 4},
        {"maximum": 3, "decrease": 1.0},
        {"maximum": 3, "decrease": 0.0},
        {"maximum": 3, "probe_gap": 0},
        {"maximum": 3, "fast_gap": 0},
        {"maximum": 3, "initial": 0},
        {"maximum": 3, "fast_probes": -1},
        {"maximum": 3, "window": -1.0},
        {"maximum": 3, "ramp_interval": 0.0},
    ],
)
def test_aimd_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Aimd(**kwargs)  # type: ignore[arg-type]


def test_aimd_a_burst_of_throttles_cuts_once() -> None:
    a = Aimd(16, initial=16, window=2.0, ceiling=17).on_throttle(100.0)  # 16 held before
    assert (a.effective, a.ceiling) == (8, 16)
    b = a.on_throttle(100.1)  # the same burst: no second halving ...
    assert (b.effective, b.ceiling, b.last_cut) == (8, 15, 100.0)  # ... one more call did not fit
    c = b.on_throttle(101.9)
    assert (c.effective, c.ceiling) == (8, 14)
    d = c.on_throttle(102.0)  # a new burst, past the window
    assert (d.effective, d.ceiling, d.last_cut) == (4, 8, 102.0)


def test_aimd_a_big_first_burst_finds_the_cap_at_once() -> None:
    # 8 started together, the service held 4 and refused 4: at most 8 - 4 fit.
    a = Aimd(8, initial=8)
    for t in (0.1, 0.1, 0.1, 0.1):
        a = a.on_throttle(t, level=8)
    assert (a.effective, a.ceiling) == (4, 5)
    assert a.fast_left == 0  # finding the cap is not a drop: no quick probes
    # ... and a refusal storm never takes the limit below the minimum.
    for _ in range(20):
        a = a.on_throttle(0.2)
    assert (a.effective, a.ceiling) == (1, 1)


def test_aimd_throttle_level_sets_the_ceiling_and_the_cut() -> None:
    # The limit was 20 but only 6 were in flight when the service refused: the cap is below 6.
    a = Aimd(20, initial=20).on_throttle(0.0, level=6)
    assert (a.ceiling, a.effective) == (6, 5)  # no ceiling known yet: step back below 6
    b = Aimd(20, initial=20, ceiling=21).on_throttle(0.0, level=6)
    assert (b.ceiling, b.effective) == (6, 3)  # 20 used to hold: a drop, cut (AIMD)


def test_aimd_never_below_minimum() -> None:
    a = Aimd(4, minimum=2)
    for i in range(10):
        a = a.on_throttle(float(i * 10))
    assert a.effective == 2
    assert a.current >= 2


def test_aimd_never_above_maximum() -> None:
    a = Aimd(3)
    for _ in range(1000):
        a = a.on_success()
    assert a.effective == 3
    assert a.current == 3.0


def _found(cap: int = 5) -> Aimd:
    """An Aimd that found a cap of ``cap`` (refused at cap + 1) and recovered to it."""
    a = Aimd(20, limit=float(cap + 1)).on_throttle(0.0, level=cap + 1)
    while a.effective < cap:
        a = a.on_success()
    assert (a.effective, a.ceiling, a.credit) == (cap, cap + 1, 0)
    return a


def test_aimd_recovers_fast_to_the_safe_level_then_probes_once_per_gap() -> None:
    a = Aimd(20, limit=6.0, ceiling=7).on_throttle(0.0)  # 6 held, now the 6th is refused
    assert (a.effective, a.ceiling) == (3, 6)
    a = a.on_success().on_success()
    assert a.effective == 5  # fast recovery: +1 per success up to ceiling - 1
    assert a.on_success().effective == 5  # ... and not past it
    a = _found()  # the steady plateau (no drop, so no quick probes)
    for _ in range(a.probe_gap - 1):
        a = a.on_success()
    assert (a.effective, a.probing) == (5, False)  # the plateau: 63 calls at the safe level
    a = a.on_success()
    assert (a.effective, a.probing) == (6, True)  # ... then one probe of level 6


def test_aimd_a_failed_probe_retreats_to_the_safe_level_without_a_cut() -> None:
    a = _found()
    for _ in range(a.probe_gap):
        a = a.on_success()
    assert a.probing
    b = a.on_throttle(50.0, level=6)
    assert (b.effective, b.ceiling, b.probing, b.credit) == (5, 6, False, 0)
    assert b.fast_left == 0  # the ceiling held: not a drop
    for _ in range(a.probe_gap - 1):
        b = b.on_success()
    assert not b.probing  # the next probe is a full gap later


def test_aimd_a_successful_probe_forgets_the_ceiling_and_slow_starts() -> None:
    a = _found()
    for _ in range(a.probe_gap):
        a = a.on_success()
    assert (a.effective, a.probing) == (6, True)
    for _ in range(6):  # a whole round trip at level 6 without a 429: the cap grew
        a = a.on_success()
    assert (a.ceiling, a.effective) == (None, 7)
    for _ in range(7):
        a = a.on_success()
    assert a.effective == 14  # slow start again: doubling per round trip


def test_aimd_a_drop_arms_quick_probes() -> None:
    a = _found()  # cap 5 known, then the cap drops to 2: refused at level 5
    a = a.on_throttle(100.0, level=5)
    assert (a.ceiling, a.fast_left) == (5, a.fast_probes)
    a = a.on_throttle(100.1).on_throttle(100.2)  # two more refusals in the same burst
    assert (a.effective, a.ceiling) == (2, 3)
    gaps = []
    for probe in range(a.fast_probes + 1):
        n = 0
        while not a.probing:
            a = a.on_success()
            n += 1
        gaps.append(n)
        a = a.on_throttle(200.0 + 10 * probe, level=3)  # the probe of 3 is refused
    assert gaps == [a.fast_gap] * a.fast_probes + [a.probe_gap]  # then back to the slow rate
    assert (a.effective, a.ceiling, a.fast_left) == (2, 3, 0)


def test_aimd_a_refusal_below_a_held_level_after_a_probe_is_a_drop() -> None:
    a = _found()
    for _ in range(a.probe_gap):
        a = a.on_success()
    a = a.on_throttle(10.0, level=6).on_throttle(10.5)  # the probe, then one more refusal
    assert (a.effective, a.ceiling, a.fast_left) == (4, 5, a.fast_probes)


def test_aimd_is_a_frozen_value() -> None:
    a = Aimd(5)
    b = a.on_throttle(0.0)
    assert a.effective == 5 and b.effective == 4
    with pytest.raises(AttributeError):
        a.limit = 1.0  # type: ignore[misc]
