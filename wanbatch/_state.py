"""Job lifecycle and the journal fold: ``replay(lines) -> RunState``, and the resume plan.

Pure: stdlib only, no I/O, no clock ("now" is a parameter). Rule: everything that decides what a
resumed run does lives here, so it is tested without files, servers or an event loop.

Lifecycle of a job, driven by journal records (``event`` field)::

    (new) --generated--> GENERATED --saved (all k)--> DONE
                            |  \\--expired--> EXPIRED --generated--> GENERATED
    (any but DONE) --failed--> FAILED --generated (--retry-failed)--> GENERATED

A job counts its expired generations (``JobState.expiries``, from the ``expired`` records, reset
by ``failed``): past :data:`MAX_REGENERATIONS` the job is failed instead of bought again.

Journal format v1 (one JSON object per line; ``v`` and ``ts`` on every record):

- ``run``: a run started (``jobs_file``, ``version``, ``jobs``: valid jobs in the file,
  ``endpoint``: the API base URL without credentials, ``mock``: true when it was the built-in
  mock, i.e. a loopback address).
- ``end``: that run reached its end (``stopped``: why it stopped early, or ``null``). A run
  with no ``end`` after its ``run`` was killed or crashed (or is still running).
- ``generated``: a call succeeded (``id``, ``fp``, ``attempt``, ``request_id``,
  ``images: [{"url", "expires"}]``, ``texts``, ``usage``, ``prompt``, ``seed``, ``size``, ``meta``,
  ``clock_offset``: the service's clock minus the client's, in seconds, from the answer's ``Date``).
  Written *before* any download, so a crash never costs a second generation while URLs are valid.
- ``saved``: image ``k`` of the current generation is on disk (``file``, ``bytes``, ``sha256``,
  plus ``prompt``/``seed``/``size``/``request_id``/``meta`` for ``metadata.jsonl``).
- ``expired``: image ``k``'s URL expired before it was downloaded: the store refused it (no
  clock decides that; older journals may hold ``judged: "client"`` records, read the same).
- ``attempt``: one failed attempt that will be retried (``code``, ``status``, ``possibly_billed``).
- ``failed``: the job failed for good (``code``, ``message``, ``status``, ``source``).
- ``meta``: a done job's line changed but not its request (its ``meta`` was edited, or only its
  spelling): ``fp``, ``gen_line``, ``images`` as its generation had them, the new line's
  ``line`` hash and ``meta``. The job is done from this line now; ``metadata.jsonl`` shows it.
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import json
import math
import re
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from wanbatch._errors import JournalError, is_throttle

__all__ = [
    "COUNT_LIMIT",
    "EXPIRY_MARGIN_S",
    "JOURNAL_VERSION",
    "MAX_REGENERATIONS",
    "Action",
    "DoneLines",
    "JobState",
    "Plan",
    "RunState",
    "Status",
    "TouchLog",
    "expiry_cause",
    "line_hash",
    "plan_job",
    "replay",
    "well_formed",
]

JOURNAL_VERSION = 1
#: A record's ``"v"`` at or above this is damage, not a newer format: such a line is skipped.
VERSION_LIMIT = 1000
#: A result URL that expires within this many seconds counts as expired on resume.
EXPIRY_MARGIN_S = 60.0
#: A job whose result URLs expired before its images were saved is generated again at most this
#: many times (counted in the journal, so restarts do not reset it); one more expiry fails it.
MAX_REGENERATIONS = 2
#: A clock offset from the service's beyond this is named as a likely cause of expiries.
CLOCK_SKEW_S = 300.0
#: Offsets beyond this (about 30 years) are damage, not a clock: ignored.
_MAX_CLOCK_OFFSET_S = 1e9
#: The most images one record may list: a call returns at most 5, and a packed done job
#: (:class:`DoneJobs`) keeps its image count in 4 bits. A record listing more is damaged.
MAX_RECORD_IMAGES = 15
#: Counts and line numbers read back from a journal or a snapshot are below this: a damaged
#: file may hold any number, and none may make a shift, an array or a float blow up.
COUNT_LIMIT = 1 << 63


class Status(enum.Enum):
    """Where a job stands according to the journal."""

    GENERATED = "generated"
    DONE = "done"
    EXPIRED = "expired"
    FAILED = "failed"


class JobState:
    """What the journal says about one job. Small on purpose: a run may hold a million."""

    __slots__ = ("expiries", "failure", "fp", "gen_line", "images", "line", "saved", "status")

    def __init__(self) -> None:
        self.status: Status | None = None
        self.fp: str = ""
        #: line_hash() of the job line it was generated from (0: unknown).
        self.line: int = 0
        #: Journal line number of the job's latest ``generated`` record (its current generation).
        self.gen_line: int = 0
        #: (url, expires) per image of the current generation; cleared once DONE.
        self.images: tuple[tuple[str, float | None], ...] = ()
        #: Bit k set = image k of the current generation is saved.
        self.saved: int = 0
        #: (code, message, journal line) of the last ``failed`` record while FAILED.
        self.failure: tuple[str, str, int] | None = None
        #: Generations whose URLs expired before all images were saved (0 after a failure).
        self.expiries: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (for a snapshot)."""
        return {
            "status": self.status.value if self.status else None,
            "fp": self.fp,
            "line": self.line,
            "gen_line": self.gen_line,
            "images": [list(i) for i in self.images],
            "saved": self.saved,
            "failure": list(self.failure) if self.failure else None,
            "expiries": self.expiries,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobState:
        """Rebuild from :meth:`to_json` output; ValueError when a field has the wrong type or
        is out of range."""
        if not isinstance(data, Mapping):
            raise ValueError("a job is not an object")
        job = cls()
        job.status = Status(data["status"]) if data["status"] is not None else None
        job.fp = _checked(data["fp"], str, "fp")
        job.line = _count(data.get("line", 0), "line", 1 << 32)
        job.gen_line = _count(data["gen_line"], "gen_line")
        images = data["images"]
        if not isinstance(images, list) or len(images) > MAX_RECORD_IMAGES:
            raise ValueError("images: not a short list")
        pairs = []
        for pair in images:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                raise ValueError("images: not [url, expires] pairs")
            pairs.append((pair[0], _expiry(pair[1])))
        job.images = tuple(pairs)
        job.saved = _count(data["saved"], "saved", 1 << len(job.images))
        failure = data["failure"]
        if failure is not None:
            if not (isinstance(failure, list) and len(failure) == 3):
                raise ValueError("failure: not [code, message, line]")
            code, message = _checked(failure[0], str, "code"), _checked(failure[1], str, "message")
            job.failure = (code, message, _count(failure[2], "failure line"))
        job.expiries = _count(data.get("expiries", 0), "expiries")
        return job

    def pending_images(self) -> list[tuple[int, str, float | None]]:
        """(k, url, expires) of images generated but not yet saved."""
        return [
            (k, url, exp) for k, (url, exp) in enumerate(self.images) if not self.saved >> k & 1
        ]


def _id_key(job_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(job_id.encode(), digest_size=8).digest(), "big")


def line_hash(text: str, salt: str) -> int:
    """32-bit hash of a job line and the run's defaults (never 0, which means unknown).

    A resume passes over a done job whose line hashes the same without parsing it again.
    """
    digest = hashlib.blake2b(f"{salt}\0{text}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") or 1


#: The first ``"id": "..."`` of a raw job line. It may sit inside another string: harmless,
#: since a match also needs the hash of the whole line to equal the one recorded for that id.
_ID_FIELD = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9][A-Za-z0-9._-]{0,127})"')


class DoneLines:
    """Which job lines a resume passes over unread: done, and generated from this very line.

    The check runs on the raw bytes of a line (no UTF-8 decode, no JSON parse): the id found by a
    regex, its packed entry in :class:`DoneJobs` (one hash, one bisect) and the line's hash
    against the one its ``generated`` record holds. A job with a newer record that is not a
    failure (it is being generated again) is not passed over. Indices (``0 <= i < len(self)``)
    name done jobs, so a reader can tell duplicate ids apart with an array instead of a set.
    """

    __slots__ = ("_jobs", "_keys", "_lines", "_salted")

    def __init__(self, state: RunState, salt: str) -> None:
        self._keys, _vals, self._lines = state.done.arrays()
        self._jobs = state.jobs
        self._salted = hashlib.blake2b(f"{salt}\0".encode(), digest_size=4)

    def __len__(self) -> int:
        return len(self._keys)

    def match(self, raw: bytes) -> int:
        """The done index of a line (bytes, without its line break) if it needs no work, else -1.

        ``line_hash(text, salt)`` of the decoded line is the hash of exactly these bytes.
        """
        m = _ID_FIELD.search(raw)
        if m is None:
            return -1
        job_id = m.group(1)
        keys = self._keys
        key = int.from_bytes(hashlib.blake2b(job_id, digest_size=8).digest(), "big")
        i = bisect_left(keys, key)
        if i == len(keys) or keys[i] != key:
            return -1
        recorded = self._lines[i]
        if recorded == 0:
            return -1
        h = self._salted.copy()
        h.update(raw)
        if (int.from_bytes(h.digest(), "big") or 1) != recorded:
            return -1
        if self._jobs:
            newer = self._jobs.get(job_id.decode("ascii"))
            if newer is not None and newer.status is not Status.FAILED:
                return -1
        return i

    @staticmethod
    def job_id(raw: bytes) -> str:
        """The id :meth:`match` read from a line it matched (ASCII by the id rule)."""
        m = _ID_FIELD.search(raw)
        return m.group(1).decode("ascii") if m else "?"

    def index(self, job_id: str) -> int:
        """The done index of ``job_id`` (changed or not), or -1 when it is not done."""
        keys = self._keys
        key = _id_key(job_id)
        i = bisect_left(keys, key)
        return i if i < len(keys) and keys[i] == key else -1


def _short_fp(fingerprint: str) -> int:
    """28 bits of a request fingerprint (a sha256 hex digest): enough to notice a change."""
    try:
        return int(fingerprint[:7], 16)
    except ValueError:
        return 0


#: Entries sorted at once when freezing; larger tails are sorted in runs and merged, so the
#: transient memory of a sort stays small next to the packed arrays themselves.
SORT_RUN = 1 << 16


def _sorted_indices(keys: array[int], start: int, stop: int) -> Iterator[int]:
    """Indices ``start..stop`` of ``keys`` by key; equal keys keep their order (stable)."""
    if stop - start <= SORT_RUN:
        return iter(sorted(range(start, stop), key=keys.__getitem__))
    runs = [
        array("I", sorted(range(lo, min(stop, lo + SORT_RUN)), key=keys.__getitem__))
        for lo in range(start, stop, SORT_RUN)
    ]
    # (key, index) pairs: ties go to the lower index, so the merge is stable too.
    merged = heapq.merge(*(((keys[i], i) for i in run) for run in runs))
    return (i for _, i in merged)


class DoneJobs:
    """Finished jobs, packed in two arrays: 16 bytes a job instead of a JobState and its id.

    A resumed run over a million done jobs must fit in memory and start fast, and a done job is
    final: all the plan and the views need of it is its request fingerprint, the journal line of
    its generation and its image count. Ids are kept as 64-bit hashes (a false match among a
    million ids has odds of about 1 in 10^7). Appends are O(1); the first lookup sorts once.
    """

    __slots__ = ("_keys", "_lines", "_sorted", "_vals")

    # ``_sorted`` is the length of the sorted, duplicate-free prefix of the arrays; appends go
    # after it. Freezing sorts only the appended part and merges, so a resume that loaded a
    # snapshot (all sorted) and replayed a few new records never sorts a million entries again.

    def __init__(self) -> None:
        self._keys = array("Q")
        self._vals = array("Q")
        self._lines = array("I")  # line_hash() of the job line, 0 if unknown
        self._sorted = 0

    def add(self, job_id: str, fingerprint: str, gen_line: int, images: int, line: int = 0) -> None:
        """Record a finished job (a later record for the same id wins)."""
        packed = (
            (min(gen_line, 0xFFFFFFFF)) | (min(images, 15) << 32) | (_short_fp(fingerprint) << 36)
        )
        self._keys.append(_id_key(job_id))
        self._vals.append(packed)
        self._lines.append(line & 0xFFFFFFFF)

    def _freeze(self) -> None:
        keys, vals, lines = self._keys, self._vals, self._lines
        done = self._sorted
        if done == len(keys):
            return
        # Later records win: sort the appended part (stable), keep each key's last entry, then
        # merge it into the sorted prefix, where an appended entry replaces an equal key.
        tail = _sorted_indices(keys, done, len(keys))
        new_keys, new_vals, new_lines = array("Q"), array("Q"), array("I")

        def put(i: int) -> None:
            if new_keys and new_keys[-1] == keys[i]:
                new_vals[-1], new_lines[-1] = vals[i], lines[i]
            else:
                new_keys.append(keys[i])
                new_vals.append(vals[i])
                new_lines.append(lines[i])

        i = 0
        for j in tail:
            while i < done and keys[i] <= keys[j]:
                put(i)
                i += 1
            put(j)
        while i < done:
            put(i)
            i += 1
        self._keys, self._vals, self._lines = new_keys, new_vals, new_lines
        self._sorted = len(new_keys)

    def _index(self, job_id: str) -> int:
        self._freeze()
        key = _id_key(job_id)
        i = bisect_left(self._keys, key)
        return i if i < len(self._keys) and self._keys[i] == key else -1

    def unchanged(self, job_id: str, line: int) -> bool:
        """True when the job is done and was generated from this very job line."""
        i = self._index(job_id)
        return i >= 0 and self._lines[i] != 0 and self._lines[i] == line & 0xFFFFFFFF

    def get(self, job_id: str) -> tuple[int, int, int] | None:
        """(short fingerprint, generation line, images) of a finished job, or None."""
        i = self._index(job_id)
        if i < 0:
            return None
        packed = self._vals[i]
        return packed >> 36, packed & 0xFFFFFFFF, (packed >> 32) & 15

    def settled_gen_line(self, job_id: str) -> int:
        """The generation line of a job among those sorted already (0: not among them).

        No sort: a replay asks this before each record, between appends (see TouchLog).
        """
        key = _id_key(job_id)
        i = bisect_left(self._keys, key, 0, self._sorted)
        if i < self._sorted and self._keys[i] == key:
            return self._vals[i] & 0xFFFFFFFF
        return 0

    def __contains__(self, job_id: object) -> bool:
        return isinstance(job_id, str) and self.get(job_id) is not None

    def __len__(self) -> int:
        self._freeze()
        return len(self._keys)

    def arrays(self) -> tuple[array[int], array[int], array[int]]:
        """The packed arrays, frozen: keys, values, line hashes (a snapshot writes them as is)."""
        self._freeze()
        return self._keys, self._vals, self._lines

    @classmethod
    def from_arrays(cls, keys: array[int], vals: array[int], lines: array[int]) -> DoneJobs:
        """Rebuild from :meth:`arrays` (as read back from a snapshot)."""
        if not len(keys) == len(vals) == len(lines):
            raise ValueError("snapshot arrays differ in length")
        done = cls()
        done._keys, done._vals, done._lines = keys, vals, lines
        done._sorted = len(keys)
        return done

    def to_bytes(self) -> bytes:
        """The packed arrays (for a snapshot): 20 bytes a job."""
        self._freeze()
        return self._keys.tobytes() + self._vals.tobytes() + self._lines.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> DoneJobs:
        """Rebuild from :meth:`to_bytes` output."""
        count, rest = divmod(len(data), 20)
        if rest:
            raise ValueError("snapshot arrays are cut short")
        done = cls()
        done._keys.frombytes(data[: 8 * count])
        done._vals.frombytes(data[8 * count : 16 * count])
        done._lines.frombytes(data[16 * count :])
        done._sorted = count  # snapshots are written frozen
        return done

    def images(self) -> int:
        """Images of all finished jobs."""
        self._freeze()
        return sum((v >> 32) & 15 for v in self._vals)


@dataclass
class RunState:
    """The fold of a journal: every job's state plus run-wide totals."""

    #: Jobs that are not done (generated, expired, failed): a run holds few of these.
    jobs: dict[str, JobState] = field(default_factory=dict)
    #: Finished jobs, packed.
    done: DoneJobs = field(default_factory=DoneJobs)
    lines: int = 0
    #: Images generated (bought) over all runs in this folder.
    images_generated: int = 0
    calls_succeeded: int = 0
    failed_attempts: int = 0
    throttled: int = 0
    possibly_billed: int = 0
    runs: int = 0
    jobs_file: str | None = None
    #: The service's clock minus the client's (seconds), as the latest ``generated`` record
    #: that carries it measured: named in the likely cause when URLs expire.
    clock_offset: float = 0.0
    #: Valid jobs in the job file when the last run started (its ``run`` record).
    jobs_in_file: int = 0
    #: The last run wrote its ``end`` record (it was not killed, and did not crash), and
    #: why it stopped early, if it did (``None``: it ran out of work).
    run_ended: bool = False
    stop_reason: str | None = None
    #: The service of the last run that named one (``run`` records of older journals do not):
    #: its base URL, and whether it was the mock.
    endpoint: str | None = None
    mock: bool | None = None
    #: Line numbers of records that could not be read (a torn last line is the usual one).
    damaged: list[int] = field(default_factory=list)
    #: Calls that lost their answer (each possibly billed) per job not answered or failed since.
    lost: dict[str, int] = field(default_factory=dict)
    #: Names the exact journal content this state folds (``"<bytes>:<tail digest>"``), when
    #: the reader knows it (a snapshot taken or loaded with nothing after it), else ``None``.
    #: Caches derived from the state (the resume prefix) are valid only for the same source.
    source: str | None = None

    def apply(self, record: Mapping[str, Any], lineno: int) -> None:
        """Fold one journal record into the state (the transition table of the module doc).

        A record that is not :func:`well_formed` is only listed in ``damaged``.
        """
        if not well_formed(record):
            self.damaged.append(lineno)
            return
        event = record.get("event")
        if event == "run":
            self.runs += 1
            self.jobs_file = record.get("jobs_file")
            jobs = record.get("jobs")
            self.jobs_in_file = jobs if type(jobs) is int and 0 <= jobs < 2**63 else 0
            self.run_ended, self.stop_reason = False, None
            mock = record.get("mock")
            if isinstance(mock, bool):
                self.mock = mock
                endpoint = record.get("endpoint")
                self.endpoint = endpoint if isinstance(endpoint, str) else None
            return
        if event == "end":
            stopped = record.get("stopped")
            self.run_ended, self.stop_reason = True, stopped if isinstance(stopped, str) else None
            return
        job_id = record.get("id")
        if not isinstance(job_id, str):
            self.damaged.append(lineno)
            return
        if event == "attempt":
            self.failed_attempts += 1
            if is_throttle(record.get("status"), record.get("code"), record.get("message")):
                self.throttled += 1
            if record.get("possibly_billed"):
                self.possibly_billed += 1
                # Per job, until it is answered or fails: the bound on buying blind survives
                # restarts (a run that keeps losing answers must not reset it).
                self.lost[job_id] = self.lost.get(job_id, 0) + 1
            return
        job = self.jobs.get(job_id)
        if event in ("generated", "failed"):
            self.lost.pop(job_id, None)
        if event == "generated":
            if job is None:
                job = self.jobs[job_id] = JobState()
            images = tuple(
                (str(i["url"]), _float_or_none(i.get("expires"))) for i in record["images"]
            )
            job.status = Status.GENERATED
            job.fp = str(record.get("fp", ""))
            line = record.get("line", 0)
            job.line = line if isinstance(line, int) else 0
            job.gen_line = lineno
            job.images = images
            job.saved = 0
            job.failure = None
            self.images_generated += len(images)
            self.calls_succeeded += 1
            offset = _float_or_none(record.get("clock_offset"))
            if offset is not None and abs(offset) < _MAX_CLOCK_OFFSET_S:
                self.clock_offset = offset
            if not images:
                self._finish(job_id, job)
        elif event == "saved":
            if job is None or job.status not in (Status.GENERATED, Status.EXPIRED):
                return  # a re-download of an image already counted, or a stray record
            k = int(record["k"])
            if 0 <= k < len(job.images):
                job.saved |= 1 << k
            if job.saved.bit_count() == len(job.images):
                self._finish(job_id, job)
        elif event == "expired":
            if job is not None and job.status is Status.GENERATED:
                job.status = Status.EXPIRED
                job.expiries += 1  # once per generation: its sibling images' records add none
        elif event == "meta":
            if job is None or job.status is Status.FAILED:  # done (a later generation wins)
                self.done.add(
                    job_id,
                    str(record["fp"]),
                    _count(record["gen_line"], "gen_line"),
                    _count(record["images"], "images", MAX_RECORD_IMAGES + 1),
                    _count(record["line"], "line", 1 << 32),
                )
        elif event == "failed":
            if job is None:
                job = self.jobs[job_id] = JobState()
                job.fp = str(record.get("fp", ""))
            job.status = Status.FAILED
            job.failure = (str(record.get("code", "")), str(record.get("message", "")), lineno)
            job.expiries = 0  # --retry-failed starts the job afresh, with the same bound
        # Unknown events from the same format version are ignored on purpose (forward compat).

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

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready header of everything but ``done`` (whose arrays are stored as they are)."""
        header = {name: getattr(self, name) for name in self._TOTALS}
        header["jobs"] = {job_id: job.to_json() for job_id, job in self.jobs.items()}
        header["lost"] = dict(self.lost)
        return header

    @classmethod
    def from_snapshot(cls, header: Mapping[str, Any], done: DoneJobs) -> RunState:
        """Rebuild what :meth:`snapshot` gave.

        Raises KeyError/ValueError when a field is missing, of the wrong type or out of range
        (a snapshot is a cache: its reader then replays the journal instead).
        """
        if not isinstance(header, Mapping):
            raise ValueError("the state is not an object")
        state = cls(done=done)
        for name in cls._TOTALS:
            value = header[name]
            if name in ("jobs_file", "stop_reason", "endpoint"):
                value = _checked(value, (str, type(None)), name)
            elif name in ("run_ended", "mock"):
                if type(value) is not bool and not (name == "mock" and value is None):
                    raise ValueError(f"{name}: wrong type")
            elif name == "clock_offset":
                offset = _float_or_none(value)
                if offset is None or not abs(offset) <= _MAX_CLOCK_OFFSET_S:
                    raise ValueError(f"{name}: not a plausible offset")
                value = offset
            elif name == "damaged":
                value = [_count(n, name) for n in _checked(value, list, name)]
            else:
                value = _count(value, name)
            setattr(state, name, value)
        lost = _checked(header["lost"], dict, "lost")
        state.lost = {_checked(k, str, "a job id"): _count(v, "lost") for k, v in lost.items()}
        jobs = _checked(header["jobs"], dict, "jobs")
        state.jobs = {_checked(k, str, "a job id"): JobState.from_json(v) for k, v in jobs.items()}
        # Every job and damaged line is a line of the journal the snapshot folds.
        lines = state.lines
        if len(done) + len(state.jobs) > lines or any(n > lines for n in state.damaged):
            raise ValueError("more jobs or damaged lines than journal lines")
        if any(job.gen_line > lines for job in state.jobs.values()):
            raise ValueError("a generation line past the journal's end")
        if any(job.status in (None, Status.DONE) for job in state.jobs.values()):
            raise ValueError("a job not done with no state, or done")  # done ones are packed
        return state

    def _finish(self, job_id: str, job: JobState) -> None:
        self.done.add(job_id, job.fp, job.gen_line, len(job.images), job.line)
        del self.jobs[job_id]

    def job(self, job_id: str) -> JobState | None:
        """The state of one job (a done job comes back as a small DONE JobState)."""
        job = self.jobs.get(job_id)
        if job is not None and job.status is not Status.FAILED:
            return job  # a newer generation than any earlier finish
        done = self.done.get(job_id)
        if done is None:
            return job
        # Never un-do a job whose images are on disk: DONE wins over a later failure.
        fp, gen_line, images = done
        state = JobState()
        state.status = Status.DONE
        state.fp = f"#{fp:07x}"
        state.gen_line = gen_line
        state.saved = (1 << images) - 1
        return state

    def __len__(self) -> int:
        """Jobs the journal knows of."""
        return len(self.jobs) + len(self.done)

    def status_counts(self) -> dict[str, int]:
        """Jobs by state, each job counted once."""
        counts = {"done": len(self.done)}
        for job_id, job in self.jobs.items():
            if job.status is Status.FAILED and job_id in self.done:
                continue
            if job.status is not None:
                counts[job.status.value] = counts.get(job.status.value, 0) + 1
        return counts


def _same_request(recorded: str, fingerprint: str) -> bool:
    if recorded.startswith("#"):  # a packed done job keeps 28 bits of it
        return int(recorded[1:], 16) == _short_fp(fingerprint)
    return recorded == fingerprint


def _float_or_none(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _checked(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name}: wrong type")
    return value


def _count(value: object, name: str, limit: int = COUNT_LIMIT) -> int:
    """``value`` if it is an int in ``[0, limit)`` (not a bool, not a float), else ValueError."""
    if type(value) is not int or not 0 <= value < limit:
        raise ValueError(f"{name}: not a count below {limit}")
    return value


def _is_count(value: object, limit: int = COUNT_LIMIT) -> bool:
    return type(value) is int and 0 <= value < limit


def _expiry(value: object) -> float | None:
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
        _expiry(value)
    except ValueError:
        return False
    return True


def well_formed(record: Mapping[str, Any]) -> bool:
    """Whether a journal record's fields that the fold reads have their types and ranges.

    A record that fails is damaged (skipped, listed in :attr:`RunState.damaged`): a flipped bit
    or a hand edit must never crash a resume or make it allocate by a number it read. Fields the
    fold does not read are not looked at, so a ``generated`` record whose URLs are intact keeps
    them (they were paid for) whatever its other fields hold.
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
    if event == "saved" or (event == "expired" and "k" in record):
        return _is_count(record.get("k"), MAX_RECORD_IMAGES)
    return True


#: How a job stood before a replay touched it: status, generation line, failure line (0: none).
Before = tuple["Status | None", int, int]


@dataclass
class TouchLog:
    """The jobs a replay touched and how each stood before: what lets the views be updated
    from the new journal lines alone (:func:`wanbatch._journal.write_views`).

    Bounded: past ``limit`` jobs it gives up (``overflow``) and frees what it held, and the
    views are rebuilt from the whole journal instead.
    """

    limit: int = 100_000
    before: dict[str, Before] = field(default_factory=dict)
    overflow: bool = False
    #: Where the replay started: journal bytes and lines before it, and the state's ``source``
    #: there ("<bytes>:<tail digest>"); set by the reader, None when it replayed from the start.
    start_offset: int = 0
    start_lines: int = 0
    start_source: str | None = None

    def note(self, state: RunState, job_id: str) -> None:
        """Before the replay applies a record naming ``job_id``: note how that job stands."""
        if self.overflow or job_id in self.before:
            return
        if len(self.before) >= self.limit:
            self.overflow = True
            self.before = {}
            return
        # As RunState.job(), without sorting the done jobs: one this replay finished was noted
        # at its first record, so a job seen for the first time is done only if it was done
        # before the replay began, i.e. among the sorted ones.
        job = state.jobs.get(job_id)
        if job is not None and job.status is not Status.FAILED:
            self.before[job_id] = (job.status, job.gen_line, 0)
            return
        gen_line = state.done.settled_gen_line(job_id)
        if gen_line:
            self.before[job_id] = (Status.DONE, gen_line, 0)
        elif job is not None:
            failed = job.failure[2] if job.failure is not None else 0
            self.before[job_id] = (job.status, job.gen_line, failed)
        else:
            self.before[job_id] = (None, 0, 0)


def replay(
    lines: Iterable[str], state: RunState | None = None, touched: TouchLog | None = None
) -> RunState:
    """Fold journal lines (text, newline optional) into a :class:`RunState`.

    With ``state`` (a snapshot of the journal's first ``state.lines`` lines), ``lines`` are the
    lines after those. A line that is not a JSON object (a torn last line after a crash, or
    garbage) is recorded in ``damaged`` and skipped. A record from a newer format raises
    :class:`JournalError`. ``touched`` notes how each job a record names stood before it.
    """
    state = state if state is not None else RunState()
    for lineno, line in enumerate(lines, start=state.lines + 1):
        state.lines = lineno
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
            state.damaged.append(lineno)
            _count_cut_answer(state, line)
            continue
        if not isinstance(record, dict):
            state.damaged.append(lineno)
            continue
        version = record.get("v", JOURNAL_VERSION)
        if isinstance(version, int) and version >= VERSION_LIMIT:
            state.damaged.append(lineno)  # damage (a huge number), not a format to come
            continue
        if isinstance(version, int) and version > JOURNAL_VERSION:
            raise JournalError(
                f"journal line {lineno} is format v{version}, written by a newer wanbatch "
                f"(this one reads v{JOURNAL_VERSION}); upgrade wanbatch to resume this folder"
            )
        if touched is not None:
            job_id = record.get("id")
            if isinstance(job_id, str):
                touched.note(state, job_id)
        try:
            state.apply(record, lineno)
        except (LookupError, TypeError, ValueError, ArithmeticError):
            state.damaged.append(lineno)
    return state


#: The start of a ``generated`` record as the journal writes it: its job id.
_GENERATED_ID = re.compile(r'"event":"generated","id":"([A-Za-z0-9._-]{1,128})"')


def _count_cut_answer(state: RunState, line: str) -> None:
    """A torn last line that was a ``generated`` record is a paid answer the journal could not
    take whole (disk full, a crash mid-write): possibly billed, and a lost answer of its job.
    The next run's journal cuts the line and records it as such (an ``attempt``)."""
    if line.endswith("\n") or '"event":"generated"' not in line:
        return
    state.possibly_billed += 1
    found = _GENERATED_ID.search(line)
    if found is not None:
        state.lost[found[1]] = state.lost.get(found[1], 0) + 1


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
    changed = bool(state.fp) and not _same_request(state.fp, fingerprint)
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
