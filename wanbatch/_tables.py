"""Reading a CSV, TSV, Parquet or plain-text job file as a stream of rows, in flat memory.

:func:`open_table` opens the file and reads its header; :meth:`Table.rows` yields
``(row number, cells)`` one row at a time (Parquet: one record batch of rows at a time), or a
:class:`~wanbatch._errors.JobFileError` for a row that cannot be read. Row numbers are those a
spreadsheet shows: the header is row 1 of a CSV or TSV file, its first data row row 2;
Parquet rows count from 1; a text file's rows are its lines. Rows whose cells are all empty
(blank lines) are passed over.

- CSV and TSV: UTF-8 (a BOM is dropped), RFC 4180 quoting (``"a, b"``, ``""`` for a quote,
  line breaks inside quotes), any line ends; TSV is the same with tabs.
- Parquet: needs ``pyarrow`` (``pip install 'wanbatch[parquet]'``); values keep their types.
- Text: one prompt per line (UTF-8, BOM dropped, LF or CRLF); the one column is ``prompt``.

I/O helper of the jobs stage (used by :mod:`wanbatch._jobsource`): stdlib (and pyarrow when a
Parquet file is read) and the pure core only.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any, BinaryIO

from ._errors import JobFileError
from ._lines import job_file_problem

__all__ = ["MAX_CELL_CHARS", "Table", "open_table"]

#: The longest cell read (four 10 MB reference images inline fit in it), as for a JSONL line.
MAX_CELL_CHARS = 64 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"
_BATCH_ROWS = 1024

Rows = Iterator[tuple[int, "list[Any] | JobFileError"]]


class Table:
    """An open table: its ``columns`` and a stream of rows (see :meth:`rows`)."""

    def __init__(
        self, path: str, columns: list[str], rows: Rows, closer: Any, *, text_cells: bool
    ) -> None:
        self.path = path
        self.columns = columns
        self._rows = rows
        self._closer = closer
        #: True: cells are text (CSV, TSV, text), an empty cell is "not given"; False: values.
        self.text_cells = text_cells

    def rows(self) -> Rows:
        """``(row number, cells)`` for each non-blank row; an unreadable row as an error (the
        reading stops after an error the format cannot recover from)."""
        return self._rows

    def close(self) -> None:
        self._closer.close()

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_table(path: str, fmt: str) -> Table | JobFileError:
    """Open a ``csv``, ``tsv``, ``parquet`` or ``txt`` job file and read its header, or the
    error explaining why it cannot be."""
    problem = job_file_problem(path)
    if problem is not None:
        return problem
    try:
        if fmt == "parquet":
            return _open_parquet(path)
        if fmt == "txt":
            fh = open(path, "rb")  # closed by Table.close
            return Table(path, ["prompt"], _text_rows(fh, path), fh, text_cells=True)
        return _open_delimited(path, "\t" if fmt == "tsv" else ",")
    except OSError as exc:
        return JobFileError(path, 0, "file", f"cannot read: {exc.strerror or exc}")


# --------------------------------------------------------------------------- CSV and TSV


def _open_delimited(path: str, delimiter: str) -> Table | JobFileError:
    if csv.field_size_limit() < MAX_CELL_CHARS:
        csv.field_size_limit(MAX_CELL_CHARS)
    fh = open(path, "rb")  # closed by Table.close or below
    bad: list[UnicodeDecodeError] = []
    # strict: a quote never closed, or text after a closing quote, is an error, never a silent
    # merge of the rows that follow into one cell.
    reader = csv.reader(_decoded(fh, bad), delimiter=delimiter, strict=True)
    what = "TSV" if delimiter == "\t" else "CSV"
    try:
        header = next(reader, None)
    except csv.Error as exc:
        fh.close()
        return JobFileError(path, 1, "header", f"cannot read the {what} header: {_plain(exc)}")
    if bad:
        fh.close()
        return _not_utf8(path, 1, bad[0])
    if header is None or not any(name.strip() for name in header):
        fh.close()
        return JobFileError(
            path,
            1,
            "header",
            f"no header row: the first row of a {what} job file names its columns",
        )
    columns = [name.strip() for name in header]
    rows = _delimited_rows(reader, bad, path, what, len(columns))
    return Table(path, columns, rows, fh, text_cells=True)


def _decoded(fh: BinaryIO, bad: list[UnicodeDecodeError]) -> Iterator[str]:
    """The file's lines as text (line breaks kept, for quoted cells), a BOM dropped; a line that
    is not UTF-8 leaves its error in ``bad`` (so the row that holds it is named and skipped)."""
    first = True
    for raw in fh:
        if first:
            first = False
            if raw.startswith(_BOM):
                raw = raw[3:]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.append(exc)
            yield raw.decode("utf-8", "replace")


def _delimited_rows(
    reader: Any, bad: list[UnicodeDecodeError], path: str, what: str, width: int
) -> Rows:
    row = 1
    while True:
        try:
            cells = next(reader, None)
        except csv.Error as exc:  # the reader goes on at the next line
            row += 1
            yield row, JobFileError(path, row, "row", f"cannot read the {what}: {_plain(exc)}")
            bad.clear()
            continue
        if bad:  # the row just read holds bytes that are not UTF-8
            row += 1
            yield row, _not_utf8(path, row, bad[0])
            bad.clear()
            continue
        if cells is None:
            return
        row += 1
        if not cells or not any(cells):
            continue
        if len(cells) > width and any(cells[width:]):
            yield (
                row,
                JobFileError(
                    path,
                    row,
                    "row",
                    f"has {len(cells)} cells but the header names {width} columns "
                    f"(a {'tab' if what == 'TSV' else 'comma'} inside a cell needs quotes)",
                ),
            )
            continue
        yield row, cells


def _plain(exc: csv.Error) -> str:
    """The csv module's message, in the user's terms where it speaks of the programmer's."""
    text = str(exc)
    if "new-line character seen in unquoted field" in text:
        return "a carriage return (CR) outside quotes: save the file with LF or CRLF line ends"
    if text == "unexpected end of data":
        return "a quoted cell is never closed (its quote runs to the end of the file)"
    return text


def _not_utf8(path: str, row: int, exc: UnicodeDecodeError) -> JobFileError:
    return JobFileError(
        path,
        row,
        "file",
        f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at byte {exc.start + 1} of a "
        "line of this row); save the file as UTF-8",
    )


# --------------------------------------------------------------------------- text


def _text_rows(fh: BinaryIO, path: str) -> Rows:
    lineno = 0
    while raw := fh.readline(MAX_CELL_CHARS + 3):
        lineno += 1
        if lineno == 1 and raw.startswith(_BOM):
            raw = raw[3:]
        if len(raw) > MAX_CELL_CHARS + 2:
            yield (
                lineno,
                JobFileError(
                    path, lineno, "line", f"is over {MAX_CELL_CHARS // 1_048_576} MiB long"
                ),
            )
            fh.readline()  # the rest of it (one more read of at most the same size)
            continue
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield lineno, JobFileError.not_utf8(path, lineno, raw, exc)
            continue
        if "\r" in text:  # old Mac line ends: several prompts would make one
            yield (
                lineno,
                JobFileError(
                    path,
                    lineno,
                    "line",
                    "holds a carriage return (CR): save the file with LF or CRLF line ends",
                ),
            )
            continue
        if text and not text.isspace():
            yield lineno, [text]


# --------------------------------------------------------------------------- Parquet


def _open_parquet(path: str) -> Table | JobFileError:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return JobFileError(
            path,
            0,
            "file",
            "reading a Parquet job file needs pyarrow: pip install 'wanbatch[parquet]'",
        )
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a bad file
        if isinstance(exc, OSError) and exc.strerror:
            return JobFileError(path, 0, "file", f"cannot read: {exc.strerror}")
        return JobFileError(path, 0, "file", f"not a readable Parquet file: {exc}")
    columns = [str(name).strip() for name in pf.schema_arrow.names]
    return Table(path, columns, _parquet_rows(pf, path), pf, text_cells=False)


def _parquet_rows(pf: Any, path: str) -> Rows:
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=_BATCH_ROWS):
            columns = [column.to_pylist() for column in batch.columns]
            for cells in zip(*columns, strict=True):
                row += 1
                if all(cell is None for cell in cells):
                    continue
                yield row, list(cells)
    except Exception as exc:  # a damaged page: pyarrow's error, as a row error
        yield row + 1, JobFileError(path, row + 1, "row", f"cannot read the Parquet file: {exc}")
