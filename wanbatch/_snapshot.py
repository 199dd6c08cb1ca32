"""The state snapshot's content: a :class:`~wanbatch._state.RunState` as a JSON header plus
the packed done-job arrays (:func:`encode`), and back, every field checked (:func:`decode`).

Pure: stdlib only, no I/O. The file (``.state-snapshot``, a cache written through
:mod:`wanbatch._cachefile`) is read and written by :mod:`wanbatch._journal`, which ties it to
the journal by the byte offset it folds up to and a digest of the bytes before that offset.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from typing import Any

from wanbatch._donejobs import DoneJobs
from wanbatch._lifecycle import Status
from wanbatch._recordcheck import (
    COUNT_LIMIT,
    MAX_CLOCK_OFFSET_S,
    MAX_RECORD_IMAGES,
    checked,
    count,
    expiry,
    float_or_none,
)
from wanbatch._state import JobState, RunState

__all__ = [
    "CHECK_BYTES",
    "FORMAT",
    "TYPECODES",
    "decode",
    "encode",
    "job_from_json",
    "job_to_json",
    "state_from_header",
    "state_header",
]

FORMAT = 3  # 3: checksummed
#: Bytes before the snapshot's offset whose digest proves the journal is the same one.
CHECK_BYTES = 4096
#: The packed done jobs' arrays, in order: id keys, packed values, line hashes.
TYPECODES = "QQI"

#: Totals a snapshot carries besides the jobs.
_TOTALS = (
    "lines",
    "images_generated",
    "calls_succeeded",
    "failed_attempts",
    "throttled",
    "possibly_billed",
    "runs",
    "jobs_file",
    "jobs_in_file",
    "run_ended",
    "stop_reason",
    "endpoint",
    "mock",
    "damaged",
    "clock_offset",
)


def job_to_json(job: JobState) -> dict[str, Any]:
    """A job that is not done, JSON-ready."""
    return {
        "status": job.status.value if job.status else None,
        "fp": job.fp,
        "line": job.line,
        "gen_line": job.gen_line,
        "images": [list(i) for i in job.images],
        "saved": job.saved,
        "failure": list(job.failure) if job.failure else None,
        "expiries": job.expiries,
    }


def job_from_json(data: Mapping[str, Any]) -> JobState:
    """Rebuild what :func:`job_to_json` gave; ValueError when a field has the wrong type or is
    out of range (KeyError when one is missing)."""
    if not isinstance(data, Mapping):
        raise ValueError("a job is not an object")
    job = JobState()
    job.status = Status(data["status"]) if data["status"] is not None else None
    job.fp = checked(data["fp"], str, "fp")
    job.line = count(data.get("line", 0), "line", 1 << 32)
    job.gen_line = count(data["gen_line"], "gen_line")
    images = data["images"]
    if not isinstance(images, list) or len(images) > MAX_RECORD_IMAGES:
        raise ValueError("images: not a short list")
    pairs = []
    for pair in images:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError("images: not [url, expires] pairs")
        pairs.append((pair[0], expiry(pair[1])))
    job.images = tuple(pairs)
    job.saved = count(data["saved"], "saved", 1 << len(job.images))
    failure = data["failure"]
    if failure is not None:
        if not (isinstance(failure, list) and len(failure) == 3):
            raise ValueError("failure: not [code, message, line]")
        code, message = checked(failure[0], str, "code"), checked(failure[1], str, "message")
        job.failure = (code, message, count(failure[2], "failure line"))
    job.expiries = count(data.get("expiries", 0), "expiries")
    return job


def state_header(state: RunState) -> dict[str, Any]:
    """A JSON-ready header of everything but ``done`` (whose arrays are stored as they are)."""
    header = {name: getattr(state, name) for name in _TOTALS}
    header["jobs"] = {job_id: job_to_json(job) for job_id, job in state.jobs.items()}
    header["lost"] = dict(state.lost)
    header["tasks"] = dict(state.tasks)
    header["shard"] = state.shard
    return header


def state_from_header(header: Mapping[str, Any], done: DoneJobs) -> RunState:
    """Rebuild what :func:`state_header` gave.

    Raises KeyError/ValueError when a field is missing, of the wrong type or out of range
    (a snapshot is a cache: its reader then replays the journal instead).
    """
    if not isinstance(header, Mapping):
        raise ValueError("the state is not an object")
    state = RunState(done=done)
    for name in _TOTALS:
        value = header[name]
        if name in ("jobs_file", "stop_reason", "endpoint"):
            value = checked(value, (str, type(None)), name)
        elif name in ("run_ended", "mock"):
            if type(value) is not bool and not (name == "mock" and value is None):
                raise ValueError(f"{name}: wrong type")
        elif name == "clock_offset":
            offset = float_or_none(value)
            if offset is None or not abs(offset) <= MAX_CLOCK_OFFSET_S:
                raise ValueError(f"{name}: not a plausible offset")
            value = offset
        elif name == "damaged":
            value = [count(n, name) for n in checked(value, list, name)]
        else:
            value = count(value, name)
        setattr(state, name, value)
    lost = checked(header["lost"], dict, "lost")
    state.lost = {checked(k, str, "a job id"): count(v, "lost") for k, v in lost.items()}
    tasks = checked(header.get("tasks", {}), dict, "tasks")
    state.shard = checked(header.get("shard"), (str, type(None)), "shard")
    state.tasks = {checked(k, str, "a job id"): checked(v, str, "a task") for k, v in tasks.items()}
    jobs = checked(header["jobs"], dict, "jobs")
    state.jobs = {checked(k, str, "a job id"): job_from_json(v) for k, v in jobs.items()}
    # Every job and damaged line is a line of the journal the snapshot folds.
    lines = state.lines
    if len(done) + len(state.jobs) > lines or any(n > lines for n in state.damaged):
        raise ValueError("more jobs or damaged lines than journal lines")
    if any(job.gen_line > lines for job in state.jobs.values()):
        raise ValueError("a generation line past the journal's end")
    if any(job.status in (None, Status.DONE) for job in state.jobs.values()):
        raise ValueError("a job not done with no state, or done")  # done ones are packed
    return state


def encode(
    state: RunState, offset: int, tail: str
) -> tuple[dict[str, Any], tuple[array[int], array[int], array[int]]]:
    """The snapshot of ``state``, which folds the journal's first ``offset`` bytes (``tail``:
    the digest of the :data:`CHECK_BYTES` before it): its header and its arrays."""
    header = {"format": FORMAT, "offset": offset, "tail": tail, "state": state_header(state)}
    return header, state.done.arrays()


def decode(header: Mapping[str, Any], arrays: Sequence[array[int]]) -> tuple[RunState, int, str]:
    """The state, journal offset and tail digest of a snapshot read back (:func:`encode`).

    Raises KeyError/ValueError when anything is missing, of the wrong type, out of range or
    does not add up; whether it still describes the journal is for the reader to check.
    """
    if header.get("format") != FORMAT:
        raise ValueError(f"format {header.get('format')!r}, not {FORMAT}")
    offset, tail = header["offset"], header["tail"]
    if type(offset) is not int or not 0 <= offset < COUNT_LIMIT or not isinstance(tail, str):
        raise ValueError("offset or tail digest out of range")
    keys, vals, lines = arrays
    state = state_from_header(header["state"], DoneJobs.from_arrays(keys, vals, lines))
    if state.lines > offset:
        raise ValueError("more lines than bytes")
    return state, offset, tail
