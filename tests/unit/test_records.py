"""The record builders: every record a run journals is made by one of them, in the schema the
fold reads (:func:`wanbatch._recordcheck.well_formed`), with ``event`` and ``id`` first."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import wanbatch
from wanbatch._recordcheck import well_formed
from wanbatch._records import (
    EVENTS,
    Record,
    SavedInfo,
    abandoned_record,
    attempt_record,
    cut_answer_record,
    end_record,
    expired_record,
    failed_record,
    generated_record,
    meta_record,
    run_record,
    saved_record,
    submitted_record,
)
from wanbatch._state import replay

INFO = SavedInfo(
    prompt="a cat", seed=7, size="1280*1280", request_id="r1", meta={"k": "v"}, model="wan2.7-image"
)
FP = "ab" * 32

BUILT = {
    "run": run_record(
        jobs_file="/j.jsonl", version="1", jobs=2, endpoint="http://127.0.0.1:1", mock=True
    ),
    "end": end_record(stopped=None),
    "generated": generated_record(
        job_id="a",
        model="wan2.6-image",
        fp=FP,
        line=5,
        attempt=1,
        request_id="r1",
        images=[("http://h/a.png?Expires=9", 9.0), ("http://h/b.png", None)],
        texts=["t"],
        usage={"image_count": 2},
        info=INFO,
        duration=1.23456,
        clock_offset=-2.6,
    ),
    "saved": saved_record(
        job_id="a",
        k=1,
        file="images/a-1.png",
        size=10,
        sha256="0" * 64,
        width=8,
        height=8,
        info=INFO,
    ),
    "expired": expired_record(job_id="a", k=0),
    "submitted": submitted_record(job_id="a", task="t-1", request_id="r0"),
    "attempt": attempt_record(
        job_id="a",
        attempt=1,
        code="Throttling",
        status=429,
        message="slow down",
        request_id=None,
        possibly_billed=False,
        retry=True,
    ),
    "failed": failed_record(
        job_id="a",
        fp=FP,
        attempts=3,
        code="X",
        status=400,
        message="m",
        request_id="r",
        source='{"id":"a"}',
    ),
    "meta": meta_record(job_id="a", fp=FP, gen_line=2, images=1, line=5, meta={"k": 1}),
}


def test_one_builder_per_event() -> None:
    assert sorted(BUILT) == sorted(EVENTS)
    assert all(record["event"] == event for event, record in BUILT.items())


@pytest.mark.parametrize("event", sorted(BUILT))
def test_each_record_is_well_formed_json_with_event_then_id_first(event: str) -> None:
    record = BUILT[event]
    assert well_formed(record)
    assert json.loads(json.dumps(record)) == record
    keys = list(record)
    assert keys[0] == "event"
    if event not in ("run", "end"):
        assert keys[1] == "id"


@pytest.mark.parametrize(
    "record", [abandoned_record(job_id="a", attempt=2), cut_answer_record(job_id="a")]
)
def test_lost_answers_are_possibly_billed_attempts(record: Record) -> None:
    assert record["event"] == "attempt" and record["possibly_billed"] and record["retry"]
    state = replay([json.dumps(record)])
    assert state.possibly_billed == 1 and state.lost == {"a": 1}


def test_generated_carries_the_row_fields_and_rounds_its_timings() -> None:
    record = BUILT["generated"]
    assert record["images"] == [
        {"url": "http://h/a.png?Expires=9", "expires": 9.0},
        {"url": "http://h/b.png", "expires": None},
    ]
    assert (record["prompt"], record["seed"], record["size"], record["meta"]) == (
        "a cat",
        7,
        "1280*1280",
        {"k": "v"},
    )
    assert record["duration"] == 1.235 and record["clock_offset"] == -3
    assert "cut" not in record
    assert generated_record(**{**_generated_args(), "cut": "sse"})["cut"] == "sse"


def _generated_args() -> dict[str, object]:
    return {
        "job_id": "a",
        "model": None,
        "fp": FP,
        "line": 1,
        "attempt": 1,
        "request_id": None,
        "images": [],
        "texts": [],
        "usage": {},
        "info": INFO,
        "duration": 0.0,
        "clock_offset": 0.0,
    }


def test_saved_info_round_trips_through_a_saved_record() -> None:
    assert SavedInfo.of_record(BUILT["saved"]) == INFO


def test_no_other_module_makes_a_record() -> None:
    # A dict literal with an "event" key outside _records is a record made by hand.
    package = Path(wanbatch.__file__).parent
    makers = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict) and any(
                isinstance(key, ast.Constant) and key.value == "event" for key in node.keys
            ):
                makers.append(f"{path.name}:{node.lineno}")
    assert makers and all(name.startswith("_records.py:") for name in makers), makers
