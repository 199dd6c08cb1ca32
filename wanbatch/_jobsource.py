"""The job file as a stream of job texts, whatever its format, swept or not.

:func:`open_jobs` opens the job file as its :class:`~wanbatch._jobinput.JobInput` says and
:meth:`JobSource.items` yields ``(row, item)`` where ``item`` is the JSON text of one job (what
a JSONL line holds), a :class:`~wanbatch._errors.JobFileError` for a row that cannot be read,
or the done index of a job a resume passes over unread (done and unchanged, see
:class:`~wanbatch._donejobs.DoneLines`): the same items :func:`wanbatch._lines.read_lines`
yields for a JSONL file, which is what a plain JSONL file (no sweep) is read with.

A table row (CSV, TSV, Parquet, text) becomes the JSON text of its job
(:class:`~wanbatch._inputs.RowMapper`); with a sweep every job becomes one text per grid cell,
each with its cell's id (:mod:`wanbatch._sweep`), all under the job's row number. A resume
passes over done rows by the hash of that text, as it does JSONL lines; the done-prefix cache
(:mod:`wanbatch._prefixscan`) is for plain JSONL only.

Between the jobs stage and its I/O helpers: imports :mod:`wanbatch._lines`,
:mod:`wanbatch._tables`, the pure core and the stdlib.
"""

from __future__ import annotations

import json
import json.encoder
import os
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from ._donejobs import DoneLines
from ._errors import JobFileError
from ._inputs import RowMapper, header_problem
from ._jobinput import JobInput, format_of
from ._jobs import JobWarning, derive_job_id, parse_line_issues
from ._lines import open_job_file, read_lines
from ._sweep import cell_id
from ._tables import Table, open_table

__all__ = ["JobSource", "open_jobs"]

Item = tuple[int, "str | JobFileError | int"]


def _make_dumps() -> Callable[[Any], str]:
    """Compact JSON text of a job object (non-JSON values, e.g. Parquet dates, as text).

    One C encoder made once: ``json.dumps`` with options makes one a call, a fifth of the cost
    of a table row's reading."""
    standard = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    try:  # the arguments JSONEncoder.iterencode passes it (Python 3.10 to 3.13)
        encode = make(None, str, json.encoder.encode_basestring, None, ":", ",", False, False, True)  # type: ignore[misc]

        def dumps(obj: Any) -> str:
            return "".join(encode(obj, 0))

        probe = {"a": [1.5, True, None, "\u00e9\n"], "b": {}}
        if dumps(probe) == standard(probe):
            return dumps
    except Exception:  # no C accelerator, or another signature: the standard path
        pass
    return standard


_dumps = _make_dumps()


class JobSource:
    """An open job file: its job texts (:meth:`items`) and how it names fields
    (:meth:`relabel`). Close it (or use it in a ``with``)."""

    def __init__(
        self,
        path: str,
        spec: JobInput,
        *,
        lines: BinaryIO | None = None,
        table: Table | None = None,
    ) -> None:
        self.path = path
        self.spec = spec
        self._lines = lines
        self._table = table
        self._mapper = RowMapper(table.columns, spec.mapping) if table is not None else None
        self._swept = frozenset(f for f, _ in spec.sweep.axes)

    def close(self) -> None:
        if self._lines is not None:
            self._lines.close()
        if self._table is not None:
            self._table.close()

    def __enter__(self) -> JobSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- naming
    def field_name(self, field: str) -> str:
        """How the file (or the command line) names a job field, for messages."""
        name = self._mapper.field_name(field) if self._mapper is not None else field
        if self._swept and field.partition(".")[0].partition("[")[0] in self._swept:
            name += " (--sweep)"
        return name

    def relabel(self, problem: Any) -> Any:
        """A :class:`JobFileError` or :class:`JobWarning` with its field as the file names it."""
        name = self.field_name(problem.field)
        if name == problem.field:
            return problem
        if isinstance(problem, JobWarning):
            return JobWarning(problem.path, problem.line, name, problem.message)
        return JobFileError(problem.path, problem.line, name, problem.message)

    # ----------------------------------------------------------------- reading
    def items(
        self,
        seen: list[Any] | None = None,
        start: tuple[int, int] = (1, 0),
        done: DoneLines | None = None,
    ) -> Iterator[Item]:
        """Yield ``(row, text | error | done index)`` as :func:`~wanbatch._lines.read_lines`
        does (``seen`` and ``start`` as there; a table's ``seen[1]`` stays 0 and its ``start``
        is a row number)."""
        seen = seen if seen is not None else [0, 0, b""]
        while len(seen) < 3:
            seen.append(b"" if len(seen) == 2 else 0)
        if self._lines is not None:
            if not self.spec.sweep:
                yield from read_lines(self._lines, self.path, seen, start=start, done=done)
                return
            for row, text in read_lines(self._lines, self.path, seen, start=start):
                if isinstance(text, str):
                    yield from self._cells(row, text, None, seen, done)
                else:
                    yield row, text
            return
        assert self._table is not None and self._mapper is not None
        match = done.match if done is not None and len(done) else None
        first_row = start[0]
        mapper, text_cells = self._mapper, self._table.text_cells
        sweep = bool(self.spec.sweep)
        for row, cells in self._table.rows():
            seen[0] = row
            if row < first_row:
                continue
            if isinstance(cells, JobFileError):
                yield row, cells
                continue
            obj = mapper.job(cells, text_cells)
            text = _dumps(obj)
            if sweep:
                yield from self._cells(row, text, obj, seen, done)
                continue
            if match is not None:
                body = text.encode()
                index = match(body)
                if index >= 0:
                    seen[2] = body
                    yield row, index
                    continue
            yield row, text

    def _cells(
        self,
        row: int,
        text: str,
        obj: dict[str, Any] | None,
        seen: list[Any],
        done: DoneLines | None,
    ) -> Iterator[Item]:
        """The texts of one job's grid cells (the job's own text if it is invalid: its errors
        are reported once, on its row)."""
        job = parse_line_issues(text)
        if isinstance(job, list):
            yield row, text
            return
        base_id = job.id if job.id is not None else derive_job_id(job)
        if obj is None:
            obj = json.loads(text)
        match = done.match if done is not None and len(done) else None
        for cell in self.spec.sweep.cells():
            cell_obj = {"id": cell_id(base_id, cell)}
            cell_obj.update((k, v) for k, v in obj.items() if k != "id")
            cell_obj.update(cell)
            cell_text = _dumps(cell_obj)
            if match is not None:
                body = cell_text.encode()
                index = match(body)
                if index >= 0:
                    seen[2] = body
                    yield row, index
                    continue
            yield row, cell_text


def open_jobs(
    path: str | os.PathLike[str], spec: JobInput | None = None
) -> JobSource | JobFileError:
    """Open the job file as ``spec`` says (JSONL by extension when None), or the error
    explaining why it cannot be read that way."""
    spath = os.fspath(path)
    spec = spec or JobInput()
    fmt = format_of(spath, spec.format)
    if fmt == "jsonl" or fmt == "txt":
        if spec.mapping:
            return JobFileError(
                spath, 0, "file", "--map is for CSV, TSV and Parquet job files (they have columns)"
            )
    if fmt == "jsonl":
        opened = open_job_file(spath)
        if isinstance(opened, JobFileError):
            return opened
        return JobSource(spath, spec, lines=opened)
    table = open_table(spath, fmt)
    if isinstance(table, JobFileError):
        return table
    problem = header_problem(table.columns, spec.mapping)
    if problem is not None:
        table.close()
        return JobFileError(spath, 1 if table.text_cells else 0, "header", problem)
    return JobSource(spath, spec, table=table)
