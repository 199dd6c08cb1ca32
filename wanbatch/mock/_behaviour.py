"""Pure: the mock's dice and its request-rate window, driven by one seeded RNG and a given clock.

Nothing here sleeps or reads the clock: callers pass ``now``. Every random decision (faults,
jitter, truncation) comes from one ``random.Random(config.seed)`` in call order, so a seeded run
replays the same faults.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Literal

from wanbatch.mock._config import MockConfig

__all__ = ["Behaviour", "Fault"]

Fault = Literal["reset", "gateway", "error"]

_WINDOW_S = 1.0


class Behaviour:
    """Decides latency, throttling by rate, and injected faults for one server."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self._accepted: deque[float] = deque()

    def reconfigure(self, config: MockConfig) -> None:
        """Use new knobs; a changed ``seed`` restarts the RNG from it."""
        if config.seed != self.config.seed:
            self.rng = random.Random(config.seed)
        self.config = config

    def admit_rate(self, now: float) -> bool:
        """Count a call in the sliding 1 s window, or refuse it (refusals are not counted)."""
        rps = self.config.rps
        if rps is None:
            return True
        while self._accepted and self._accepted[0] <= now - _WINDOW_S:
            self._accepted.popleft()
        if len(self._accepted) + 1 > rps:
            return False
        self._accepted.append(now)
        return True

    def latency(self) -> float:
        """Seconds this call takes: ``latency`` ± uniform ``latency_jitter``, at least 0."""
        base, jitter = self.config.latency, self.config.latency_jitter
        if jitter:
            base += self.rng.uniform(-jitter, jitter)
        return max(0.0, base)

    def fault(self) -> Fault | None:
        """The injected failure for this call, if any (reset, then gateway, then 500)."""
        if self._roll(self.config.reset_rate):
            return "reset"
        if self._roll(self.config.gateway_error_rate):
            return "gateway"
        if self._roll(self.config.error_rate):
            return "error"
        return None

    def gateway_status(self) -> int:
        """502 or 503, evenly."""
        return 502 if self.rng.random() < 0.5 else 503

    def truncate(self) -> bool:
        """Whether this download is cut short."""
        return self._roll(self.config.truncate_rate)

    def chance(self, rate: float) -> bool:
        """True with probability ``rate``; no draw at 0 or 1 (the other dice stay in sequence)."""
        return rate >= 1.0 or self._roll(rate)

    def _roll(self, rate: float) -> bool:
        # No draw at rate 0, so an unused knob does not shift the others' sequence.
        return rate > 0 and self.rng.random() < rate
