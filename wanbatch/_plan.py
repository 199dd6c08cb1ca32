"""The resume plan: what a run does with one job given what the journal says of it
(:func:`plan_job`), and the likely cause of URLs that expired (:func:`expiry_cause`).

Pure: stdlib only, no I/O, no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wanbatch._donejobs import short_fp
from wanbatch._lifecycle import Status
from wanbatch._state import JobState

__all__ = [
    "CLOCK_SKEW_S",
    "EXPIRY_MARGIN_S",
    "MAX_REGENERATIONS",
    "Action",
    "Plan",
    "expiry_cause",
    "plan_job",
]

#: A result URL that expires within this many seconds counts as expired on resume.
EXPIRY_MARGIN_S = 60.0
#: A job whose result URLs expired before its images were saved is generated again at most this
#: many times (counted in the journal, so restarts do not reset it); one more expiry fails it.
MAX_REGENERATIONS = 2
#: A clock offset from the service's beyond this is named as a likely cause of expiries.
CLOCK_SKEW_S = 300.0


class Action(enum.Enum):
    """What the run does with one job of the job file."""

    CALL = "call"
    DOWNLOAD = "download"
    SKIP_DONE = "skip_done"
    SKIP_FAILED = "skip_failed"
    #: Its URLs expired and it may not be generated again: record it as failed now.
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Plan:
    """The decision for one job: an action, the images to fetch, and why."""

    action: Action
    downloads: tuple[tuple[int, str, float | None], ...] = ()
    #: Set when the journal's request for this id differs from the job file's.
    changed: bool = False
    #: Set when generated images expired and the job is generated again.
    regenerate: bool = False
    #: The job's expired generations, counting the one this plan records (for the engine,
    #: which fails the job at its next expiry past :data:`MAX_REGENERATIONS`).
    expiries: int = 0


def plan_job(
    state: JobState | None,
    fingerprint: str,
    *,
    retry_failed: bool,
    regenerate_expired: bool = True,
    max_regenerations: int = MAX_REGENERATIONS,
) -> Plan:
    """Decide what to do with a job given its journal state.

    A generated job's unsaved images are always downloaded, whatever their ``Expires=`` says
    by any clock: trying costs nothing, and only the store's answer that a URL expired (an
    ``expired`` record) makes the job one to generate again. An expired job is generated again
    unless that is off or it already expired ``max_regenerations`` times; then it fails
    (:attr:`Action.FAIL`).
    """
    if state is None or state.status is None:
        return Plan(Action.CALL)
    changed = _changed(state, fingerprint)
    if state.status is Status.DONE:
        return Plan(Action.SKIP_DONE, changed=changed)
    if state.status is Status.FAILED:
        if retry_failed:
            return Plan(Action.CALL, changed=changed)
        return Plan(Action.SKIP_FAILED, changed=changed)
    if state.status is Status.GENERATED:
        pending = tuple(state.pending_images())
        return Plan(Action.DOWNLOAD, downloads=pending, changed=changed, expiries=state.expiries)
    # EXPIRED: the store said so; its expired record counted this generation already.
    if regenerate_expired and state.expiries <= max_regenerations:
        return Plan(Action.CALL, changed=changed, regenerate=True, expiries=state.expiries)
    return Plan(Action.FAIL, changed=changed, expiries=state.expiries)


def _changed(state: JobState, fingerprint: str) -> bool:
    """Whether the journal's request for the job differs from ``fingerprint`` (the job file's).

    A job whose records carry no fingerprint is not taken as changed.
    """
    if state.short_fp is not None:  # a packed done job keeps 28 bits of it
        return state.short_fp != short_fp(fingerprint)
    return bool(state.fp) and state.fp != fingerprint


def expiry_cause(*, lifetime: float | None, waited: float | None, clock_offset: float) -> str:
    """The likely reason why result URLs expired before their images were saved, in words.

    Args:
        lifetime: seconds the URL was valid for when its call answered (``Expires=`` minus the
            service's time then), or None when not known (no ``Expires=``, or an earlier run's).
        waited: seconds from that answer to the store's refusal, or None for an earlier run's URL.
        clock_offset: the service's clock minus this computer's, as last measured.
    """
    skew = ""
    if abs(clock_offset) >= CLOCK_SKEW_S:
        side = "behind" if clock_offset > 0 else "ahead of"
        skew = f"; this computer's clock is {abs(clock_offset):.0f} s {side} the service's"
    if waited is None:
        return (
            "the URLs expired before this run could download them (the folder was left for "
            "longer than they are valid, or this computer's clock is wrong)" + skew
        )
    if lifetime is None:
        return f"the store refused the URL {waited:.0f} s after it was issued" + skew
    if lifetime <= EXPIRY_MARGIN_S:
        return (
            f"the service issued URLs valid for only {max(lifetime, 0.0):.0f} s, "
            f"too short to download them (this one was tried {waited:.0f} s after the call)" + skew
        )
    if waited >= lifetime - 1.0:
        return (
            f"the image waited {waited:.0f} s for its download while its URL was valid for "
            f"{lifetime:.0f} s: the download stage is too slow (raise --download-concurrency, "
            "check the network)" + skew
        )
    return (
        f"the store refused a URL {waited:.0f} s after it was issued, valid for {lifetime:.0f} s "
        "by the service's clock: clock skew between the service and its store" + skew
    )
