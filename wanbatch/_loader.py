"""Stage 1, jobs: stream a job file into planned jobs; validate a whole file in one pass.

Owns the I/O of the job file format (the format itself and its rules live in
:mod:`wanbatch._jobs`, the image rules in :mod:`wanbatch._images`):

- reading the file one line at a time, in constant memory (a million lines need no more memory
  than ten): UTF-8 with or without BOM, LF or CRLF, blank lines ignored;
- reading local reference images, each once per run, through :class:`ImageResolver`'s bounded
  LRU cache (relative paths are resolved against the job file's folder);
- duplicate ids, kept as 8-byte hashes (:class:`~wanbatch._jobs.IdSet`), not as strings; ids
  that differ only in letter case count as duplicates (they name the same files on macOS and
  Windows);
- lines past :data:`MAX_LINE_BYTES` are refused with their size, never read whole;
- :func:`iter_jobs` for the engine, :func:`validate_file` + :func:`format_report` +
  :func:`validate_command` for ``wanbatch validate`` and the pre-run check.

Synchronous on purpose: the engine runs :func:`iter_jobs` in a worker thread, in chunks.
Imports only the pure core (``_jobs``, ``_images``, ``_config``, ``_errors``) and the stdlib.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import os
import stat
from array import array
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO

from ._columns import MAX_COLUMNS, TEXT, Kind, describe, kind_of, unify
from ._config import GenerationDefaults
from ._doneprefix import DonePrefix
from ._errors import JobFileError
from ._ids import IdSet
from ._images import (
    MAX_IMAGE_BYTES,
    ImageError,
    RefKind,
    check_image,
    classify_ref,
    data_uri,
    local_path_of,
    parse_data_uri,
)
from ._jobs import (
    MAX_PLAIN_LINE_CHARS,
    Issue,
    Job,
    JobWarning,
    PlannedJob,
    check_id,
    derive_job_id,
    oversize_problem,
    parse_line_issues,
)
from ._requests import build_planned_job
from ._rules import analyse_job
from ._state import DoneLines, RunState

__all__ = [
    "DEFAULT_IMAGE_CACHE_BYTES",
    "MAX_LINE_BYTES",
    "MAX_PLAIN_LINE_CHARS",
    "ImageCacheStats",
    "ImageResolver",
    "ValidationReport",
    "first_problems",
    "format_report",
    "iter_jobs",
    "validate_command",
    "validate_file",
]

#: Inline images kept for reuse by later jobs; a shared image is then read once per run.
DEFAULT_IMAGE_CACHE_BYTES = 64 * 1024 * 1024
#: Entries kept when images are only checked (validation keeps no bytes, just the verdict).
_CHECK_CACHE_ENTRIES = 16_384
_BOM = b"\xef\xbb\xbf"
#: The longest job line read: four reference images of 10 MB inline (as base64, 56 MB) fit in
#: it. A longer line is refused with its size, and never held in memory whole.
MAX_LINE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImageCacheStats:
    """What :class:`ImageResolver` did: ``reads`` counts files opened and read."""

    reads: int
    hits: int
    entries: int
    bytes: int


class ImageResolver:
    """Turns an ``images`` entry into what is sent, reading each local file once.

    - ``http(s)://`` URL: returned as-is (the service fetches it).
    - ``data:image/...;base64,`` URI: decoded and checked, returned as-is.
    - anything else is a local path (``file:`` URIs included): relative paths are resolved
      against ``base_dir`` (the job file's folder), absolute paths are used as written. The
      file must be a regular file; its format is sniffed from its bytes. It is sent as a data
      URI (``embed=True``) or, when only validating (``embed=False``), checked and returned
      unchanged.

    Verdicts are cached by resolved path in an LRU bounded by ``max_bytes`` of data URIs
    (and by entry count), so a file shared by many jobs is read once.
    """

    def __init__(
        self,
        base_dir: str,
        *,
        embed: bool = True,
        max_bytes: int = DEFAULT_IMAGE_CACHE_BYTES,
        max_entries: int = _CHECK_CACHE_ENTRIES,
    ) -> None:
        self.base_dir = base_dir
        self.embed = embed
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        # resolved path -> data URI (or the ref itself when not embedding), or an ImageError
        self._cache: OrderedDict[str, str | ImageError] = OrderedDict()
        # reference as written -> resolved path ("" for a URL): skips re-parsing a reference
        # that many lines repeat. Holds no image bytes, so it is bounded by entries only.
        self._refs: dict[str, str] = {}
        self._bytes = 0
        self._reads = 0
        self._hits = 0

    def stats(self) -> ImageCacheStats:
        """Counters: files read, cache hits, entries and bytes held."""
        return ImageCacheStats(self._reads, self._hits, len(self._cache), self._bytes)

    def __call__(self, ref: str) -> str:
        """Resolve one reference (see the class docstring).

        Raises:
            ImageError: the image breaks a rule, or the file cannot be read.
        """
        full = self._refs.get(ref)
        if full is None:
            kind = classify_ref(ref)
            if kind is RefKind.DATA:  # not memoised: its key would be the whole image
                declared, data = parse_data_uri(ref)
                check_image(data, declared=declared)
                return ref
            if kind is RefKind.URL:
                full = ""
            else:
                full = os.path.normpath(os.path.join(self.base_dir, local_path_of(ref)))
            if len(self._refs) >= self.max_entries:
                self._refs.clear()
            self._refs[ref] = full
        if not full:
            return ref
        cached = self._cache.get(full)
        if cached is not None:
            self._hits += 1
            self._cache.move_to_end(full)
            if isinstance(cached, ImageError):
                raise ImageError(str(cached))
            return cached if self.embed else ref
        try:
            value: str | ImageError = self._load(ref, full)
        except ImageError as exc:
            value = exc
        self._remember(full, value)
        if isinstance(value, ImageError):
            raise ImageError(str(value))
        return value if self.embed else ref

    def _load(self, ref: str, full: str) -> str:
        where = repr(ref) if full == ref else f"{ref!r} (resolved to {full})"
        try:
            st = os.stat(full)
        except FileNotFoundError:
            raise ImageError(f"no such file: {where}") from None
        except OSError as exc:
            raise ImageError(f"cannot read {where}: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"is a directory, not an image file: {where}")
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"not a regular file: {where}")
        if st.st_size > MAX_IMAGE_BYTES:
            raise ImageError(
                f"{where} is {st.st_size / 1_048_576:.1f} MB; the API accepts at most "
                f"{MAX_IMAGE_BYTES // 1_048_576} MB"
            )
        try:
            with open(full, "rb") as fh:
                self._reads += 1
                data = fh.read(MAX_IMAGE_BYTES + 1)
        except OSError as exc:
            raise ImageError(f"cannot read {where}: {exc.strerror}") from None
        try:
            info = check_image(data)
        except ImageError as exc:
            raise ImageError(f"{exc} ({where})") from None
        return data_uri(info, data) if self.embed else ref

    def _remember(self, full: str, value: str | ImageError) -> None:
        size = len(value) if isinstance(value, str) and self.embed else 0
        if size > self.max_bytes:
            return
        self._cache[full] = value
        self._bytes += size
        while self._bytes > self.max_bytes or len(self._cache) > self.max_entries:
            _, old = self._cache.popitem(last=False)
            if isinstance(old, str) and self.embed:
                self._bytes -= len(old)


@dataclass(slots=True)
class ValidationReport:
    """The result of :func:`validate_file`: every problem of the file, in line order."""

    path: str
    errors: list[JobFileError] = field(default_factory=list)  #: the first ``max_errors``
    warnings: list[JobWarning] = field(default_factory=list)  #: the first ``max_errors``
    error_count: int = 0  #: all errors, including those past the cap
    warning_count: int = 0
    invalid_lines: int = 0  #: lines with at least one error (what ``skip_invalid`` skips)
    lines: int = 0  #: physical lines read
    jobs: int = 0  #: non-blank lines, valid or not
    valid_jobs: int = 0
    interleaved: int = 0  #: valid jobs in interleaved mode (the rest edit)
    images: int = 0  #: most images a run may buy: sum of max_new_images of valid jobs
    skipped_done: int = 0  #: valid lines passed over as done and unchanged (``done``)
    #: (line number, byte offset) of the first line ``done`` did not pass over: a later pass
    #: can start there (None: every line was passed over).
    work_starts_at: tuple[int, int] | None = None
    image_reads: int = 0  #: local image files read (each once, when the cache holds it)

    @property
    def ok(self) -> bool:
        """True when the file has no error (warnings allowed)."""
        return self.error_count == 0

    @property
    def truncated(self) -> bool:
        """True when more problems were found than the lists hold."""
        return self.error_count > len(self.errors) or self.warning_count > len(self.warnings)


# --------------------------------------------------------------------------- reading


def _open(path: str) -> BinaryIO | JobFileError:
    """Open the job file, or the error explaining why it cannot be."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return JobFileError(path, 0, "file", "no such file")
    except OSError as exc:
        return JobFileError(path, 0, "file", f"cannot read: {exc.strerror}")
    if stat.S_ISDIR(st.st_mode):
        return JobFileError(path, 0, "file", "is a directory; give a .jsonl job file")
    try:
        return open(path, "rb")  # closed by the caller's `with`
    except OSError as exc:
        return JobFileError(path, 0, "file", f"cannot read: {exc.strerror}")


def _lines(
    fh: BinaryIO,
    path: str,
    seen: list[Any] | None = None,
    start: tuple[int, int] = (1, 0),
    done: DoneLines | None = None,
) -> Iterator[tuple[int, str | JobFileError | int]]:
    """Yield ``(lineno, text)`` for each non-blank line, or a decoding error for that line.

    Reads the binary file one buffered line at a time (constant memory: a line longer than
    :data:`MAX_LINE_BYTES` comes out as an error with its size, and is passed over in blocks
    without being held whole), strips a UTF-8 BOM on line 1 and a trailing LF or CRLF.
    ``seen[0]`` is kept at the last line number read (blank lines included), ``seen[1]`` at
    that line's byte offset, ``seen[2]`` at the bytes of the last line passed over as done.
    ``start`` (line number, byte offset) begins the reading at a line found by an earlier pass.
    A line ``done`` matches (done and unchanged) comes out as its done index (an ``int``),
    undecoded.
    """
    seen = seen if seen is not None else [0, 0, b""]
    while len(seen) < 3:
        seen.append(b"" if len(seen) == 2 else 0)
    match = done.match if done is not None and len(done) else None
    lineno, offset = start
    lineno -= 1
    if offset:
        fh.seek(offset)
    readline = fh.readline
    while raw := readline(_READ_LIMIT):
        lineno += 1
        seen[0], seen[1] = lineno, offset  # this line's number and byte offset
        offset += len(raw)
        if len(raw) > MAX_LINE_BYTES and len(raw.rstrip(b"\r\n")) > MAX_LINE_BYTES:
            whole = raw.endswith(b"\n")
            size = len(raw) - (len(raw) - len(raw.rstrip(b"\r\n")) if whole else 0)
            del raw
            yield lineno, _too_long(path, lineno, size, None if whole else fh)
            offset = fh.tell()
            continue
        if lineno == 1 and raw.startswith(_BOM):
            raw = raw[3:]
        if match is not None:
            # The resume fast path: a done line is a hash and a bisect, not a decode and parse.
            body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
            index = match(body)
            if index >= 0:
                seen[2] = body  # for a duplicate-id error naming the id
                yield lineno, index
                continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (
                lineno,
                JobFileError(
                    path,
                    lineno,
                    "line",
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1}); "
                    "save the file as UTF-8",
                ),
            )
            continue
        text = text.rstrip("\r\n")
        if text and not text.isspace():
            yield lineno, text


#: Bytes one read of a line may return: the longest line, its CRLF, and one byte to tell.
_READ_LIMIT = MAX_LINE_BYTES + 3


def _too_long(path: str, lineno: int, size: int, rest: BinaryIO | None) -> JobFileError:
    """The error for a line over :data:`MAX_LINE_BYTES` whose first ``size`` bytes were read;
    reads the ``rest`` of it (if not None) to its end in 1 MiB blocks, keeping none."""
    if rest is not None:  # blocks and a search (readline() is slow on a line this long)
        while block := rest.read(1 << 20):
            end = block.find(b"\n")
            if end >= 0:
                size += end - (end > 0 and block[end - 1] == 13)  # the line break is not the line's
                rest.seek(end + 1 - len(block), os.SEEK_CUR)  # the next line starts there
                break
            size += len(block)
    human = f"{size / (1 << 30):.1f} GiB" if size >= 1000 << 20 else f"{size / (1 << 20):.1f} MiB"
    return JobFileError(
        path,
        lineno,
        "line",
        f"is {size:,} bytes ({human}); a job line may be at most "
        f"{MAX_LINE_BYTES // 1_048_576} MiB (room for four 10 MB reference images inline)",
    )


def _salt_digest(salt: str) -> str:
    # "ids-nocase": a prefix holds no id with a capital letter (see scan_done_prefix); one
    # written before that rule has another digest, so it is not used.
    return hashlib.blake2b(b"ids-nocase\0" + salt.encode(), digest_size=16).hexdigest()


def _digest_prefix(fh: BinaryIO, size: int) -> str:
    digest = hashlib.blake2b(digest_size=16)
    return digest.hexdigest() if _hash_range(fh, 0, size, digest) else ""


def _remap_first(
    first: array[int], old_keys: array[int], new_keys: array[int]
) -> array[int] | None:
    """``first`` (by done index among ``old_keys``) re-indexed by ``new_keys`` (a superset: a
    done job stays done); None if an old key is missing."""
    out = array("I", bytes(4 * len(new_keys)))
    j, n = 0, len(new_keys)
    for i, key in enumerate(old_keys):
        while j < n and new_keys[j] < key:
            j += 1
        if j == n or new_keys[j] != key:
            return None
        out[j] = first[i]
    return out


def scan_done_prefix(
    path: str | os.PathLike[str],
    state: RunState,
    salt: str,
    *,
    start: DonePrefix | None = None,
    start_keys: array[int] | None = None,
) -> DonePrefix | None:
    """Find the job file's leading run of done, unchanged lines (see :class:`DonePrefix`).

    Returns ``None`` when the state's journal source is unknown, nothing is done, or the file
    cannot be read. Stops at the first line with work, a bad line, a duplicate id or an id
    with a capital letter.

    ``start``: the prefix the run began with (:func:`usable_prefix` accepted it) and
    ``start_keys`` the done jobs' keys then. Its lines are still done (a done job stays done),
    so the scan goes on from its end, once its bytes are seen unchanged: at the end of a resume
    over a million done lines, a digest and a re-index instead of a check of each line (~4 s).
    """
    if state.source is None or not len(state.done):
        return None
    spath = os.fspath(path)
    opened = _open(spath)
    if isinstance(opened, JobFileError):
        return None
    done = DoneLines(state, salt)
    first: array[int] | None = None
    if start is not None and start_keys is not None and start.salt == _salt_digest(salt):
        first = _remap_first(start.first, start_keys, state.done.arrays()[0])
    digest = hashlib.blake2b(digest_size=16)
    with opened as fh:
        begin, jobs = (1, 0), 0
        if first is not None and start is not None:
            same = _hash_range(fh, 0, start.size, digest)
            if same and digest.copy().hexdigest() == start.digest:
                begin, jobs = (start.next_line, start.size), start.jobs
            else:  # the file changed under the run: check every line
                first, digest = None, hashlib.blake2b(digest_size=16)
        ids = _Ids(done, first)
        seen: list[Any] = [0, 0, b""]
        end: tuple[int, int] | None = None
        fh.seek(begin[1])  # _lines seeks only to a non-zero offset
        last: tuple[int, int] = (0, -1)  # line number and done index of the last done line
        for lineno, item in _lines(fh, spath, seen, start=begin, done=done):
            # An id with a capital letter ends the prefix too: a later line may hold it in
            # other case, which only a reading of this line can tell (see _Ids.add_case).
            if not isinstance(item, int) or _has_capital(seen[2]) or ids.add_done(item, lineno):
                end = (lineno, seen[1])
                break
            jobs += 1
            last = (lineno, item)
        if end is None:  # the whole file: the next line would start at its end
            size = fh.seek(0, os.SEEK_END)
            end = (max(seen[0], begin[0] - 1) + 1, size)
            fh.seek(max(0, size - 1))
            if seen[0] and size and fh.read(1) != b"\n":
                # The last line has no line break: text appended later would continue it, so
                # the prefix ends where that line starts (a prefix ends at a line break).
                end = (seen[0], seen[1])
                if last[0] == seen[0]:
                    jobs -= 1
                    ids.first[last[1]] = 0
        if jobs == 0:
            return None
        if not _hash_range(fh, begin[1] if first is not None else 0, end[1], digest):
            return None
    return DonePrefix(
        state.source, _salt_digest(salt), end[1], end[0], jobs, digest.hexdigest(), ids.first
    )


def _hash_range(fh: BinaryIO, start: int, end: int, digest: Any) -> bool:
    """Feed bytes ``[start, end)`` of ``fh`` to ``digest``; False if the file is shorter."""
    fh.seek(start)
    left = end - start
    while left > 0:
        block = fh.read(min(left, 1 << 20))
        if not block:
            return False
        digest.update(block)
        left -= len(block)
    return True


def usable_prefix(
    prefix: DonePrefix | None, path: str | os.PathLike[str], state: RunState, salt: str
) -> DonePrefix | None:
    """``prefix`` if it describes this job file, journal state and defaults, else ``None``."""
    if (
        prefix is None
        or prefix.source != state.source
        or prefix.salt != _salt_digest(salt)
        or len(prefix.first) != len(state.done)
    ):
        return None
    try:
        with open(path, "rb") as fh:
            same = _digest_prefix(fh, prefix.size) == prefix.digest
    except OSError:
        return None
    return prefix if same else None


class _Ids:
    """Duplicate-id detection: done ids by their done index (4 bytes each), the rest hashed.

    Ids that differ only in letter case (``Fox``, ``fox``) are duplicates too: they name the
    same image files on macOS and Windows. Those are found through :meth:`add_case`: only ids
    with a capital letter are kept a second time, lowercased.
    """

    __slots__ = ("_done", "_folded", "_other", "first")

    def __init__(self, done: DoneLines | None, first: array[int] | None = None) -> None:
        self._done = done if done is not None and len(done) else None
        if first is not None and self._done is not None and len(first) == len(self._done):
            self.first = array("I", first)  # a copy: the caller's stays as it was
        else:
            self.first = array("I", bytes(4 * len(self._done))) if self._done else array("I")
        self._other = IdSet()
        self._folded = IdSet(16)  # lowercased ids that had a capital letter

    def add_done(self, index: int, lineno: int) -> int:
        """Count done index ``index`` seen on ``lineno``: 0 if new, else its first line."""
        first = self.first[index]
        if first:
            return first
        self.first[index] = lineno
        return 0

    def add(self, job_id: str, lineno: int) -> int:
        """Count ``job_id`` seen on ``lineno``: 0 if new, else the line it was first seen on."""
        if self._done is not None:
            index = self._done.index(job_id)
            if index >= 0:
                return self.add_done(index, lineno)
        return self._other.add(job_id, lineno)

    def add_case(self, job_id: str, lineno: int) -> int:
        """After :meth:`add` found ``job_id`` new: 0, or the first line of an id that differs
        from it only in letter case."""
        if job_id.islower():  # the common case: no capital letter
            return self._folded.get(job_id) if len(self._folded) else 0
        folded = job_id.lower()
        if folded == job_id:  # no letter at all
            return self._folded.get(folded) if len(self._folded) else 0
        first = self._folded.add(folded, lineno)
        if first:
            return first
        # The all-lowercase spelling, on a line before (counted as written, done or not).
        if self._done is not None:
            index = self._done.index(folded)
            if index >= 0:
                return self.first[index]
        return self._other.get(folded)


def _has_capital(raw_line: bytes) -> bool:
    """True when the id of a done line (its raw bytes) has a capital letter."""
    job_id = DoneLines.job_id(raw_line)
    return job_id != job_id.lower()


def _errors_of(issues: list[Issue], path: str, lineno: int) -> list[JobFileError]:
    return [JobFileError(path, lineno, i.field, i.message) for i in issues]


def _dup_error(path: str, lineno: int, first: int, job_id: str, derived: bool) -> JobFileError:
    hint = " (derived from the request: the two lines ask the same)" if derived else ""
    message = f"duplicate id '{job_id}' (first on line {first}){hint}"
    return JobFileError(path, lineno, "id", message)


def _case_error(path: str, lineno: int, first: int, job_id: str) -> JobFileError:
    message = (
        f"duplicate id '{job_id}' in other letter case (first on line {first}): ids that "
        "differ only in case name the same image files on macOS and Windows"
    )
    return JobFileError(path, lineno, "id", message)


def _check_id(
    ids: _Ids, path: str, lineno: int, job_id: str, derived: bool = False
) -> JobFileError | None:
    """Count ``job_id`` on ``lineno``; the duplicate error if an earlier line has it."""
    first = ids.add(job_id, lineno)
    if first:
        return _dup_error(path, lineno, first, job_id, derived)
    first = ids.add_case(job_id, lineno)
    return _case_error(path, lineno, first, job_id) if first else None


def _check_done_id(
    ids: _Ids, path: str, lineno: int, index: int, raw: bytes
) -> JobFileError | None:
    """:func:`_check_id` for a done line passed over undecoded (``raw``: its bytes)."""
    first = ids.add_done(index, lineno)
    job_id = DoneLines.job_id(raw)
    if first:
        return _dup_error(path, lineno, first, job_id, False)
    first = ids.add_case(job_id, lineno)
    return _case_error(path, lineno, first, job_id) if first else None


def _given_id(text: str, job: Job | None) -> str | None:
    """The id a line that has errors gives, if it gives a valid one (for duplicate checks)."""
    if job is not None:
        return job.id
    try:
        data = json.loads(text)
    except ValueError:
        return None
    job_id = data.get("id") if isinstance(data, dict) else None
    return job_id if isinstance(job_id, str) and check_id(job_id) is None else None


#: Kinds of plain values, looked up by type: this runs for every meta key of every line.
_SCALAR_KINDS: dict[type, Kind] = {str: "str", int: "int", float: "float", bool: "bool"}


class _MetaTypes:
    """The type each ``meta`` key had so far (and on which line), to warn when it changes:
    a column of mixed types does not load as a dataset, so ``metadata.jsonl`` writes it as
    text (see :mod:`wanbatch._columns`)."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[str, tuple[Kind, int]] = {}

    def check(self, meta: dict[str, Any], lineno: int) -> list[Issue]:
        """Note the line's meta; a warning for each key whose values no longer share a type."""
        out: list[Issue] = []
        seen = self._seen
        for key, value in meta.items():
            kind = _SCALAR_KINDS.get(type(value)) or kind_of(value)
            old = seen.get(key)
            if old is None:
                if kind != "null" and len(seen) < MAX_COLUMNS:
                    seen[key] = (kind, lineno)
                continue
            if old[0] is kind or old[0] == kind or old[0] == TEXT:  # `is`: the usual case
                continue
            both = unify(old[0], kind)
            if both == TEXT:
                here, there = describe(kind), describe(old[0])
                what = (
                    f"{here} here, {there} on line {old[1]}"
                    if here != there
                    else f"{here} whose values differ in type from line {old[1]}'s"
                )
                out.append(
                    Issue(
                        f"meta.{key}",
                        f"{what}: a column of mixed types does not load as a dataset, so "
                        "metadata.jsonl writes this one as text (JSON)",
                        warning=True,
                    )
                )
            seen[key] = (both, old[1])
        return out


class _Planner:
    """Turns line texts into planned jobs, with one image cache and one id set per file."""

    def __init__(
        self,
        path: str,
        defaults: GenerationDefaults,
        *,
        embed: bool,
        cache_bytes: int,
        done: DoneLines | None = None,
        first: array[int] | None = None,
    ) -> None:
        self.path = path
        self.defaults = defaults
        self.resolver = ImageResolver(
            os.path.dirname(os.path.abspath(path)), embed=embed, max_bytes=cache_bytes
        )
        self.ids = _Ids(done, first)
        self.meta_types = _MetaTypes()

    def plan(
        self, lineno: int, text: str
    ) -> tuple[PlannedJob | None, list[JobFileError], str | None]:
        """Plan one line for sending (body built, images read and inlined, fingerprinted).

        Returns ``(planned, errors, id)``: ``id`` is the id a line with errors gives, if any.
        """
        job = parse_line_issues(text)
        if isinstance(job, list):
            return None, _errors_of(job, self.path, lineno), _given_id(text, None)
        oversize = oversize_problem(job, text)
        planned, errors, _warnings = build_planned_job(
            job, self.defaults, self.resolver, path=self.path, line=lineno, source=text
        )
        if oversize is not None:
            planned, errors = None, [*errors, JobFileError(self.path, lineno, "line", oversize)]
        return planned, errors, _given_id(text, job) if planned is None else None

    def check(
        self, lineno: int, text: str
    ) -> tuple[_Checked | None, list[JobFileError], list[JobWarning], str | None]:
        """Check one line as :meth:`plan` would, without building a body (validation).

        Returns ``(checked, errors, warnings, id)`` (``id`` as :meth:`plan` gives it).
        """
        job = parse_line_issues(text)
        if isinstance(job, list):
            return None, _errors_of(job, self.path, lineno), [], _given_id(text, None)
        settings, issues = analyse_job(job, self.defaults)
        warnings: list[JobWarning] = []
        errors: list[JobFileError] = []
        oversize = oversize_problem(job, text)
        if oversize is not None:
            issues = [*issues, Issue("line", oversize)]
        if issues:
            for i in issues:
                if i.warning:
                    warnings.append(JobWarning(self.path, lineno, i.field, i.message))
                else:
                    errors.append(JobFileError(self.path, lineno, i.field, i.message))
        if settings is None:
            return None, errors, warnings, job.id
        for field_name, ref in settings.refs:
            try:
                self.resolver(ref)
            except ValueError as exc:
                errors.append(JobFileError(self.path, lineno, field_name, str(exc)))
        if errors:
            return None, errors, warnings, job.id
        job_id, derived = job.id, False
        if job_id is None:
            job_id, derived = derive_job_id(job), True
        checked = _Checked(job_id, derived, settings.interleave, settings.max_new_images, job.meta)
        return checked, [], warnings, None


@dataclass(frozen=True, slots=True)
class _Checked:
    """What validation keeps of a valid line."""

    id: str
    id_derived: bool
    interleave: bool
    max_new_images: int
    meta: dict[str, Any] | None


# --------------------------------------------------------------------------- public API


def iter_jobs(
    path: str | os.PathLike[str],
    defaults: GenerationDefaults,
    *,
    skip_invalid: bool = False,
    cache_bytes: int = DEFAULT_IMAGE_CACHE_BYTES,
    done: DoneLines | None = None,
    start: tuple[int, int] = (1, 0),
    check_duplicates: bool = True,
) -> Generator[PlannedJob | JobFileError, None, None]:
    """Stream the job file as planned jobs, in line order, in constant memory.

    Invalid lines (and the second and later lines of a duplicate id, also of an invalid line's
    id or of an id in other letter case, as :func:`validate_file` finds them) come out as
    :class:`~wanbatch._errors.JobFileError` values, never raised. With ``skip_invalid=False``
    iteration ends right after the first error (a broken file must not be half run: the
    engine validates first); with ``skip_invalid=True`` it goes on past them. Warnings are
    not yielded (see :func:`validate_file`).

    Local images are read once each and sent as data URIs (bounded LRU of ``cache_bytes``).
    Lines ``done`` matches (done and unchanged) are passed over (their ids still count for
    duplicate detection). ``start`` (line number, byte offset, e.g. a validation report's
    ``work_starts_at``) begins at that line. ``check_duplicates=False`` (for a file that
    :func:`validate_file` just passed) keeps no id set: 17 bytes a line less.
    """
    spath = os.fspath(path)
    opened = _open(spath)
    if isinstance(opened, JobFileError):
        yield opened
        return
    planner = _Planner(
        spath,
        defaults,
        embed=True,
        cache_bytes=cache_bytes,
        done=done if check_duplicates else None,
    )
    ids = planner.ids
    seen: list[Any] = [0, 0, b""]
    with opened as fh:
        for lineno, text in _lines(fh, spath, seen, start=start, done=done):
            if isinstance(text, int):  # done and unchanged
                if check_duplicates:
                    dup = _check_done_id(ids, spath, lineno, text, seen[2])
                    if dup is not None:
                        yield dup
                        if not skip_invalid:
                            return
                continue
            if isinstance(text, JobFileError):
                yield text
                if not skip_invalid:
                    return
                continue
            planned, errors, given_id = planner.plan(lineno, text)
            if planned is not None:
                if check_duplicates:
                    dup = _check_id(ids, spath, lineno, planned.id, planned.id_derived)
                    if dup is not None:
                        yield dup
                        if not skip_invalid:
                            return
                        continue
                yield planned
            elif errors:
                if check_duplicates and given_id is not None:  # later lines may repeat it
                    _check_id(ids, spath, lineno, given_id)
                yield from errors
                if not skip_invalid:
                    return


def validate_file(
    path: str | os.PathLike[str],
    defaults: GenerationDefaults,
    *,
    max_errors: int = 1000,
    done: DoneLines | None = None,
    prefix: DonePrefix | None = None,
    on_job: Callable[[str, int], None] | None = None,
) -> ValidationReport:
    """Check the whole file in one streaming pass and report every problem.

    Reads each local image once (checking it, keeping no bytes). Duplicate ids are errors on
    the later line, naming the first ("duplicate id 'x' (first on line 3)"), also when the first
    line is invalid and when the two differ only in letter case. A file with no job line is an
    error. Memory stays flat:
    ids are kept as 8-byte hashes, and only the first ``max_errors`` errors and warnings are
    kept (all are counted). Lines ``done`` matches (done and unchanged) count as valid without
    a second look (``skipped_done``); ``on_job(id, max_new_images)`` is called for every other
    valid line, so a caller can plan in the same pass. A ``prefix`` (checked by
    :func:`usable_prefix` against this file and ``done``'s state) is not read at all: its lines
    count as done, and reading starts where it ends.
    """
    spath = os.fspath(path)
    report = ValidationReport(spath)

    def error(err: JobFileError) -> None:
        report.error_count += 1
        if len(report.errors) < max_errors:
            report.errors.append(err)

    opened = _open(spath)
    if isinstance(opened, JobFileError):
        error(opened)
        return report
    start = (1, 0)
    first_lines = None
    if prefix is not None and done is not None:
        start, first_lines = (prefix.next_line, prefix.size), prefix.first
        report.jobs = report.valid_jobs = report.skipped_done = prefix.jobs
    planner = _Planner(spath, defaults, embed=False, cache_bytes=0, done=done, first=first_lines)
    ids = planner.ids
    seen: list[Any] = [start[0] - 1, start[1], b""]
    with opened as fh:
        for lineno, text in _lines(fh, spath, seen, start=start, done=done):
            report.jobs += 1
            if isinstance(text, int):  # done and unchanged: nothing will be sent for it
                dup = _check_done_id(ids, spath, lineno, text, seen[2])
                if dup is not None:
                    error(dup)
                    report.invalid_lines += 1
                    continue
                report.valid_jobs += 1
                report.skipped_done += 1
                continue
            if report.work_starts_at is None:
                report.work_starts_at = (lineno, seen[1])
            if isinstance(text, JobFileError):
                error(text)
                report.invalid_lines += 1
                continue
            planned, errors, warnings, given_id = planner.check(lineno, text)
            for w in warnings:
                report.warning_count += 1
                if len(report.warnings) < max_errors:
                    report.warnings.append(w)
            if planned is None:
                for err in errors:
                    error(err)
                report.invalid_lines += 1
                if given_id is not None:  # a duplicate of it is reported all the same
                    dup = _check_id(ids, spath, lineno, given_id)
                    if dup is not None:
                        error(dup)
                continue
            dup = _check_id(ids, spath, lineno, planned.id, planned.id_derived)
            if dup is not None:
                error(dup)
                report.invalid_lines += 1
                continue
            if planned.meta:
                for issue in planner.meta_types.check(planned.meta, lineno):
                    report.warning_count += 1
                    if len(report.warnings) < max_errors:
                        report.warnings.append(
                            JobWarning(spath, lineno, issue.field, issue.message)
                        )
            report.valid_jobs += 1
            report.images += planned.max_new_images
            report.interleaved += planned.interleave
            if on_job is not None:
                on_job(planned.id, planned.max_new_images)
    report.lines = seen[0]
    report.image_reads = planner.resolver.stats().reads
    if report.jobs == 0:
        error(
            JobFileError(spath, 0, "file", "no jobs: the file is empty or holds only blank lines")
        )
    return report


def format_report(report: ValidationReport) -> list[str]:
    """The lines ``wanbatch validate`` prints: ``FILE:LINE: field: message`` per problem in
    line order (warnings as ``FILE:LINE: field: warning: message``), then a count line like
    ``jobs.jsonl: 3 errors, 1 warning in 120 jobs``."""
    out = list(_problems(report))
    summary = (
        f"{report.path}: {_plural(report.error_count, 'error')}, "
        f"{_plural(report.warning_count, 'warning')} in {_plural(report.jobs, 'job')}"
    )
    if report.truncated:
        summary += f" (first {len(report.errors)} errors and {len(report.warnings)} warnings shown)"
    if report.ok:
        editing = report.valid_jobs - report.interleaved
        summary += (
            f"; a run buys at most {_plural(report.images, 'image')} "
            f"({report.interleaved} interleaved, {editing} editing)"
        )
    out.append(summary)
    return out


def _problems(report: ValidationReport, errors: bool = True) -> Iterator[str]:
    """Each problem kept, formatted, in line order (at one line, errors first)."""
    problems = heapq.merge(
        ((e.line, 0, str(e)) for e in (report.errors if errors else ())),
        ((w.line, 1, str(w)) for w in report.warnings),
    )
    return (text for _line, _kind, text in problems)


def first_problems(report: ValidationReport, limit: int, *, errors: bool = True) -> list[str]:
    """The first ``limit`` problems (only warnings with ``errors=False``) as ``wanbatch
    validate`` prints them, in line order."""
    return list(itertools.islice(_problems(report, errors), limit))


def validate_command(path: str, defaults: GenerationDefaults, out: TextIO) -> int:
    """``wanbatch validate JOBS``: print the report to ``out``; return 0 if valid, else 2."""
    report = validate_file(path, defaults)
    for line in format_report(report):
        out.write(line + "\n")
    return 0 if report.ok else 2


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
