"""How a job file is read: its format, the column mapping and the sweep (:class:`JobInput`).

``wanbatch run JOBS`` reads JSONL, CSV, TSV, Parquet or plain text (one prompt per line), told
apart by the file's extension unless ``--format`` says; ``--map FIELD=COLUMN`` names the column
a job field is read from, ``--sweep FIELD=V1,V2,...`` runs every job over a grid of values.
This module holds those choices and parses the options; reading is :mod:`wanbatch._jobsource`.

Pure: stdlib only, no I/O.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Literal

from ._inputs import BOOL_FIELDS, INT_FIELDS, JSON_FIELDS, LIST_FIELDS, STR_FIELDS
from ._sweep import Sweep, parse_sweep

__all__ = ["FORMATS", "Format", "JobInput", "format_of", "parse_mapping"]

Format = Literal["jsonl", "csv", "tsv", "parquet", "txt"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "tsv", "parquet", "txt")
_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "txt",
}
_MAPPABLE = sorted(STR_FIELDS | INT_FIELDS | BOOL_FIELDS | LIST_FIELDS | JSON_FIELDS)


def format_of(path: str | os.PathLike[str], given: Format | None = None) -> Format:
    """The format of the job file: ``given``, else by extension (``.csv``, ``.tsv``/``.tab``,
    ``.parquet``/``.pq``, ``.txt``; any other name, ``.jsonl`` included, is JSONL)."""
    if given is not None:
        return given
    ext = os.path.splitext(os.fspath(path))[1].lower()
    return _EXTENSIONS.get(ext, "jsonl")


@dataclass(frozen=True)
class JobInput:
    """How to read the job file (all optional: the default reads JSONL by extension as-is).

    ``format``: one of :data:`FORMATS`, or None to tell by extension. ``mapping``: job field ->
    column name (CSV, TSV, Parquet). ``sweep``: the grid every job runs over.
    """

    format: Format | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    sweep: Sweep = field(default_factory=Sweep)

    def __hash__(self) -> int:
        return hash((self.format, tuple(sorted(self.mapping.items())), self.sweep))

    def plain(self, path: str | os.PathLike[str]) -> bool:
        """True when the file is read line by line as written: JSONL, no sweep. Only then is a
        resume's done-prefix cache used (other inputs pass done rows over one by one)."""
        return format_of(path, self.format) == "jsonl" and not self.sweep and not self.mapping

    def with_map(self, text: str) -> JobInput:
        """A copy with ``--map FIELD=COLUMN`` added (ValueError naming what is wrong)."""
        job_field, column = parse_mapping(text)
        if job_field in self.mapping:
            raise ValueError(f"{job_field} is mapped twice")
        return JobInput(self.format, {**self.mapping, job_field: column}, self.sweep)

    def with_sweep(self, text: str) -> JobInput:
        """A copy with ``--sweep FIELD=V1,V2,...`` added (ValueError naming what is wrong)."""
        return JobInput(self.format, self.mapping, parse_sweep(text, self.sweep))


def parse_mapping(text: str) -> tuple[str, str]:
    """``FIELD=COLUMN`` -> ``(field, column)``; ValueError naming what is wrong."""
    job_field, eq, column = text.partition("=")
    job_field = job_field.strip()
    if not eq or not job_field or not column.strip():
        raise ValueError(f"expected FIELD=COLUMN (e.g. prompt=caption), got {text!r}")
    if job_field not in _MAPPABLE:
        close = difflib.get_close_matches(job_field, _MAPPABLE, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{job_field!r} is not a job field{hint}")
    return job_field, column.strip()
