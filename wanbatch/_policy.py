"""Retry and pacing policy as values: backoff delays, Retry-After, and the AIMD concurrency limit.

Pure: stdlib only (no aiohttp/anyio/tqdm import). Nothing here sleeps or reads a
clock or a random generator: "now" and the random draw are parameters, and every method returns
a number or a *new* value (urllib3's ``Retry.increment`` style; its ``Retry.sleep`` is the
counter-example). ``_pacing`` owns the waiting; ``_calls`` owns the attempt loop.

The numbers (docs/service.md, Rate limits): ``wan2.6-image`` allows 5 submissions per second and
5 tasks in flight per account; one call takes one to several minutes; 429s carry no documented
``Retry-After``, so a header is honoured when present and never required.
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
    """An adaptive concurrency limit: slow start, then a remembered ceiling probed on a schedule.

    The service caps work in flight per account (``wan2.6-image``: 5; docs/service.md) and answers
    429 above it; the cap is shared with whatever else uses the account and can be raised, so the
    client has to find it and follow it. Plain AIMD saw-tooths between C/2 and C and hits the cap
    once per cycle (about 75 % of the possible throughput); this value remembers the lowest level
    the service refused (``ceiling``, as TCP CUBIC remembers ``W_max``) and moves in four regimes:

    * **slow start** (no ceiling known): +1 per successful call, i.e. doubling per round trip
      (each success frees one slot and adds one), *and* +1 every ``ramp_interval`` seconds
      while calls wait for a slot (:meth:`on_tick`). A run does *not* open with ``maximum``
      calls at once: it starts at ``initial`` (5, the documented per-account cap; never above
      ``maximum``), so ``--concurrency 20`` against a cap of 5 costs one 429 at start-up
      instead of a burst of 15. The time-based step exists because a refusal comes back at
      once while a success takes a whole generation (1-2 minutes on the real service, see
      docs/service.md): growing only on successes would take ``log2(C / 5)`` generations to reach a
      raised quota (over 5 minutes for 50), growing one level per ``ramp_interval`` reaches it
      in seconds
      and still oversteps the cap by about one call (one 429), since each step is answered
      (refused at once, or held) before the next. Slow start ends at the first 429 or at
      ``maximum``.
    * **fast recovery** (below the safe level ``ceiling - 1``, just after a cut): +1 per success,
      never past the safe level, so a cut costs a fraction of one round trip.
    * **plateau** (at the safe level): the successes there are counted; after ``probe_gap`` of
      them (64 by default) the limit steps to ``ceiling`` for one **probe**. Against a fixed cap
      every probe is refused once: one 429 per ~64 calls (~1.5 %, the steady-state price of
      noticing a raised cap at all). Right after a *drop* (a 429 below a ceiling that used to
      hold: another client took part of the account, the quota was lowered) the next
      ``fast_probes`` probes come after only ``fast_gap`` successes each (12: ~3 s at 2 calls in
      flight of 0.5 s), since a cap that just fell is the likeliest to come back; that costs at
      most ``fast_probes`` extra 429s per drop and finds a cap that comes back within seconds
      (a raise ~100 calls or more after a drop, or with no drop before it, waits for the next
      steady probe, at most ``probe_gap`` calls).
    * **probe** (at ``ceiling``): if a whole round trip at that level (``ceiling`` successes)
      passes without a 429, the ceiling is stale (the cap grew): it is forgotten and slow start
      takes over, so the limit climbs to the new cap in a few round trips instead of one level
      per ``probe_gap`` calls.

    What a 429 does depends on what it refused (``level`` = the number in flight when the service
    said no, if the caller knows it, else the current limit):

    * the level being *tried*: a failed probe (the limit was at the ceiling) steps back to the
      safe level and keeps the ceiling; the end of slow start sets the ceiling to ``level`` and
      steps back to ``level - 1``, the level that was just accepted. No halving: the refusal was
      expected, and the level below it is known to fit. (:class:`~wanbatch._pacing.Pacer` also
      skips the shared cool-down for a failed probe.)
    * a level that used to hold (a *drop*): the AIMD cut, to ``decrease * level``, the ceiling
      lowered to ``level``, the quick probes armed; fast recovery then climbs back to the new
      safe level within one round trip.

    Throttles within ``window`` seconds of a
    cut are the same burst (calls already in flight when we cut): a burst of 429s cuts once. Each
    of them still lowers the ceiling by one, since k refusals out of a peak of P calls mean at most
    P - k fit (the limit follows, to at most ``ceiling - 1``), so a first burst far above the cap
    finds it in one step.

    Because a rate cap R with latency T behaves like a concurrency cap R x T (Little's law), the
    same value also converges under a requests-per-second cap when calls are short.

    Values are immutable: every method returns a new :class:`Aimd`.
    """

    #: The user's ``--concurrency``: the limit never exceeds it.
    maximum: int
    #: The current limit (fractional only below ``minimum`` rounding). ``None``: start at
    #: ``min(maximum, initial)`` and slow-start from there.
    limit: float | None = None
    #: The limit never goes below this.
    minimum: int = 1
    #: The slow-start window: how many calls the first wave may hold (capped at ``maximum``).
    initial: int = 5
    #: Factor applied on a throttle that is not a failed probe (0 < decrease < 1).
    decrease: float = 0.5
    #: Successes at the safe level between two probes of the ceiling (steady state).
    probe_gap: int = 64
    #: Successes at the safe level before each of the quick probes that follow a drop.
    fast_gap: int = 12
    #: How many quick probes follow a drop.
    fast_probes: int = 8
    #: Seconds after a cut during which further throttles count as the same burst.
    window: float = 2.0
    #: Seconds between the time-based slow-start steps (:meth:`on_tick`); ``None``: grow on
    #: successes only.
    ramp_interval: float | None = None
    #: The lowest level at which the service throttled us, until proven stale.
    ceiling: int | None = None
    #: Time (the caller's clock) of the last cut, or ``None``.
    last_cut: float | None = field(default=None)
    #: Successes counted at the safe level (towards the next probe) or at the probe level.
    credit: int = 0
    #: Quick probes left (armed by a drop).
    fast_left: int = 0
    #: The ceiling before the last cut (to tell a drop from the first find within a burst).
    prior: int | None = None
    #: Time (the caller's clock) of the last time-based slow-start step, or of the first tick.
    ramp_at: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError(f"need 1 <= minimum <= maximum, got {self.minimum}, {self.maximum}")
        if not 0 < self.decrease < 1:
            raise ValueError(f"decrease must be in (0, 1), got {self.decrease!r}")
        if not (self.initial >= 1 and self.probe_gap >= 1 and self.fast_gap >= 1):
            raise ValueError("initial, probe_gap and fast_gap must be >= 1")
        if not (self.fast_probes >= 0 and self.window >= 0):
            raise ValueError("fast_probes and window must be >= 0")
        if self.ramp_interval is not None and not self.ramp_interval > 0:
            raise ValueError(f"ramp_interval must be > 0 or None, got {self.ramp_interval!r}")
        start = float(min(self.maximum, self.initial)) if self.limit is None else self.limit
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

    @property
    def safe(self) -> int | None:
        """The highest level known to fit (``ceiling - 1``), or ``None`` without a ceiling."""
        if self.ceiling is None:
            return None
        return max(self.minimum, min(self.maximum, self.ceiling - 1))

    @property
    def probing(self) -> bool:
        """Whether the limit is at the ceiling, testing whether it still holds."""
        return self.ceiling is not None and self.current >= self.ceiling

    @property
    def exploring(self) -> bool:
        """Whether the limit stands at a level not yet known to fit.

        That is a probe of the ceiling, or slow start above its first wave. A refusal there
        was expected (one call too many), not a burst to damp.
        """
        if self.ceiling is None:
            return self.current > min(self.initial, self.maximum)
        return self.probing

    @property
    def ramping(self) -> bool:
        """Whether the time-based slow-start steps apply (slow start, below ``maximum``)."""
        return (
            self.ramp_interval is not None
            and self.ceiling is None
            and (self.current < self.maximum)
        )

    def ramp_due(self, now: float) -> float | None:
        """Seconds from ``now`` until :meth:`on_tick` grows the limit; ``None``: it will not."""
        if not self.ramping:
            return None
        assert self.ramp_interval is not None
        if self.ramp_at is None:
            return self.ramp_interval
        return max(0.0, self.ramp_at + self.ramp_interval - now)

    def on_tick(self, now: float) -> Aimd:
        """The limit after calls waited for a slot at time ``now`` (slow start only).

        The first tick starts the clock; each later one at least ``ramp_interval`` after the
        previous step adds one slot. The caller ticks only while demand exceeds the limit, so
        time in which nobody waited earns nothing (one step per tick, whatever the gap).
        """
        if not self.ramping:
            return self
        assert self.ramp_interval is not None
        if self.ramp_at is None:
            return replace(self, ramp_at=now)
        if now < self.ramp_at + self.ramp_interval:
            return self
        limit = min(float(self.maximum), math.floor(self.current) + 1.0)
        return replace(self, limit=limit, ramp_at=now)

    def on_throttle(self, now: float, level: int | None = None) -> Aimd:
        """The limit after the service answered 429 at time ``now``.

        Args:
            now: the caller's clock (any monotonic clock; only differences matter).
            level: how many calls were in flight when the service refused, if known
                (:class:`~wanbatch._pacing.Pacer` passes its peak since the last cut);
                defaults to :attr:`effective`.
        """
        floor = float(self.minimum)
        if self.probing:
            # A failed probe: the ceiling holds. Back to the safe level, no cut below it.
            assert self.ceiling is not None and self.safe is not None
            return replace(
                self,
                limit=float(self.safe),
                last_cut=now,
                credit=0,
                fast_left=max(0, self.fast_left - 1),
                prior=self.ceiling,
            )
        if self.last_cut is not None and now < self.last_cut + self.window:
            # The same burst: no second cut. But each further refusal is one more call that did
            # not fit, so k refusals from a peak of P mean the cap is at most P - k.
            assert self.ceiling is not None  # set by the cut
            ceiling = max(self.minimum, self.ceiling - 1)
            limit = min(self.current, max(floor, float(ceiling - 1)))
            fast_left = self.fast_left
            if self.prior is not None and ceiling < self.prior:
                fast_left = self.fast_probes  # refused below a level that used to hold: a drop
            return replace(self, limit=limit, ceiling=ceiling, credit=0, fast_left=fast_left)
        over = max(self.minimum, self.effective if level is None else level)
        if self.ceiling is None:
            # Slow start's next step was refused: the level below it was just accepted.
            ceiling, cut = over, max(floor, min(self.current, float(over - 1)))
        else:
            # Refused below a ceiling that held: the cap fell. Cut (AIMD), then recover fast.
            ceiling = min(self.ceiling, over)
            cut = max(floor, min(self.current, float(over)) * self.decrease)
        fast_left = self.fast_left
        if self.ceiling is not None and ceiling < self.ceiling:
            fast_left = self.fast_probes  # a drop: the cap fell below a level that held
        return replace(
            self,
            limit=cut,
            ceiling=ceiling,
            last_cut=now,
            credit=0,
            fast_left=fast_left,
            prior=self.ceiling,
        )

    def on_success(self) -> Aimd:
        """The limit after one call succeeded (call it only when the limit was the bottleneck)."""
        limit = self.current
        ceiling = self.ceiling
        credit = self.credit
        fast_left = self.fast_left
        if ceiling is None:
            limit += 1.0  # slow start
        else:
            safe = float(max(self.minimum, ceiling - 1))
            if limit < safe:
                limit = min(safe, limit + 1.0)  # fast recovery
            elif limit < ceiling:
                credit += 1  # plateau
                if credit >= (self.fast_gap if fast_left > 0 else self.probe_gap):
                    limit, credit = float(ceiling), 0  # probe the ceiling
            else:
                credit += 1  # probing
                if credit >= ceiling:
                    # A round trip at the ceiling without a 429: the cap grew. Slow start.
                    limit, ceiling, credit, fast_left = limit + 1.0, None, 0, 0
        limit = min(float(self.maximum), limit)
        if (limit, ceiling, credit, fast_left) == (
            self.current,
            self.ceiling,
            self.credit,
            self.fast_left,
        ):
            return self
        return replace(self, limit=limit, ceiling=ceiling, credit=credit, fast_left=fast_left)
