"""The call times this output folder's earlier runs measured, read from the journal's end.

I/O: reads ``journal.jsonl`` backwards in blocks and parses only its last ``generated``
records (their ``duration``: seconds the call took), so a folder of a million jobs answers as
fast as a new one. The time plan (:mod:`wanbatch._timeplan`) takes their median.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from wanbatch._config import DEFAULT_MODEL, BatchConfig
from wanbatch._timeplan import TimePlan, plan_time

__all__ = ["RECENT_CALLS", "measured_call_times", "time_plan_for"]

#: The most recent calls whose times are read (per folder, all models together).
RECENT_CALLS = 1000
#: The journal's tail read at most: past this, older calls are not looked for.
MAX_TAIL_BYTES = 64 * 1024 * 1024
_BLOCK = 1 << 20
_MARK = b'"event":"generated"'


def _tail_lines(path: Path, max_bytes: int) -> list[bytes]:
    """Whole lines of ``path``'s last ``max_bytes`` bytes that hold a ``generated`` record,
    newest first, read block by block until :data:`RECENT_CALLS` of them are found."""
    found: list[bytes] = []
    with path.open("rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        pos, carry = end, b""
        while pos > 0 and end - pos < max_bytes and len(found) < RECENT_CALLS:
            step = min(_BLOCK, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step) + carry
            lines = chunk.split(b"\n")
            carry = lines[0] if pos > 0 else b""  # a line cut at the block's start
            body = lines[1:] if pos > 0 else lines
            found.extend(line for line in reversed(body) if _MARK in line)
    return found[:RECENT_CALLS]


def measured_call_times(
    out_dir: Path, *, max_bytes: int = MAX_TAIL_BYTES
) -> dict[str, list[float]]:
    """Seconds each of the folder's last :data:`RECENT_CALLS` answered calls took, by model
    (a record without a model is of :data:`DEFAULT_MODEL`); empty for a new folder."""
    times: dict[str, list[float]] = {}
    try:
        lines = _tail_lines(out_dir / "journal.jsonl", max_bytes)
    except OSError:  # no journal yet (or unreadable: the run itself says so)
        return times
    for raw in lines:
        try:
            rec = json.loads(raw)
        except ValueError:  # a torn or damaged line
            continue
        if not isinstance(rec, dict) or rec.get("event") != "generated":
            continue
        duration, model = rec.get("duration"), rec.get("model", DEFAULT_MODEL)
        if isinstance(duration, (int, float)) and not isinstance(duration, bool):
            if isinstance(model, str):
                times.setdefault(model, []).append(float(duration))
    return times


def time_plan_for(
    out_dir: Path, config: BatchConfig, calls: Mapping[str, int], images: int, *, keys: int = 1
) -> TimePlan:
    """The time plan of a run's calls (by model, buying at most ``images``) into ``out_dir``,
    at ``config``'s calls in flight, with the call times measured there when it has some."""
    return plan_time(
        dict(calls) or {config.defaults.model or DEFAULT_MODEL: 0},
        images,
        keys=keys,
        in_flight=config.concurrency,
        measured=measured_call_times(out_dir),
    )
