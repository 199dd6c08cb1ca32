"""The time plan: calls ÷ (keys × calls in flight) × call time; the progress bar's ETA."""

from __future__ import annotations

import pytest

from wanbatch._progress import Eta
from wanbatch._timeplan import (
    DEFAULT_CALL_S,
    FALLBACK_CALL_S,
    MIN_SAMPLES,
    call_time,
    format_duration,
    median,
    plan_time,
)


def test_median() -> None:
    assert median([]) is None
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5


def test_the_default_call_time_until_enough_calls_were_measured() -> None:
    few = [5.0] * (MIN_SAMPLES - 1)
    assert call_time("wan2.6-image", few).seconds == DEFAULT_CALL_S["wan2.6-image"]
    assert call_time("wan2.6-image", few).source == "default"
    measured = call_time("wan2.6-image", [*few, 7.0, float("nan"), -1.0])
    assert (measured.seconds, measured.source, measured.samples) == (5.0, "measured", MIN_SAMPLES)
    assert "median of 3 calls measured in this folder" in measured.describe()
    assert call_time("some-new-model").seconds == FALLBACK_CALL_S


def test_calls_share_keys_times_calls_in_flight() -> None:
    plan = plan_time({"wan2.6-image": 1000}, 1000, keys=2, in_flight=5)
    assert plan.seconds == pytest.approx(1000 / 10 * DEFAULT_CALL_S["wan2.6-image"])
    assert plan.images_per_hour == pytest.approx(1000 * 3600 / plan.seconds)
    assert "1000 calls ÷ (2 keys × 5 in flight) × 90 s a call (wan2.6-image default)" in (
        plan.describe()
    )
    measured = plan_time(
        {"wan2.6-image": 100}, 200, in_flight=4, measured={"wan2.6-image": [2, 4, 6]}
    )
    assert measured.seconds == pytest.approx(100 / 4 * 4.0)
    assert measured.to_json()["call_time"][0]["source"] == "measured"
    assert plan_time({"wan2.6-image": 0}, 0, in_flight=5).describe() == "no call to make"
    assert "1 call ÷ 5 in flight" in plan_time({"wan2.6-image": 1}, 1, in_flight=5).describe()


def test_models_mix() -> None:
    plan = plan_time({"wan2.6-image": 10, "wan2.7-image": 10}, 20, in_flight=5)
    expected = (10 * DEFAULT_CALL_S["wan2.6-image"] + 10 * DEFAULT_CALL_S["wan2.7-image"]) / 5
    assert plan.seconds == pytest.approx(expected)
    assert (
        "(10 × 90 s a call (wan2.6-image default) + 10 × 60 s a call (wan2.7-image default))"
        in (plan.describe())
    )
    assert [t["calls"] for t in plan.to_json()["call_time"]] == [10, 10]


def test_format_duration() -> None:
    assert format_duration(12.4) == "12 s"
    assert format_duration(600) == "10 min"
    assert format_duration(3 * 3600 + 20 * 60) == "3 h 20 min"
    assert format_duration(52 * 3600) == "2 d 4 h"


def test_eta_starts_from_the_plan_then_follows_the_run() -> None:
    eta = Eta(planned_s=900.0, jobs=100, slots=5)
    assert eta.seconds(0.0, 0) == 900.0  # from the start: the plan's figure
    assert eta.seconds(100.0, 4) == 800.0  # counting down until a round of calls finished
    assert eta.seconds(100.0, 10) == pytest.approx(90 * 10.0)  # then this run's pace
    assert eta.seconds(2000.0, 0) == 0.0
