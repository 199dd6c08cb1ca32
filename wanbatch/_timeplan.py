"""How long a plan takes: calls ÷ (keys × calls in flight) × the time one call takes.

Pure: no I/O, no clock. The call time is a per-model default (:data:`DEFAULT_CALL_S`) until
the output folder's earlier runs measured some (:mod:`wanbatch._calltimes` reads them); then it
is the median of those, and the plan says which it used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_CALL_S",
    "FALLBACK_CALL_S",
    "MIN_SAMPLES",
    "CallTime",
    "TimePlan",
    "call_time",
    "format_duration",
    "median",
    "plan_time",
]

#: Seconds one generation call takes, by model, before a folder has measured any. The service
#: documents one to two minutes for a call of either family (longer when its queue is long).
DEFAULT_CALL_S: dict[str, float] = {
    "wan2.6-image": 90.0,
    "wan2.7-image": 60.0,
    "wan2.7-image-pro": 60.0,
}
#: The call time of a model not in :data:`DEFAULT_CALL_S`.
FALLBACK_CALL_S = 90.0
#: Measured calls needed before their median replaces the model's default.
MIN_SAMPLES = 3


def median(values: Iterable[float]) -> float | None:
    """The median of ``values`` (``None`` when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


@dataclass(frozen=True, slots=True)
class CallTime:
    """The time one call of ``model`` takes, and where that figure comes from."""

    model: str
    seconds: float
    #: ``"default"`` (the model's default) or ``"measured"`` (median of this folder's calls).
    source: str
    samples: int = 0  #: measured calls the median is taken over (0 for a default)

    def describe(self) -> str:
        """``"90 s a call (wan2.6-image default)"`` or ``"12.3 s a call (median of 40 ..."``."""
        figure = f"{self.seconds:.3g} s a call"
        if self.source == "measured":
            calls = "call" if self.samples == 1 else "calls"
            return f"{figure} (median of {self.samples} {calls} measured in this folder)"
        return f"{figure} ({self.model} default)"


def call_time(model: str, measured: Iterable[float] = ()) -> CallTime:
    """The call time of ``model``: the median of ``measured`` (this folder's earlier calls of
    that model, seconds) when there are at least :data:`MIN_SAMPLES`, else its default."""
    samples = [s for s in measured if math.isfinite(s) and s >= 0]
    if len(samples) >= MIN_SAMPLES:
        value = median(samples)
        assert value is not None
        return CallTime(model, value, "measured", len(samples))
    return CallTime(model, DEFAULT_CALL_S.get(model, FALLBACK_CALL_S), "default")


@dataclass(frozen=True, slots=True)
class TimePlan:
    """How long the calls of a plan take when every slot is busy."""

    calls: int
    images: int  #: images the calls buy at most
    keys: int
    in_flight: int  #: calls in flight per key (``--concurrency``)
    call_times: tuple[CallTime, ...]
    model_calls: tuple[int, ...]  #: calls of each model of ``call_times``
    seconds: float

    @property
    def images_per_hour(self) -> float:
        """Images an hour at this pace (0 when there is nothing to call)."""
        return self.images * 3600 / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One line: the duration, its figures, and images an hour."""
        if not self.calls:
            return "no call to make"
        slots = f"{self.in_flight} in flight"
        if self.keys != 1:
            slots = f"({self.keys} keys × {slots})"
        calls = f"{self.calls} {'call' if self.calls == 1 else 'calls'}"
        if len(self.call_times) == 1:
            work = f"{calls} ÷ {slots} × {self.call_times[0].describe()}"
        else:  # several models: each one's calls times its call time
            parts = " + ".join(
                f"{n} × {t.describe()}"
                for n, t in zip(self.model_calls, self.call_times, strict=True)
                if n
            )
            work = f"({parts}) ÷ {slots}"
        return (
            f"about {format_duration(self.seconds)}: {work}; "
            f"about {self.images_per_hour:,.0f} images/hour"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``summary.json``'s ``time_plan``)."""
        return {
            "text": self.describe(),
            "seconds": round(self.seconds, 1),
            "calls": self.calls,
            "images": self.images,
            "keys": self.keys,
            "in_flight": self.in_flight,
            "images_per_hour": round(self.images_per_hour, 1),
            "call_time": [
                {
                    "model": t.model,
                    "calls": n,
                    "seconds": round(t.seconds, 3),
                    "source": t.source,
                    "samples": t.samples,
                }
                for n, t in zip(self.model_calls, self.call_times, strict=True)
            ],
        }


def plan_time(
    calls: Mapping[str, int],
    images: int,
    *,
    keys: int = 1,
    in_flight: int,
    measured: Mapping[str, Iterable[float]] | None = None,
) -> TimePlan:
    """The time plan of ``calls`` (calls to make, by model) buying at most ``images``.

    Each model's calls take its :func:`call_time`; all of them share ``keys × in_flight``
    slots, so the plan takes ``Σ calls × call time ÷ slots``.
    """
    measured = measured or {}
    slots = max(1, keys) * max(1, in_flight)
    times = tuple(call_time(model, measured.get(model, ())) for model in sorted(calls))
    work = sum(calls[t.model] * t.seconds for t in times)
    return TimePlan(
        calls=sum(calls.values()),
        images=images,
        keys=max(1, keys),
        in_flight=max(1, in_flight),
        call_times=times,
        model_calls=tuple(calls[t.model] for t in times),
        seconds=work / slots,
    )


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"3 h 20 min"``, ``"2 d 4 h"``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
