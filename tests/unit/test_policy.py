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


def test_aimd_starts_at_maximum_and_clamps_its_start() -> None:
    assert Aimd(5).effective == 5
    assert Aimd(5, limit=2.7).effective == 2
    assert Aimd(5, limit=99).effective == 5
    assert Aimd(5, limit=0.1, minimum=2).effective == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"maximum": 0},
        {"maximum": 3, "minimum": 4},
        {"maximum": 3, "decrease": 1.0},
        {"maximum": 3, "decrease": 0.0},
        {"maximum": 3, "probe": 0.0},
        {"maximum": 3, "increase": -1.0},
    ],
)
def test_aimd_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Aimd(**kwargs)  # type: ignore[arg-type]


def test_aimd_a_burst_of_throttles_cuts_once() -> None:
    a = Aimd(16, window=2.0).on_throttle(100.0)
    assert (a.effective, a.ceiling) == (8, 16)
    b = a.on_throttle(100.1)  # the same burst: no second halving ...
    assert (b.effective, b.ceiling, b.last_cut) == (8, 15, 100.0)  # ... one more call did not fit
    c = b.on_throttle(101.9)
    assert (c.effective, c.ceiling) == (8, 14)
    d = c.on_throttle(102.0)  # a new burst, past the window
    assert (d.effective, d.ceiling, d.last_cut) == (4, 8, 102.0)


def test_aimd_a_big_first_burst_finds_the_cap_at_once() -> None:
    # 8 started together, the service held 4 and refused 4: at most 8 - 4 fit.
    a = Aimd(8)
    for t in (0.1, 0.1, 0.1, 0.1):
        a = a.on_throttle(t, level=8)
    assert (a.effective, a.ceiling) == (4, 5)
    # ... and a refusal storm never takes the limit below the minimum.
    for _ in range(20):
        a = a.on_throttle(0.2)
    assert (a.effective, a.ceiling) == (1, 1)


def test_aimd_throttle_level_sets_the_ceiling_and_the_cut() -> None:
    # The limit was 20 but only 6 were in flight when the service refused: the cap is below 6.
    a = Aimd(20).on_throttle(0.0, level=6)
    assert a.ceiling == 6
    assert a.effective == 3


def test_aimd_never_below_minimum() -> None:
    a = Aimd(4, minimum=2)
    for i in range(10):
        a = a.on_throttle(float(i * 10))
    assert a.effective == 2
    assert a.current >= 2


def test_aimd_without_ceiling_grows_one_level_per_round_trip() -> None:
    a = Aimd(10, limit=4.0)
    for _ in range(4):  # one round trip at limit 4 = 4 successes
        a = a.on_success()
    assert a.effective == 4  # 4 + 4 * (1/4..) is a hair under 5 (the limit grows meanwhile)
    a = a.on_success()
    assert a.effective == 5


def test_aimd_never_above_maximum() -> None:
    a = Aimd(3)
    for _ in range(1000):
        a = a.on_success()
    assert a.effective == 3
    assert a.current == 3.0


def test_aimd_recovers_fast_to_the_safe_level_then_probes_slowly() -> None:
    a = Aimd(20, limit=6.0).on_throttle(0.0)  # the service refused the 6th: the cap is 5
    assert (a.effective, a.ceiling) == (3, 6)
    a = a.on_success().on_success()
    assert a.effective == 5  # fast recovery: +1 per success up to ceiling - 1
    for _ in range(63):
        a = a.on_success()
    assert a.effective == 5  # probing: one level per 64 calls
    a = a.on_success()
    assert a.effective == 6  # ... the probe of level 6
    assert a.ceiling == 6


def test_aimd_forgets_a_ceiling_it_has_passed() -> None:
    a = Aimd(20, limit=6.0).on_throttle(0.0)
    for _ in range(2 + 64 * 2):
        a = a.on_success()
    assert a.ceiling is None  # level 6 ran without a 429: the cap grew
    assert a.effective == 7


def test_aimd_is_a_frozen_value() -> None:
    a = Aimd(5)
    b = a.on_throttle(0.0)
    assert a.effective == 5 and b.effective == 2
    with pytest.raises(AttributeError):
        a.limit = 1.0  # type: ignore[misc]
