"""Sweeps (``_sweep``), cell typing and row mapping (``_inputs``), input options (``_jobinput``)."""

from __future__ import annotations

import itertools
import json

import pytest

from wanbatch._inputs import (
    BOOL_FIELDS,
    INT_FIELDS,
    JSON_FIELDS,
    LIST_FIELDS,
    STR_FIELDS,
    RowMapper,
    header_problem,
    typed_value,
)
from wanbatch._jobinput import JobInput, format_of, parse_mapping
from wanbatch._jobs import FIELDS, check_id
from wanbatch._sweep import Sweep, cell_id, parse_sweep


def grid(*axes: str) -> Sweep:
    sweep = Sweep()
    for axis in axes:
        sweep = parse_sweep(axis, sweep)
    return sweep


def test_sweep_grid_in_given_order_last_axis_fastest() -> None:
    sweep = grid("seed=1-3", "size=1024*1024,1280*1280")
    assert sweep.size == 6
    cells = list(sweep.cells())
    assert cells[0] == (("seed", 1), ("size", "1024*1024"))
    assert cells[1] == (("seed", 1), ("size", "1280*1280"))
    assert len(set(cells)) == 6
    assert sweep.describe() == "6 cells (seed: 3 values × size: 2 values)"


def test_sweep_is_lazy() -> None:
    sweep = grid("seed=1-10000", "n=1-4", "max_images=1-5", "watermark=true,false")
    assert sweep.size == 400_000
    first = next(iter(sweep.cells()))  # nothing materialised: the first cell comes at once
    assert first == (("seed", 1), ("n", 1), ("max_images", 1), ("watermark", True))


def test_sweep_values_are_typed_and_checked() -> None:
    assert grid("prompt_extend=TRUE,no").axes == (("prompt_extend", (True, False)),)
    assert grid("seed=3,1").axes == (("seed", (3, 1)),)
    for bad, words in [
        ("seed=1,x", "not a whole number"),
        ("watermark=maybe", "not true or false"),
        ("images=a.png", "cannot sweep"),
        ("id=a,b", "cannot sweep"),
        ("seed", "FIELD=V1,V2"),
        ("seed=1,,2", "empty value"),
        ("seed=1,1", "given twice"),
        ("seed=5-1", "must go up"),
        ("seed=1-20000", "10,000 values"),
    ]:
        with pytest.raises(ValueError, match=words):
            grid(bad)
    with pytest.raises(ValueError, match="swept twice"):
        grid("seed=1", "seed=2")


def test_cell_ids_depend_on_the_job_and_the_cell_only() -> None:
    small = grid("seed=1-4", "size=1024*1024,1280*1280")
    large = grid("size=1024*1024,1280*1280,1K", "seed=1-6")  # more values, other option order
    small_ids = {cell_id("cat", cell) for cell in small.cells()}
    large_ids = {cell_id("cat", cell) for cell in large.cells()}
    assert small_ids < large_ids
    assert len(large_ids) == 18
    assert "cat.seed-3.size-1024x1024" in small_ids
    for job_id in large_ids:
        assert check_id(job_id) is None


def test_cell_ids_of_odd_values_and_long_ids_stay_valid() -> None:
    sweep = grid("prompt=a red fox,A red fox,a red fox!")
    ids = [cell_id("j1", cell) for cell in sweep.cells()]
    assert len(set(ids)) == 3
    long_id = "x" * 120
    for cell in itertools.islice(grid("seed=1-3", "negative_prompt=blur,noise").cells(), 6):
        made = cell_id(long_id, cell)
        assert len(made) <= 128 and check_id(made) is None
        assert made == cell_id(long_id, cell)


@pytest.mark.parametrize(
    ("field", "text", "value"),
    [
        ("seed", " 42 ", 42),
        ("seed", "4.5", "4.5"),  # left for the job check to name
        ("n", 2.0, 2),  # Parquet: an int column with gaps is a float column
        ("watermark", "TRUE", True),
        ("watermark", "No", False),
        ("watermark", "maybe", "maybe"),
        ("images", "a.png | b.png|", ["a.png", "b.png"]),
        ("images", '["a|b.png"]', ["a|b.png"]),
        ("parameters", '{"seed": 3}', {"seed": 3}),
        ("prompt", " 12 ", " 12 "),
    ],
)
def test_cells_are_typed_by_their_field(field: str, text: object, value: object) -> None:
    assert typed_value(field, text) == value


def test_every_job_field_has_a_cell_type() -> None:
    assert set(FIELDS) == STR_FIELDS | INT_FIELDS | BOOL_FIELDS | LIST_FIELDS | JSON_FIELDS


def test_row_mapper_maps_columns_and_puts_the_rest_in_meta() -> None:
    mapper = RowMapper(["caption", "seed", "prompt", "meta.split", "score"], {"prompt": "caption"})
    job = mapper.job(["a cat", "7", "old prompt", "train", ""])
    assert job == {
        "prompt": "a cat",
        "seed": 7,
        "meta": {"prompt": "old prompt", "split": "train", "score": None},
    }
    assert mapper.job(["a dog"]) == {
        "prompt": "a dog",
        "meta": {"prompt": None, "split": None, "score": None},
    }
    assert mapper.field_name("prompt") == "caption (prompt)"
    assert mapper.field_name("meta.split") == "meta.split"
    assert mapper.field_name("meta.score") == "score"
    assert mapper.field_name("seed") == "seed"
    refs = RowMapper(["refs", "text"], {"images": "refs", "prompt": "text"})
    assert refs.field_name("images[1]") == "refs[1] (images[1])"
    assert (
        json.dumps(refs.job(["a.png|b.png", "x"]))
        == '{"images": ["a.png", "b.png"], "prompt": "x"}'
    )


def test_header_problems_name_the_column() -> None:
    assert "appears twice" in (header_problem(["a", "b", "a"], {}) or "")
    problem = header_problem(["text", "seed"], {"prompt": "caption"}) or ""
    assert "no column 'caption'" in problem and "--map prompt=caption" in problem
    assert header_problem(["caption"], {"prompt": "caption"}) is None


def test_job_input_options() -> None:
    assert format_of("a/b.CSV") == "csv"
    assert format_of("x.tab") == "tsv"
    assert format_of("x.pq") == "parquet"
    assert format_of("x.jsonl") == format_of("jobs") == "jsonl"
    assert format_of("x.csv", "jsonl") == "jsonl"
    spec = JobInput().with_map("prompt=caption").with_sweep("seed=1,2")
    assert spec.mapping == {"prompt": "caption"} and spec.sweep.size == 2
    assert not spec.plain("x.jsonl")
    assert JobInput().plain("x.jsonl") and not JobInput().plain("x.csv")
    with pytest.raises(ValueError, match="did you mean 'prompt'"):
        parse_mapping("promt=caption")
    with pytest.raises(ValueError, match="mapped twice"):
        spec.with_map("prompt=text")
    with pytest.raises(ValueError, match="FIELD=COLUMN"):
        parse_mapping("prompt")
