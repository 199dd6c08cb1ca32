"""The lifecycle of one job: its statuses and the transition table the journal fold follows.

Pure: stdlib only. :meth:`wanbatch._state.RunState.apply` looks every job record up in
:data:`TRANSITIONS` and does nothing for a pair the table does not list::

    (new) --generated--> GENERATED --saved (all k)--> DONE
                            |  \\--expired--> EXPIRED --generated--> GENERATED
    (any but DONE) --failed--> FAILED --generated (--retry-failed)--> GENERATED

A job counts its expired generations (``JobState.expiries``, from the ``expired`` records, reset
by ``failed``): past :data:`wanbatch._plan.MAX_REGENERATIONS` the job is failed instead of bought
again.
"""

from __future__ import annotations

import enum

__all__ = ["COMPLETE", "TRANSITIONS", "Status", "transition"]


class Status(enum.Enum):
    """Where a job stands according to the journal."""

    GENERATED = "generated"
    DONE = "done"
    EXPIRED = "expired"
    FAILED = "failed"


#: Not a record: what the fold calls the moment every image of a job's generation is on disk
#: (its last ``saved`` record, or a ``generated`` record with no images).
COMPLETE = "complete"

_NEW = None

#: (status of the job's open record, event) -> its status after. The "before" side is the
#: status of a job the fold holds open (``RunState.jobs``); ``None`` is a job it holds no open
#: state for: new, or done and packed away (``RunState.done``). A pair not listed leaves the job
#: as it is: a re-download of an image already counted, or a stray record.
TRANSITIONS: dict[tuple[Status | None, str], Status] = {
    # A call succeeded: a first generation, or a new one (expired, failed and retried, or a
    # done job generated again; a later generation wins).
    (_NEW, "generated"): Status.GENERATED,
    (Status.GENERATED, "generated"): Status.GENERATED,
    (Status.EXPIRED, "generated"): Status.GENERATED,
    (Status.FAILED, "generated"): Status.GENERATED,
    # An image is on disk: the job stays where it is until its last one is.
    (Status.GENERATED, "saved"): Status.GENERATED,
    (Status.EXPIRED, "saved"): Status.EXPIRED,
    (Status.GENERATED, COMPLETE): Status.DONE,
    (Status.EXPIRED, COMPLETE): Status.DONE,
    # The store refused a URL: the generation is lost (once per generation).
    (Status.GENERATED, "expired"): Status.EXPIRED,
    # A done job's line changed but not its request. DONE wins over a later failure.
    (_NEW, "meta"): Status.DONE,
    (Status.FAILED, "meta"): Status.DONE,
    # The job failed for good.
    (_NEW, "failed"): Status.FAILED,
    (Status.GENERATED, "failed"): Status.FAILED,
    (Status.EXPIRED, "failed"): Status.FAILED,
    (Status.FAILED, "failed"): Status.FAILED,
}


def transition(before: Status | None, event: str) -> Status | None:
    """The status ``event`` takes a job in ``before`` to, or None when it leaves it as it is."""
    return TRANSITIONS.get((before, event))
