"""Property tests: the job-line parser never crashes, a journal with garbage lines or wrong-typed
fields anywhere replays consistently, a snapshot header with a wrong value is refused. (The SSE
decoder at every split offset and any chunking is covered in tests/unit/test_protocol_sse.py;
clean journal prefixes in tests/unit/test_state.py.)"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_state import _consistent, journals
from wanbatch._config import GenerationDefaults
from wanbatch._errors import JobFileError, JournalError
from wanbatch._jobs import PlannedJob, parse_line
from wanbatch._lifecycle import Status
from wanbatch._loader import iter_jobs
from wanbatch._plan import plan_job
from wanbatch._snapshot import state_from_header, state_header
from wanbatch._state import replay

FIELDS = [
    "id", "prompt", "images", "negative_prompt", "size", "n", "seed", "prompt_extend",
    "watermark", "enable_interleave", "max_images", "parameters", "messages", "model", "meta",
    "bogus",
]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["1K", "2K", "1280*1280", "https://x.example/a.png", "a.png", "../x"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
job_objects = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)
lines = st.one_of(
    job_objects.map(lambda d: json.dumps(d, allow_nan=True)),
    st.text(max_size=80),
    st.binary(max_size=60).map(lambda b: b.decode("utf-8", "replace")),
)


@settings(max_examples=300, deadline=None)
@given(lines)
def test_parse_line_returns_a_job_or_a_job_file_error_with_the_line(text: str) -> None:
    try:
        parse_line(text, 7, "jobs.jsonl")
    except JobFileError as exc:
        assert exc.line == 7 and str(exc).startswith("jobs.jsonl:7:")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, min_size=1, max_size=8))
def test_loader_yields_planned_jobs_or_errors_naming_a_line(texts: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "jobs.jsonl"
        path.write_bytes(
            "".join(t.replace("\n", " ").replace("\r", " ") + "\n" for t in texts).encode(
                "utf-8", "surrogatepass"
            )
        )
        seen: list[Any] = list(iter_jobs(path, GenerationDefaults(), skip_invalid=True))
    for item in seen:
        assert isinstance(item, (PlannedJob, JobFileError))
        assert 1 <= item.line <= len(texts)


garbage = st.one_of(
    st.text(max_size=40),
    st.sampled_from(['{"event":"saved"}', "[1,2]", "null", '{"id":5,"event":"generated"}',
                     '{"id":"job0","event":"generated","images":"x"}',
                     '{"id":"job0","event":"saved","k":"zero"}', '{"v":"2","event":"run"}']),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(journals(), st.data())
def test_garbage_lines_anywhere_never_break_replay(base: list[str], data: st.DataObject) -> None:
    mixed = list(base)
    for _ in range(data.draw(st.integers(1, 4))):
        mixed.insert(data.draw(st.integers(0, len(mixed))), data.draw(garbage))
    state = replay(mixed)
    clean = replay(base)
    for job_id in (f"job{j}" for j in range(5)):
        job = state.job(job_id)
        if job is None:
            continue
        _consistent(job)
        # Garbage never invents a finished job.
        if job.status is Status.DONE:
            assert clean.job(job_id) is not None
    assert len(state.damaged) <= len(mixed)


WRONG: list[Any] = ["x", [], {"a": 1}, None, True, 1.5, -1, 10**30, 10**400, 1e308, -1e308]
WRONG += [float("inf"), float("nan"), 2**64]


def _replace_somewhere(doc: Any, data: st.DataObject) -> Any:
    """``doc`` with one value somewhere below its root replaced by a wrong or huge one."""
    paths: list[tuple[Any, ...]] = []

    def walk(value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, (dict, list)):
            for key, child in value.items() if isinstance(value, dict) else enumerate(value):
                paths.append((*path, key))
                walk(child, (*path, key))

    walk(doc, ())
    if not paths:
        return doc
    path = data.draw(st.sampled_from(paths))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(st.sampled_from(WRONG))
    return doc


@settings(max_examples=200, deadline=None)
@given(journals(), st.data())
def test_wrong_types_and_huge_numbers_in_any_field_never_break_replay(
    base: list[str], data: st.DataObject
) -> None:
    mixed = list(base)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(mixed) - 1))
        mixed[i] = json.dumps(_replace_somewhere(json.loads(mixed[i]), data), allow_nan=True)
    try:
        state = replay(mixed)
    except JournalError as exc:  # only for a record claiming a newer format
        assert "newer wanbatch" in str(exc)
        return
    for job_id in (f"job{j}" for j in range(5)):
        job = state.job(job_id)
        if job is not None:
            _consistent(job)
            plan_job(job, "f1", retry_failed=False)


@settings(max_examples=200, deadline=None)
@given(journals(), st.data())
def test_a_snapshot_header_with_a_wrong_or_huge_value_is_refused_or_sane(
    base: list[str], data: st.DataObject
) -> None:
    state = replay(base)
    header = _replace_somewhere(json.loads(json.dumps(state_header(state))), data)
    try:
        loaded = state_from_header(header, state.done)
    except (KeyError, ValueError):
        return  # refused: the reader replays the journal instead
    assert 0 <= loaded.lines < 2**63 and all(0 <= n <= loaded.lines for n in loaded.damaged)
    for job in loaded.jobs.values():
        assert job.status is not None and job.saved >> len(job.images) == 0
        assert all(exp is None or 0 <= exp < math.inf for _, exp in job.images)
        plan_job(job, "f1", retry_failed=False)
