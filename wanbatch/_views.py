"""The views of the journal: ``metadata.jsonl`` (one row per saved image of every done job)
and ``failed.jsonl`` (the job line of every job that failed for good, with its error).

I/O: a stage. :func:`write_views` rebuilds both files from the journal, or appends the rows of
the new journal lines when its cache, ``.views-state``, says the files stand where the replay
began (:class:`wanbatch._touchlog.TouchLog`). The cache is only ever a shortcut: deleting it
is always safe.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from wanbatch._cachefile import ignore, read_verified, write_verified
from wanbatch._columns import ColumnKinds
from wanbatch._config import DEFAULT_MODEL
from wanbatch._lifecycle import Status
from wanbatch._recordcheck import COUNT_LIMIT
from wanbatch._saved import JOURNAL_NAME, current_saved, image_on_disk, records
from wanbatch._state import JobState, RunState
from wanbatch._touchlog import TouchLog

__all__ = ["FAILED_NAME", "METADATA_NAME", "VIEWS_NAME", "write_views"]

METADATA_NAME = "metadata.jsonl"
FAILED_NAME = "failed.jsonl"
#: Which journal state the views were last written from, and their sizes then (a cache: when
#: it matches, the next run's end appends the new rows instead of rebuilding both files).
VIEWS_NAME = ".views-state"
VIEWS_FORMAT = 2  # 2: checksummed


def _write_atomic(path: Path, lines: Iterator[str]) -> int:
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as fh:
            for line in lines:
                fh.write(line)
                fh.write("\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def _metadata_row(rec: dict[str, Any], k: int, columns: ColumnKinds, meta: Any) -> str:
    """The row of image ``k`` of a ``saved`` record, with the job's ``meta`` as columns, each
    written in its column's one type (``columns``)."""
    row: dict[str, Any] = {
        "file_name": rec["file"],
        "id": rec["id"],
        "index": k,
        "prompt": rec.get("prompt"),
        "seed": rec.get("seed"),
        "size": rec.get("size"),
        "request_id": rec.get("request_id"),
        "sha256": rec.get("sha256"),
        # Runs before wanbatch knew other models made wan2.6-image's.
        "model": rec.get("model") or DEFAULT_MODEL,
    }
    if isinstance(meta, dict):
        for key, value in meta.items():
            column = key if key not in row else f"meta_{key}"
            if column not in row:
                row[column] = columns.value(column, value)
    return json.dumps(row, ensure_ascii=False)


#: How a ``meta`` record starts its event field (records are written with no spaces).
_META_MARK = b'"event":"meta"'


def _meta_edits(path: Path, offset: int = 0, lines: int = 0) -> dict[str, tuple[int, int]]:
    """Job id -> (journal line, byte offset) of its latest ``meta`` record, from ``offset`` on.

    A ``meta`` record says a done job's line now has other ``meta`` (its request unchanged):
    its rows take that meta, unless the job was generated again after it. Offsets, not the
    meta themselves, so that an edit of every job of a big run stays small in memory.
    """
    edits: dict[str, tuple[int, int]] = {}
    with path.open("rb") as fh:
        fh.seek(offset)
        for lineno, raw in enumerate(fh, start=lines + 1):
            if _META_MARK in raw:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    rec = None
                if isinstance(rec, dict) and rec.get("event") == "meta":
                    job_id = rec.get("id")
                    if isinstance(job_id, str):
                        edits[job_id] = (lineno, offset)
            offset += len(raw)
    return edits


def _meta_at(fh: IO[bytes], offset: int) -> Any:
    """The ``meta`` of the record at ``offset`` (see :func:`_meta_edits`)."""
    fh.seek(offset)
    try:
        rec = json.loads(fh.readline())
    except ValueError:
        return None
    return rec.get("meta") if isinstance(rec, dict) else None


def _failed_row(rec: dict[str, Any]) -> str:
    try:
        original = json.loads(rec.get("source") or "{}")
    except (ValueError, TypeError, RecursionError):
        original = {"source": rec.get("source")}
    if not isinstance(original, dict):
        original = {"source": rec.get("source")}
    original.setdefault("id", rec["id"])
    original["error"] = {
        "code": rec.get("code"),
        "message": rec.get("message"),
        "status": rec.get("status"),
        "request_id": rec.get("request_id"),
        "attempts": rec.get("attempts"),
    }
    return json.dumps(original, ensure_ascii=False)


class _Tally:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def _metadata_rows(
    path: Path,
    state: RunState,
    offset: int = 0,
    lines: int = 0,
    listed: TouchLog | None = None,
    columns: ColumnKinds | None = None,
    edits: dict[str, tuple[int, int]] | None = None,
    left_out: _Tally | None = None,
) -> Iterator[str]:
    """One row per image of every DONE job's current generation, from byte ``offset`` on.

    With ``listed``, jobs that were DONE before the replay it logged are already in the file.
    ``columns``: the meta columns' types so far (updated as rows are made); ``edits``: from
    :func:`_meta_edits`, the jobs whose meta changed after they were saved. With ``left_out``,
    only images on disk (whole: of their recorded size) get a row, so that the view loads as a
    dataset; the others are counted in ``left_out``.
    """
    columns = columns if columns is not None else ColumnKinds()
    meta_of = _EditedMeta(path, edits or {})
    out_dir = str(path.parent)
    try:
        for rec, k, gen_line in current_saved(path, state, offset, lines, listed):
            if not isinstance(rec.get("file"), str):
                continue  # a record that does not say where the image is lists nothing
            if left_out is not None and not image_on_disk(out_dir, rec):
                left_out.count += 1
                continue
            yield _metadata_row(rec, k, columns, meta_of(rec["id"], gen_line, rec))
    finally:
        meta_of.close()


class _EditedMeta:
    """The meta a job's rows show: its ``saved`` record's, or that of a ``meta`` record written
    after its generation (see :func:`_meta_edits`)."""

    def __init__(self, path: Path, edits: dict[str, tuple[int, int]]) -> None:
        self._path, self._edits = path, edits
        self._fh: IO[bytes] | None = None
        self._last: tuple[str, Any] = ("", None)  # rows of one job come one after another

    def __call__(self, job_id: str, gen_line: int, rec: dict[str, Any]) -> Any:
        edit = self._edits.get(job_id) if self._edits else None
        if edit is None or edit[0] < gen_line:
            return rec.get("meta")
        if self._last[0] != job_id:
            if self._fh is None:
                self._fh = self._path.open("rb")
            self._last = (job_id, _meta_at(self._fh, edit[1]))
        return self._last[1]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def _failed_rows(path: Path, state: RunState, offset: int = 0, lines: int = 0) -> Iterator[str]:
    """The job line of every job that failed for good, with its error, from ``offset`` on."""
    for lineno, rec in records(path, "failed", offset, lines):
        job_id = rec.get("id", "")
        job = state.job(job_id) if isinstance(job_id, str) else None
        if job is None or job.failure is None or job.failure[2] != lineno:
            continue
        yield _failed_row(rec)


def _appendable(state: RunState, touched: TouchLog) -> tuple[bool, bool]:
    """Whether the new journal lines only add rows to metadata.jsonl / failed.jsonl.

    Not when a job listed before changed (generated again, or its failure replaced or
    resolved), or when a job newly done has images saved before the new lines began.
    """
    start = touched.start_lines
    metadata = failed = True
    for job_id, (status, gen_line, failure) in touched.before.items():
        job: JobState | None = state.job(job_id)
        now_done = job is not None and job.status is Status.DONE
        if status is Status.DONE:
            if not now_done or job is None or job.gen_line != gen_line:
                metadata = False
        elif now_done and job is not None and job.gen_line <= start:
            metadata = False
        now_failure = job.failure[2] if job is not None and job.failure is not None else 0
        if failure and now_failure != failure:
            failed = False
        elif now_failure and now_failure != failure and now_failure <= start:
            failed = False
    return metadata, failed


def _read_views_state(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / VIEWS_NAME
    read = read_verified(path)
    if read is None:
        return None
    info = read[0]
    fields = ("metadata_rows", "metadata_bytes", "failed_rows", "failed_bytes")
    if (
        info.get("format") != VIEWS_FORMAT
        or not isinstance(info.get("source"), str)
        or not all(type(info.get(name)) is int and 0 <= info[name] < COUNT_LIMIT for name in fields)
    ):
        ignore(path, "implausible content")
        return None
    return info


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _append(path: Path, rows: Iterator[str]) -> int:
    """Append rows; on an error cut the file back to where it was (never a torn last row)."""
    count = 0
    with path.open("a", encoding="utf-8", newline="\n") as fh:
        size = fh.tell()
        try:
            for row in rows:
                fh.write(row)
                fh.write("\n")
                count += 1
            fh.flush()
        except BaseException:
            with contextlib.suppress(OSError):  # the file as it was; the next run rebuilds it
                fh.truncate(size)
            raise
    return count


def write_views(out_dir: Path, state: RunState, touched: TouchLog | None = None) -> tuple[int, int]:
    """Write ``metadata.jsonl`` and ``failed.jsonl`` from the journal; return their line counts.

    ``metadata.jsonl`` follows the Hugging Face ``imagefolder`` layout (``file_name`` relative to
    the folder), one line per image of every DONE job's current generation that is on disk.

    Both are rebuilt from the whole journal, unless ``touched`` (from
    :func:`wanbatch._journal.read_journal`) shows the views were last written at the journal
    state its replay started from and the new lines only add rows: then those rows are
    appended (the end of a resume that added a few jobs to a million-job folder takes
    milliseconds, not a pass over the whole journal).
    """
    path = out_dir / JOURNAL_NAME
    meta_path, failed_path = out_dir / METADATA_NAME, out_dir / FAILED_NAME
    info = _read_views_state(out_dir) if touched is not None else None
    (out_dir / VIEWS_NAME).unlink(missing_ok=True)  # until both files are whole again
    if not path.exists():
        return _write_atomic(meta_path, iter(())), _write_atomic(failed_path, iter(()))
    appendable = (False, False)
    if (
        info is not None
        and touched is not None
        and not touched.overflow
        and touched.start_source is not None
        and info.get("source") == touched.start_source
        and info.get("metadata_bytes") == _file_size(meta_path)
        and info.get("failed_bytes") == _file_size(failed_path)
    ):
        appendable = _appendable(state, touched)
    start = (touched.start_offset, touched.start_lines) if touched is not None else (0, 0)
    left_out = _Tally()  # images missing from disk: not listed
    columns = ColumnKinds.from_json(info.get("columns")) if info is not None else None
    if appendable[0] and info is not None and columns is not None and not _meta_edits(path, *start):
        rows = _metadata_rows(
            path, state, *start, listed=touched, columns=columns, left_out=left_out
        )
        meta_count = int(info["metadata_rows"]) + _append(meta_path, rows)
    else:  # also when a job's meta was edited, or the columns' types are not known
        columns = ColumnKinds()
        rows = _metadata_rows(
            path, state, columns=columns, edits=_meta_edits(path), left_out=left_out
        )
        meta_count = _write_atomic(meta_path, rows)
    if columns.rewrite:  # a column's type changed: every row again, in the types now known
        columns, left_out = ColumnKinds(columns.kinds), _Tally()
        rows = _metadata_rows(
            path, state, columns=columns, edits=_meta_edits(path), left_out=left_out
        )
        meta_count = _write_atomic(meta_path, rows)
    if appendable[1] and info is not None:
        failed_count = int(info["failed_rows"]) + _append(
            failed_path, _failed_rows(path, state, *start)
        )
    else:
        failed_count = _write_atomic(failed_path, _failed_rows(path, state))
    if state.source is not None and not left_out.count:  # else the next run looks again
        _write_views_state(out_dir, state.source, meta_count, failed_count, columns)
    return meta_count, failed_count


def _write_views_state(
    out_dir: Path, source: str, meta_rows: int, failed_rows: int, columns: ColumnKinds
) -> None:
    info = {
        "format": VIEWS_FORMAT,
        "source": source,
        "metadata_rows": meta_rows,
        "metadata_bytes": _file_size(out_dir / METADATA_NAME),
        "failed_rows": failed_rows,
        "failed_bytes": _file_size(out_dir / FAILED_NAME),
        "columns": columns.kinds,  # metadata.jsonl's meta columns' types
    }
    write_verified(out_dir / VIEWS_NAME, info)  # not written: the next run rebuilds the views
