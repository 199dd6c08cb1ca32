"""Retry and pacing policy as values: backoff delays, Retry-After, and the AIMD concurrency limit.

Pure: stdlib only (no aiohttp/anyio/aiofiles/tqdm import). Nothing here sleeps or reads a
clock or a random generator: "now" and the random draw are parameters, and every method returns
a number or a *new* value (urllib3's ``Retry.increment`` style; its ``Retry.sleep`` is the
counter-example). ``_pacing`` owns the waiting; ``_engine`` owns the attempt loop.

The numbers (API notes §7): ``wan2.6-image`` allows 5 submissions per second and 5 tasks in flight
per account; one call takes one to several minutes; 429s carry no documented ``Retry-After``
(API notes §5.1), so a header is honoured when present and never required.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import timezone
from email.utils import parsedate_to_datetime

__all__ = ["RETRY_AFTER_CAP", "Aimd", "Backoff", "parse_retry_after"]

#: The longest wait a ``Retry-After`` header can impose, seconds. The service documents none;
#: a server asking for more than five minutes is treated as asking for five.
RETRY_AFTER_CAP = 300.0

_DELTA_SECONDS = re.compile(r"[+-]?\d+(?:\.\d+)?")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with full jitter (the stamina / AWS "full jitter" formula).

    Attempt ``a`` (from 1) waits ``rand * min(maximum, initial * multiplier ** (a - 1))`` seconds,
    where ``rand`` is a uniform draw in ``[0, 1)`` supplied by the caller. Full jitter spreads the
    retries of many workers that failed together, so they do not come back together.
    """

    #: The cap of the first delay, seconds.
    initial: float = 1.0
    #: No delay ever exceeds this, seconds (``Retry-After`` included).
    maximum: float = 60.0
    #: Growth factor of the cap per attempt.
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not (0 <= self.initial <= self.maximum and math.isfinite(self.maximum)):
            raise ValueError(f"need 0 <= initial <= maximum < inf, got {self!r}")
        if not (1 <= self.multiplier < math.inf):
            raise ValueError(f"multiplier must be finite and >= 1, got {self.multiplier!r}")

    def cap(self, attempt: int) -> float:
        """The upper bound of attempt ``attempt``'s delay (before jitter), seconds."""
        exponent = max(attempt, 1) - 1
        try:
            grown = self.initial * self.multiplier**exponent
        except OverflowError:  # attempt 10_000 with multiplier 2: clamp, never crash
            return self.maximum
        return min(self.maximum, grown)

    def delay(self, attempt: int, *, retry_after: float | None = None, rand: float) -> float:
        """Seconds to wait before attempt ``attempt + 1``, after attempt ``attempt`` failed.

        Args:
            attempt: how many attempts failed so far (1 for the first failure).
            retry_after: the server's ``Retry-After`` in seconds (see :func:`parse_retry_after`),
                or ``None``. When given, the delay is at least that long, still capped at
                ``maximum``.
            rand: a uniform random draw in ``[0, 1]`` (the caller's RNG; tests pass constants).

        Raises:
            ValueError: ``rand`` is outside ``[0, 1]``.
        """
        if not 0.0 <= rand <= 1.0:
            raise ValueError(f"rand must be in [0, 1], got {rand!r}")
        jittered = rand * self.cap(attempt)
        if retry_after is None or math.isnan(retry_after):
            return jittered
        return max(min(max(float(retry_after), 0.0), self.maximum), jittered)


def parse_retry_after(value: str | None, now: float | None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value (RFC 9110 §10.2.3).

    Args:
        value: the header value: delta-seconds (``"7"``, also ``"1.5"``) or an HTTP date
            (``"Wed, 21 Oct 2015 07:28:00 GMT"``); ``None`` when the header was absent.
        now: the current Unix time (wall clock, as the date form is wall-clock time). ``None``
            means "unknown": the date form then yields ``None``.

    Returns:
        The wait in seconds, clamped to ``[0, RETRY_AFTER_CAP]`` (a date in the past or a
        negative number gives 0), or ``None`` when the value is absent or unparseable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        if now is None:
            return None
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # "-0000" / no zone: RFC 5322 says UTC
            when = when.replace(tzinfo=timezone.utc)
        try:
            seconds = when.timestamp() - now
        except (OverflowError, OSError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


@dataclass(frozen=True, slots=True)
class Aimd:
    """An adaptive concurrency limit: additive increase, multiplicative decrease, with memory.

    The service caps work in flight per account (5 for ``wan2.6-image``, API notes §7) and answers
    429 above it; the cap is shared with whatever else uses the account, so the client has to
    find it. Plain AIMD saw-tooths between C/2 and C and hits the cap once per cycle: about 75 %
    of the possible throughput. This value remembers where it was throttled (``ceiling``, as TCP
    CUBIC remembers ``W_max``) and moves in three regimes:

    * **no ceiling known**: classic additive increase, ``increase`` levels per round trip
      (``increase / limit`` per success, since a round trip completes ``limit`` calls);
    * **below the safe level** ``ceiling - 1`` (just after a cut): fast recovery, +1 per success
      (doubling per round trip) but never past the safe level, so a cut costs a fraction of one
      round trip instead of C/2 round trips;
    * **at or above the safe level**: a slow probe, ``probe`` levels per successful call (1/64
      by default), so the level just above the known-good one is tried about once per 64 calls:
      one 429 per ~64 calls (~1.5 %), while the cut it causes is repaired by fast recovery
      within a fraction of a round trip. Once the limit passes a whole level above the old
      ceiling without a throttle, the cap has grown and the ceiling is forgotten.

    A throttle cuts to ``decrease * level`` (``level`` = the number in flight when the service
    said no, if the caller knows it, else the current limit) and lowers the ceiling to ``level``.
    Throttles within ``window`` seconds of a cut are the same burst (calls already in flight when
    we cut): a burst of 429s cuts once. Each of them still lowers the ceiling by one, since k
    refusals out of a peak of P calls mean at most P - k fit (the limit follows, to at most
    ``ceiling - 1``), so a first burst far above the cap finds it in one step.

    Because a rate cap R with latency T behaves like a concurrency cap R x T (Little's law), the
    same value also converges under a requests-per-second cap when calls are short.

    Values are immutable: every method returns a new :class:`Aimd`.
    """

    #: The user's ``--concurrency``: the limit never exceeds it.
    maximum: int
    #: The current limit (fractional: growth accumulates below one level). ``None``: start at
    #: ``maximum`` (the documented cap is the default concurrency, so starting high costs little).
    limit: float | None = None
    #: The limit never goes below this.
    minimum: int = 1
    #: Factor applied on a throttle (0 < decrease < 1).
    decrease: float = 0.5
    #: Levels gained per round trip while no ceiling is known.
    increase: float = 1.0
    #: Levels gained per successful call at or above the remembered safe level.
    probe: float = 1.0 / 64.0
    #: Seconds after a cut during which further throttles count as the same burst.
    window: float = 2.0
    #: The lowest level at which the service throttled us, until proven stale.
    ceiling: int | None = None
    #: Time (the caller's clock) of the last cut, or ``None``.
    last_cut: float | None = field(default=None)

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError(f"need 1 <= minimum <= maximum, got {self.minimum}, {self.maximum}")
        if not 0 < self.decrease < 1:
            raise ValueError(f"decrease must be in (0, 1), got {self.decrease!r}")
        if not (self.increase > 0 and self.probe > 0 and self.window >= 0):
            raise ValueError("increase and probe must be > 0 and window >= 0")
        start = float(self.maximum) if self.limit is None else self.limit
        object.__setattr__(self, "limit", min(float(self.maximum), max(float(self.minimum), start)))

    @property
    def current(self) -> float:
        """The fractional limit (never ``None`` after construction)."""
        assert self.limit is not None  # set by __post_init__
        return self.limit

    @property
    def effective(self) -> int:
        """How many calls may be in flight now: the limit rounded down, within the bounds."""
        return max(self.minimum, min(self.maximum, math.floor(self.current)))

    def on_throttle(self, now: float, level: int | None = None) -> Aimd:
        """The limit after the service answered 429 at time ``now``.

        Args:
            now: the caller's clock (any monotonic clock; only differences matter).
            level: how many calls were in flight when the service refused, if known
                (:class:`~wanbatch._pacing.Pacer` passes its peak since the last cut);
                defaults to :attr:`effective`.
        """
        if self.last_cut is not None and now < self.last_cut + self.window:
            # The same burst: no second cut. But each further refusal is one more call that did
            # not fit, so k refusals from a peak of P mean the cap is at most P - k.
            assert self.ceiling is not None  # set by the cut
            ceiling = max(self.minimum, self.ceiling - 1)
            limit = min(self.current, float(max(self.minimum, ceiling - 1)))
            return replace(self, limit=limit, ceiling=ceiling)
        over = max(self.minimum, self.effective if level is None else level)
        ceiling = over if self.ceiling is None else min(self.ceiling, over)
        cut = max(float(self.minimum), min(self.current, float(over)) * self.decrease)
        return replace(self, limit=cut, ceiling=ceiling, last_cut=now)

    def on_success(self) -> Aimd:
        """The limit after one call succeeded (call it only when the limit was the bottleneck)."""
        limit = self.current
        ceiling = self.ceiling
        if ceiling is None:
            limit += self.increase / limit
        else:
            safe = max(float(self.minimum), float(ceiling - 1))
            if limit < safe:
                limit = min(safe, limit + 1.0)
            else:
                limit += self.probe
            if limit >= ceiling + 1:
                ceiling = None  # a whole level above the old ceiling, unthrottled: the cap grew
        limit = min(float(self.maximum), limit)
        if limit == self.current and ceiling == self.ceiling:
            return self
        return replace(self, limit=limit, ceiling=ceiling)
