"""A table row as a job: column names onto job fields, cell text typed by the field it fills.

Used for CSV, TSV, Parquet and plain-text job files (see ``docs/job-format.md``, "Tables"):

- :class:`RowMapper` turns one row (its cells, in header order) into the JSON text of a job
  line, the same text a JSONL job file would hold, so every later check (types, rules, ids,
  done lines) is the JSONL one. Columns named like a job field (or mapped onto one with
  ``--map FIELD=COLUMN``) fill that field; every other column goes to ``meta``.
- :func:`typed_value` types one cell's text for its field: ``seed`` ``"42"`` -> ``42``,
  ``watermark`` ``"TRUE"`` -> ``true``, ``images`` ``"a.png|b.png"`` -> a list. Text that does
  not read as the field's type is left as it is, so the job check names the field and value.

Pure: stdlib only, no I/O.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "BOOL_FIELDS",
    "INT_FIELDS",
    "JSON_FIELDS",
    "LIST_FIELDS",
    "LIST_SEPARATOR",
    "STR_FIELDS",
    "RowMapper",
    "data_uri",
    "header_problem",
    "is_binary",
    "typed_value",
]

#: How a list cell (``images``) separates its items: ``a.png|b.png``. A cell starting with
#: ``[`` is read as a JSON array instead.
LIST_SEPARATOR = "|"

STR_FIELDS = frozenset({"id", "prompt", "negative_prompt", "size", "model"})
INT_FIELDS = frozenset({"n", "seed", "max_images"})
BOOL_FIELDS = frozenset(
    {"prompt_extend", "watermark", "enable_interleave", "enable_sequential", "thinking_mode"}
)
LIST_FIELDS = frozenset({"images"})
#: Fields whose cell holds JSON text (an object or an array).
JSON_FIELDS = frozenset({"parameters", "messages", "meta", "color_palette", "bbox_list"})
_JOB_FIELDS = STR_FIELDS | INT_FIELDS | BOOL_FIELDS | LIST_FIELDS | JSON_FIELDS

_INT = re.compile(r"\s*[+-]?\d{1,30}\s*")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


def typed_value(field: str, value: Any) -> Any:
    """``value`` (a cell: text, or a Parquet value) typed for job field ``field``.

    Text is read by the field's type (whole numbers, ``true``/``false``/``yes``/``no``/``1``/
    ``0`` in any case, ``|``-separated or JSON lists, JSON objects); a whole float (Parquet
    stores an integer column with gaps as floats) becomes an int. What does not read as the
    type is returned unchanged, for the job check to name.
    """
    if isinstance(value, str):
        if field in STR_FIELDS:
            return value
        if field in INT_FIELDS:
            return int(value) if _INT.fullmatch(value) else value
        if field in BOOL_FIELDS:
            low = value.strip().lower()
            return True if low in _TRUE else False if low in _FALSE else value
        if field in LIST_FIELDS:
            text = value.strip()
            if text.startswith("["):
                return _json_or(text, value)
            return [item.strip() for item in text.split(LIST_SEPARATOR) if item.strip()]
        if field in JSON_FIELDS:
            text = value.strip()
            return _json_or(text, value) if text[:1] in ("{", "[") else value
        return value
    if isinstance(value, float) and field in INT_FIELDS and value.is_integer():
        return int(value)
    if field in LIST_FIELDS:  # Parquet: image bytes, or a list of them
        if is_binary(value):
            return [data_uri(value)]
        if isinstance(value, list):
            return [data_uri(item) if is_binary(item) else item for item in value]
    return value


def is_binary(value: Any) -> bool:
    """An image as a Parquet file holds it: bytes, or a Hugging Face ``Image`` value (a struct
    ``{"bytes": ..., "path": ...}`` with bytes)."""
    return isinstance(value, bytes) or (
        isinstance(value, dict) and isinstance(value.get("bytes"), bytes)
    )


_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8", "jpeg"), (b"BM", "bmp"))


def data_uri(value: Any) -> str:
    """Image bytes (see :func:`is_binary`) as a ``data:`` URI, typed by their first bytes
    (PNG, JPEG, BMP, WEBP); other bytes get a type the image check refuses by name."""
    data: bytes = value if isinstance(value, bytes) else value["bytes"]
    kind = next((k for magic, k in _MAGIC if data.startswith(magic)), None)
    if kind is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = "webp"
    return f"data:image/{kind or 'unknown'};base64,{base64.b64encode(data).decode('ascii')}"


def _json_or(text: str, value: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return value


def header_problem(columns: Sequence[str], mapping: dict[str, str]) -> str | None:
    """Why a table with these column names cannot be read with this mapping, or None."""
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            return f"column {name!r} appears twice in the header"
        seen.add(name)
    for field, column in mapping.items():
        if column not in seen:
            shown = ", ".join(repr(c) for c in list(columns)[:20])
            return f"no column {column!r} (--map {field}={column}); the columns are {shown}"
    return None


class RowMapper:
    """Maps the cells of a table's rows (in header order) onto job fields and ``meta``.

    ``columns``: the header; ``mapping``: job field -> column name (``--map``). A column named
    like a job field fills it unless another column is mapped onto that field; a column named
    ``meta.KEY`` fills ``meta.KEY``; every other column fills ``meta.COLUMN``. Empty cells leave
    a field out (and are ``null`` in ``meta``).
    """

    __slots__ = ("_fields", "_meta", "_width", "columns", "spelling")

    def __init__(self, columns: Sequence[str], mapping: dict[str, str]) -> None:
        self.columns = list(columns)
        by_column = {column: field for field, column in mapping.items()}
        mapped = set(mapping)
        fields: list[tuple[int, str, bool]] = []
        meta: list[tuple[int, str]] = []
        #: job field (or ``meta.KEY``) -> how the file spells it, where they differ
        self.spelling: dict[str, str] = {}
        for i, name in enumerate(self.columns):
            field = by_column.get(name)
            if field is None and name in _JOB_FIELDS and name not in mapped:
                field = name
            if field is not None:
                fields.append((i, field, field not in STR_FIELDS))
                if field != name:
                    self.spelling[field] = f"{name} ({field})"
            elif name:
                key = name[5:] if name.startswith("meta.") and len(name) > 5 else name
                meta.append((i, key))
                self.spelling[f"meta.{key}"] = name
        self._fields = fields
        self._meta = meta
        self._width = len(self.columns)

    def job(self, cells: Sequence[Any], text_cells: bool = True) -> dict[str, Any]:
        """The job object of one row. ``text_cells``: cells are text (CSV, TSV), where an empty
        cell means "not given"; else values (Parquet), where ``None`` does."""
        if len(cells) < self._width:  # a short row: the missing cells are empty
            cells = [*cells, *([None] * (self._width - len(cells)))]
        out: dict[str, Any] = {}
        # Runs once a row of a million-row file: plain loops, text fields not typed.
        if text_cells:
            for i, field, typed in self._fields:
                value = cells[i]
                if value:
                    out[field] = typed_value(field, value) if typed else value
        else:
            for i, field, typed in self._fields:
                value = cells[i]
                if value is not None:
                    out[field] = typed_value(field, value) if typed else value
        if self._meta:
            meta = out.get("meta")
            if not isinstance(meta, dict):
                meta = {} if meta is None else {"meta": meta}
            if text_cells:
                for i, key in self._meta:
                    value = cells[i]
                    meta[key] = value if value else None
            else:  # image bytes stay out of meta (metadata.jsonl holds text and numbers)
                for i, key in self._meta:
                    value = cells[i]
                    if not is_binary(value):
                        meta[key] = value
            out["meta"] = meta
        return out

    def field_name(self, field: str) -> str:
        """How the file names a job field: the column, with the field in parentheses where
        they differ (``images[1]`` -> ``refs[1] (images[1])`` with ``--map images=refs``;
        ``meta.score`` -> ``score``)."""
        name = self.spelling.get(field)
        if name is not None:
            return name
        for cut in ("[", "."):
            head, sep, rest = field.partition(cut)
            if sep and head != "meta":
                column = self.spelling.get(head)
                if column is not None:
                    return f"{column.partition(' (')[0]}{sep}{rest} ({field})"
        return field
