"""wanbatch._columns: one JSON type per metadata.jsonl column, so the file loads as a dataset."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wanbatch._columns import TEXT, ColumnKinds, coerce, kind_of, needs_rewrite, unify


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1, 2], "int"),
        ([1, 2.5], "float"),
        ([None, "a"], "str"),
        ([True, 1], TEXT),
        (["a", 1], TEXT),
        ([["a"], []], ["list", "str"]),
        ([["a"], [1]], TEXT),
        ([["a", 1]], TEXT),
        ([{"a": 1}, {"b": "x"}], {"a": "int", "b": "str"}),
        ([{"a": 1}, {"a": "x"}], TEXT),
        ([{"a": [1]}, {"a": [2.5]}], {"a": ["list", "float"]}),
        ([1 << 70], "float"),
        ([10**400], TEXT),
    ],
)
def test_the_kind_of_a_column(values: list[Any], kind: Any) -> None:
    got: Any = "null"
    for value in values:
        got = unify(got, kind_of(value))
    assert got == kind


def test_values_are_written_in_their_columns_kind() -> None:
    columns = ColumnKinds()
    assert columns.value("n", 1) == 1 and not columns.rewrite
    assert columns.value("n", 2.5) == 2.5 and columns.rewrite  # the 1 written must read 1.0
    again = ColumnKinds(columns.kinds)
    assert again.value("n", 1) == 1.0 and isinstance(again.value("n", 1), float)
    assert again.value("n", "x") == "x" and again.rewrite
    text = ColumnKinds(again.kinds)
    assert [text.value("n", v) for v in (1, 2.5, "x", None)] == ["1", "2.5", "x", None]
    assert coerce({"a": [1, {"b": 2}]}, TEXT) == json.dumps({"a": [1, {"b": 2}]})


def test_rewrites_only_when_written_rows_would_change() -> None:
    assert not needs_rewrite("null", "str")
    assert not needs_rewrite({"a": "int"}, {"a": "int", "b": "str"})
    assert needs_rewrite({"a": "int"}, {"a": "float"})
    assert needs_rewrite(["list", "int"], TEXT)


def test_stored_kinds_are_checked() -> None:
    assert ColumnKinds.from_json({"a": ["list", {"b": "int"}]}) is not None
    for bad in (None, [], {"a": "number"}, {"a": ["set", "int"]}, {"a": 3}):
        assert ColumnKinds.from_json(bad) is None
