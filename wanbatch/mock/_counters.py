"""What the mock did, counted: :class:`Counters` (live) and :class:`CountersSnapshot` (frozen).

Tests read these to prove client behaviour from the server side, e.g. "nothing was paid for
twice" (``images_by_prompt``) or "never more than 5 in flight" (``peak_in_flight``). Outcome keys
are ``"200"``, ``"<status>:<code>"`` (``"429:Throttling.RateQuota"``), ``"502:gateway"``,
``"reset"`` and ``"client_disconnected"``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DOWNLOAD_OUTCOMES", "Counters", "CountersSnapshot"]

DOWNLOAD_OUTCOMES = ("ok", "expired", "bad_signature", "not_found", "truncated")


@dataclass(frozen=True)
class CountersSnapshot:
    """A point-in-time copy of the counters (also the JSON of ``GET /mock/counters``)."""

    #: Generation calls received (sync calls and async submits), whatever their outcome.
    calls: int = 0
    #: Calls by outcome key ("200", "400:InvalidParameter", "reset", ...).
    calls_by_outcome: dict[str, int] = field(default_factory=dict)
    #: Calls answered 429 (any ``Throttling*`` code).
    throttled: int = 0
    #: Images generated, i.e. billed (failed calls bill nothing).
    images_generated: int = 0
    #: Prompt text -> images generated for it.
    images_by_prompt: dict[str, int] = field(default_factory=dict)
    #: Prompt text -> generation calls that carried it.
    calls_by_prompt: dict[str, int] = field(default_factory=dict)
    #: Image downloads by outcome ("ok", "expired", "bad_signature", "not_found", "truncated").
    downloads_by_outcome: dict[str, int] = field(default_factory=dict)
    #: Image bytes written to clients (truncated downloads count what was sent).
    bytes_served: int = 0
    #: ``GET /tasks/{id}`` polls answered.
    task_polls: int = 0
    #: Generation calls (and running async tasks) in progress now, and the most ever at once.
    in_flight: int = 0
    peak_in_flight: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)


class Counters:
    """The live counters, mutated by the app's handlers (one event loop, so no locking)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Zero everything except ``in_flight`` (calls in progress stay in progress)."""
        self.calls = 0
        self.calls_by_outcome: Counter[str] = Counter()
        self.throttled = 0
        self.images_generated = 0
        self.images_by_prompt: Counter[str] = Counter()
        self.calls_by_prompt: Counter[str] = Counter()
        self.downloads_by_outcome: Counter[str] = Counter()
        self.bytes_served = 0
        self.task_polls = 0
        self.peak_in_flight = self.in_flight

    def call(self, prompt: str | None) -> None:
        """A generation call arrived."""
        self.calls += 1
        if prompt is not None:
            self.calls_by_prompt[prompt] += 1

    def outcome(self, key: str) -> None:
        """A generation call ended with ``key``."""
        self.calls_by_outcome[key] += 1
        if key.startswith("429:Throttling"):  # not the 429 billing states (PrepaidBillOverdue)
            self.throttled += 1

    def billed(self, prompt: str, images: int) -> None:
        """``images`` were generated (and billed) for ``prompt``."""
        self.images_generated += images
        self.images_by_prompt[prompt] += images

    def enter(self) -> None:
        """A call started generating."""
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        """A call stopped generating."""
        self.in_flight -= 1

    def download(self, outcome: str, sent: int = 0) -> None:
        """An image request ended with ``outcome`` after sending ``sent`` bytes."""
        self.downloads_by_outcome[outcome] += 1
        self.bytes_served += sent

    def snapshot(self) -> CountersSnapshot:
        """A frozen copy."""
        return CountersSnapshot(
            calls=self.calls,
            calls_by_outcome=dict(self.calls_by_outcome),
            throttled=self.throttled,
            images_generated=self.images_generated,
            images_by_prompt=dict(self.images_by_prompt),
            calls_by_prompt=dict(self.calls_by_prompt),
            downloads_by_outcome={k: self.downloads_by_outcome[k] for k in DOWNLOAD_OUTCOMES},
            bytes_served=self.bytes_served,
            task_polls=self.task_polls,
            in_flight=self.in_flight,
            peak_in_flight=self.peak_in_flight,
        )
