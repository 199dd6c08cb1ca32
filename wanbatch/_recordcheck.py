"""Whether a journal record read back can be trusted: the types and ranges of the fields the
fold reads (:func:`well_formed`), and the checked readers the fold and the snapshot use.

A damaged record (a flipped bit, a hand edit) must never crash a resume or make it allocate by
a number it read. Pure: stdlib only, no I/O. The schema itself is :mod:`wanbatch._records`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "COUNT_LIMIT",
    "MAX_CLOCK_OFFSET_S",
    "MAX_RECORD_IMAGES",
    "VERSION_LIMIT",
    "checked",
    "count",
    "expiry",
    "float_or_none",
    "well_formed",
]

#: A record's ``"v"`` at or above this is damage, not a newer format: such a line is skipped.
VERSION_LIMIT = 1000
#: Clock offsets beyond this (about 30 years) are damage, not a clock: ignored.
MAX_CLOCK_OFFSET_S = 1e9
#: The most images one record may list: a call returns at most 5, and a packed done job
#: (:class:`wanbatch._donejobs.DoneJobs`) keeps its image count in 4 bits. A record listing
#: more is damaged.
MAX_RECORD_IMAGES = 15
#: Counts and line numbers read back from a journal or a snapshot are below this: a damaged
#: file may hold any number, and none may make a shift, an array or a float blow up.
COUNT_LIMIT = 1 << 63


def float_or_none(value: object) -> float | None:
    """A JSON number as a float; ``None`` for anything else, or an int too large for one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return None
    return None


def checked(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name}: wrong type")
    return value


def count(value: object, name: str, limit: int = COUNT_LIMIT) -> int:
    """``value`` if it is an int in ``[0, limit)`` (not a bool, not a float), else ValueError."""
    if type(value) is not int or not 0 <= value < limit:
        raise ValueError(f"{name}: not a count below {limit}")
    return value


def _is_count(value: object, limit: int = COUNT_LIMIT) -> bool:
    return type(value) is int and 0 <= value < limit


def expiry(value: object) -> float | None:
    """An image's ``expires``: None (unknown) or finite Unix seconds >= 0 (all that
    :func:`wanbatch._urls.parse_expiry` gives), else ValueError."""
    if value is None:
        return None
    if type(value) is int and 0 <= value < 1 << 1023:  # converts to a finite float
        return float(value)
    if type(value) is float and 0 <= value < math.inf:  # NaN fails the comparison
        return value
    raise ValueError("expires: not Unix seconds")


def _expiry_ok(value: object) -> bool:
    try:
        expiry(value)
    except ValueError:
        return False
    return True


def well_formed(record: Mapping[str, Any]) -> bool:
    """Whether a journal record's fields that the fold reads have their types and ranges.

    A record that fails is damaged (skipped, listed in
    :attr:`wanbatch._state.RunState.damaged`): a flipped bit or a hand edit must never crash a
    resume or make it allocate by a number it read. Fields the fold does not read are not looked
    at, so a ``generated`` record whose URLs are intact keeps them (they were paid for) whatever
    its other fields hold.
    """
    event = record.get("event")
    if event == "run":
        return isinstance(record.get("jobs_file"), (str, type(None)))
    if event == "end":
        return isinstance(record.get("stopped"), (str, type(None)))
    if not isinstance(record.get("id"), str):
        return False
    if event == "generated":
        images, line = record.get("images"), record.get("line")
        return (
            isinstance(images, list)
            and len(images) <= MAX_RECORD_IMAGES
            and all(
                isinstance(i, dict)
                and isinstance(i.get("url"), str)
                and _expiry_ok(i.get("expires"))
                for i in images
            )
            and (line is None or _is_count(line, 1 << 32))
            and isinstance(record.get("fp", ""), str)
        )
    if event == "meta":
        return (
            isinstance(record.get("fp"), str)
            and _is_count(record.get("gen_line"))
            and _is_count(record.get("images"), MAX_RECORD_IMAGES + 1)
            and _is_count(record.get("line"), 1 << 32)
        )
    if event == "submitted":
        task = record.get("task")
        return isinstance(task, str) and 0 < len(task) <= 256
    if event == "saved" or (event == "expired" and "k" in record):
        return _is_count(record.get("k"), MAX_RECORD_IMAGES)
    return True
