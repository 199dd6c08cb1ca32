"""Column types of ``metadata.jsonl``: one JSON type per column, so the file loads as a dataset.

``datasets.load_dataset("imagefolder", ...)`` reads ``metadata.jsonl`` with pyarrow, which wants
one type per column: a ``meta`` key holding a number on one job and a string on another makes it
fail ("changed from number to string"). It also fixes a column's type from the first 10 MB of
rows, so an integer column whose later rows hold fractions loses them.

So each meta column has a *kind*, the union of the kinds of its values (:func:`unify`): a
number mixed with a fraction is a fraction (ints written as floats), and anything that cannot be
one type (a string and a number, a list and a string, different types under one key of an
object) is ``"text"``: every value of the column is written as its JSON text, a string.

Kinds are plain JSON values, so they can be stored: ``"null"``, ``"bool"``, ``"int"``,
``"float"``, ``"str"``, ``"text"``, ``["list", <item kind>]`` and ``{<key>: <kind>}``.

Pure: stdlib only.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["TEXT", "ColumnKinds", "Kind", "coerce", "describe", "kind_of", "needs_rewrite", "unify"]

Kind = str | list[Any] | dict[str, Any]
#: The kind of a column written as JSON text (its values could not share one type).
TEXT = "text"
#: Nesting past this depth, or objects with more keys than this, are written as text.
MAX_DEPTH = 16
MAX_KEYS = 256
#: Columns whose kind is tracked; a column beyond these is always written as text.
MAX_COLUMNS = 1024
_INT64 = 1 << 63


def kind_of(value: Any, depth: int = 0) -> Kind:
    """The kind of one JSON value."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "bool"
    if isinstance(value, int):
        if -_INT64 <= value < _INT64:
            return "int"
        return "float" if abs(value) < 1 << 1000 else TEXT  # pyarrow reads big ints as floats
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if depth >= MAX_DEPTH:
        return TEXT
    if isinstance(value, list):
        item: Kind = "null"
        for entry in value:
            item = unify(item, kind_of(entry, depth + 1))
            if item == TEXT:
                return TEXT
        return ["list", item]
    if isinstance(value, dict):
        if len(value) > MAX_KEYS:
            return TEXT
        fields: dict[str, Any] = {}
        for key, entry in value.items():
            kind = kind_of(entry, depth + 1)
            if kind == TEXT:
                return TEXT
            fields[key] = kind
        return fields
    return TEXT


def unify(a: Kind, b: Kind) -> Kind:
    """The kind of a column holding values of kinds ``a`` and ``b``."""
    if a == b:
        return a
    if a == "null":
        return b
    if b == "null":
        return a
    if isinstance(a, str) and isinstance(b, str):
        return "float" if {a, b} == {"int", "float"} else TEXT
    if isinstance(a, list) and isinstance(b, list):
        item = unify(a[1], b[1])
        return TEXT if item == TEXT else ["list", item]
    if isinstance(a, dict) and isinstance(b, dict):
        merged = dict(a)
        for key, kind in b.items():
            both = unify(merged.get(key, "null"), kind)
            if both == TEXT:
                return TEXT
            merged[key] = both
        return TEXT if len(merged) > MAX_KEYS else merged
    return TEXT


def needs_rewrite(old: Kind, new: Kind) -> bool:
    """True when a value written under kind ``old`` is written differently under ``new``."""
    if old == new or old == "null":
        return False
    if new == TEXT:
        return True
    if old == "int" and new == "float":
        return True
    if isinstance(old, list) and isinstance(new, list):
        return needs_rewrite(old[1], new[1])
    if isinstance(old, dict) and isinstance(new, dict):
        return any(needs_rewrite(kind, new.get(key, TEXT)) for key, kind in old.items())
    return False


def _plain(kind: Kind) -> bool:
    """True when values of this kind are written as they are."""
    if isinstance(kind, str):
        return kind not in ("float", TEXT)
    if isinstance(kind, list):
        return _plain(kind[1])
    return all(_plain(k) for k in kind.values())


def coerce(value: Any, kind: Kind) -> Any:
    """``value`` as a column of ``kind`` holds it (a number as a float, anything as text)."""
    if value is None:
        return None
    if kind == TEXT:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if kind == "float":
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(kind, list) and isinstance(value, list):
        return [coerce(entry, kind[1]) for entry in value]
    if isinstance(kind, dict) and isinstance(value, dict):
        return {key: coerce(entry, kind.get(key, TEXT)) for key, entry in value.items()}
    return value


def describe(kind: Kind) -> str:
    """``kind`` in words: "a number", "a string", "a list", ..."""
    if isinstance(kind, list):
        return "a list"
    if isinstance(kind, dict):
        return "an object"
    return {
        "bool": "true/false",
        "int": "a number",
        "float": "a number",
        "str": "a string",
        "null": "null",
    }.get(kind, "mixed values")


class ColumnKinds:
    """The kinds of the meta columns of one ``metadata.jsonl``, as its rows are written.

    :meth:`value` gives what a row holds for a column (coerced to the column's kind so far) and
    sets :attr:`rewrite` when a new value changes how the rows written before must read (the
    caller then writes every row again, starting from the kinds now known).
    """

    __slots__ = ("kinds", "rewrite")

    def __init__(self, kinds: dict[str, Kind] | None = None) -> None:
        self.kinds: dict[str, Kind] = dict(kinds) if kinds else {}
        self.rewrite = False

    def value(self, column: str, value: Any) -> Any:
        """Note ``value`` in ``column``; return it as the column writes it."""
        old = self.kinds.get(column)
        if old is None and len(self.kinds) >= MAX_COLUMNS:
            return coerce(value, TEXT)
        kind = kind_of(value)
        new = kind if old is None else unify(old, kind)
        if new != old:
            if old is not None and needs_rewrite(old, new):
                self.rewrite = True
            self.kinds[column] = new
        return value if _plain(new) else coerce(value, new)

    @staticmethod
    def from_json(data: Any) -> ColumnKinds | None:
        """Kinds stored by :attr:`kinds` (JSON), or None when ``data`` is not such a mapping."""
        if not isinstance(data, dict) or not all(_is_kind(k) for k in data.values()):
            return None
        return ColumnKinds(data)


def _is_kind(kind: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return False
    if isinstance(kind, str):
        return kind in ("null", "bool", "int", "float", "str", TEXT)
    if isinstance(kind, list):
        return len(kind) == 2 and kind[0] == "list" and _is_kind(kind[1], depth + 1)
    if isinstance(kind, dict):
        return all(isinstance(k, str) and _is_kind(v, depth + 1) for k, v in kind.items())
    return False
