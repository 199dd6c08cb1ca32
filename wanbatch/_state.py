"""Job lifecycle and the journal fold: ``replay(lines) -> RunState``, and the resume plan.

Pure: stdlib only, no I/O, no clock ("now" is a parameter). Rule: everything that decides what a
resumed run does lives here, so it is tested without files, servers or an event loop.

Lifecycle of a job, driven by journal records (``event`` field)::

    (new) --generated--> GENERATED --saved (all k)--> DONE
                            |  \\--expired--> EXPIRED --generated--> GENERATED
    (any but DONE) --failed--> FAILED --generated (--retry-failed)--> GENERATED

Journal format v1 (one JSON object per line; ``v`` and ``ts`` on every record):

- ``run``: a run started (``jobs_file``, ``version``, ``endpoint``: the API base URL without
  credentials, ``mock``: true when it was the built-in mock, i.e. a loopback address).
- ``generated``: a call succeeded (``id``, ``fp``, ``attempt``, ``request_id``,
  ``images: [{"url", "expires"}]``, ``texts``, ``usage``, ``prompt``, ``seed``, ``size``, ``meta``).
  Written *before* any download, so a crash never costs a second generation while URLs are valid.
- ``saved``: image ``k`` of the current generation is on disk (``file``, ``bytes``, ``sha256``,
  plus ``prompt``/``seed``/``size``/``request_id``/``meta`` for ``metadata.jsonl``).
- ``expired``: image ``k``'s URL expired before it was downloaded.
- ``attempt``: one failed attempt that will be retried (``code``, ``status``, ``possibly_billed``).
- ``failed``: the job failed for good (``code``, ``message``, ``status``, ``source``).
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import json
import re
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from wanbatch._errors import JournalError

__all__ = [
    "EXPIRY_MARGIN_S",
    "JOURNAL_VERSION",
    "Action",
    "DoneLines",
    "JobState",
    "Plan",
    "RunState",
    "Status",
    "TouchLog",
    "line_hash",
    "plan_job",
    "replay",
]

JOURNAL_VERSION = 1
#: A result URL that expires within this many seconds counts as expired on resume.
EXPIRY_MARGIN_S = 60.0


class Status(enum.Enum):
    """Where a job stands according to the journal."""

    GENERATED = "generated"
    DONE = "done"
    EXPIRED = "expired"
    FAILED = "failed"


class JobState:
    """What the journal says about one job. Small on purpose: a run may hold a million."""

    __slots__ = ("failure", "fp", "gen_line", "images", "line", "saved", "status")

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
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobState:
        """Rebuild from :meth:`to_json` output."""
        job = cls()
        job.status = Status(data["status"]) if data["status"] else None
        job.fp = str(data["fp"])
        job.line = int(data.get("line", 0))
        job.gen_line = int(data["gen_line"])
        job.images = tuple((str(u), _float_or_none(e)) for u, e in data["images"])
        job.saved = int(data["saved"])
        failure = data["failure"]
        job.failure = (str(failure[0]), str(failure[1]), int(failure[2])) if failure else None
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
    #: The service of the last run that named one (``run`` records of older journals do not):
    #: its base URL, and whether it was the mock.
    endpoint: str | None = None
    mock: bool | None = None
    #: Line numbers of records that could not be read (a torn last line is the usual one).
    damaged: list[int] = field(default_factory=list)
    #: Names the exact journal content this state folds (``"<bytes>:<tail digest>"``), when
    #: the reader knows it (a snapshot taken or loaded with nothing after it), else ``None``.
    #: Caches derived from the state (the resume prefix) are valid only for the same source.
    source: str | None = None

    def apply(self, record: Mapping[str, Any], lineno: int) -> None:
        """Fold one journal record into the state (the transition table of the module doc)."""
        event = record.get("event")
        if event == "run":
            self.runs += 1
            self.jobs_file = record.get("jobs_file")
            mock = record.get("mock")
            if isinstance(mock, bool):
                self.mock = mock
                endpoint = record.get("endpoint")
                self.endpoint = endpoint if isinstance(endpoint, str) else None
            return
        job_id = record.get("id")
        if not isinstance(job_id, str):
            self.damaged.append(lineno)
            return
        if event == "attempt":
            self.failed_attempts += 1
            if record.get("status") == 429:
                self.throttled += 1
            if record.get("possibly_billed"):
                self.possibly_billed += 1
            return
        job = self.jobs.get(job_id)
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
        elif event == "failed":
            if job is None:
                job = self.jobs[job_id] = JobState()
                job.fp = str(record.get("fp", ""))
            job.status = Status.FAILED
            job.failure = (str(record.get("code", "")), str(record.get("message", "")), lineno)
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
        "endpoint",
        "mock",
        "damaged",
    )

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready header of everything but ``done`` (whose arrays are stored as they are)."""
        header = {name: getattr(self, name) for name in self._TOTALS}
        header["jobs"] = {job_id: job.to_json() for job_id, job in self.jobs.items()}
        return header

    @classmethod
    def from_snapshot(cls, header: Mapping[str, Any], done: DoneJobs) -> RunState:
        """Rebuild what :meth:`snapshot` gave (raises KeyError/TypeError/ValueError if bad)."""
        state = cls(done=done)
        for name in cls._TOTALS:
            setattr(state, name, header[name])
        state.damaged = list(state.damaged)
        state.jobs = {str(k): JobState.from_json(v) for k, v in header["jobs"].items()}
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
        except ValueError:
            state.damaged.append(lineno)
            continue
        if not isinstance(record, dict):
            state.damaged.append(lineno)
            continue
        version = record.get("v", JOURNAL_VERSION)
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
        except (KeyError, TypeError, ValueError):
            state.damaged.append(lineno)
    return state


class Action(enum.Enum):
    """What the run does with one job of the job file."""

    CALL = "call"
    DOWNLOAD = "download"
    SKIP_DONE = "skip_done"
    SKIP_FAILED = "skip_failed"


@dataclass(frozen=True, slots=True)
class Plan:
    """The decision for one job: an action, the images to fetch, and why."""

    action: Action
    downloads: tuple[tuple[int, str, float | None], ...] = ()
    #: Set when the journal's request for this id differs from the job file's.
    changed: bool = False
    #: Set when generated images expired and the job is generated again.
    regenerate: bool = False


def plan_job(
    state: JobState | None,
    fingerprint: str,
    *,
    now: float,
    retry_failed: bool,
    regenerate_expired: bool = True,
    expiry_margin: float = EXPIRY_MARGIN_S,
) -> Plan:
    """Decide what to do with a job given its journal state.

    A URL that expires within ``expiry_margin`` seconds counts as expired: starting a download
    that cannot finish would waste the attempt.
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
    pending = state.pending_images()
    if state.status is Status.GENERATED and all(
        exp is None or exp - expiry_margin > now for _, _, exp in pending
    ):
        return Plan(Action.DOWNLOAD, downloads=tuple(pending), changed=changed)
    # Some URL expired before its image was saved.
    if regenerate_expired:
        return Plan(Action.CALL, changed=changed, regenerate=True)
    return Plan(Action.SKIP_FAILED, changed=changed)
