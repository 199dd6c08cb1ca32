"""What a run makes of the job file: notes on skipped lines and warnings, no run without a job,
an edited meta reaching metadata.jsonl for free, meta columns that load as a dataset, and ids in
other case against done jobs. Real runs against the mock (in-process and through the CLI)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import journal_records, run_cli, write_jobs
from wanbatch import BatchConfig, InvalidJobs, Secret, run_batch
from wanbatch import _events as ev
from wanbatch.mock import MockConfig, serve_in_thread

pytestmark = pytest.mark.anyio


@pytest.fixture
def mock() -> Iterator[Any]:
    with serve_in_thread(MockConfig(image_size=(16, 16), seed=3)) as handle:
        yield handle


def config(base_url: str, **changes: Any) -> BatchConfig:
    return BatchConfig(base_url=base_url, api_key=Secret("sk-test"), rps=None, **changes)


MIXED = [
    {"id": "ok1", "prompt": "fine", "meta": {"score": 1}},
    {"id": "bad", "prompt": "x", "images": ["https://h/x.png"], "n": 10},
    {"id": "ok2", "prompt": "fine", "negative_prompt": "n" * 600},
    '{"id": "cut',
    {"id": "ok1", "prompt": "again"},
    {"id": "ok3", "prompt": "fine", "meta": {"score": "high"}},
]


def write_mixed(path: Path) -> Path:
    lines = [x if isinstance(x, str) else json.dumps(x) for x in MIXED]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- notes


async def test_a_run_reports_what_it_skips_and_the_warnings(tmp_path: Path, mock: Any) -> None:
    jobs = write_mixed(tmp_path / "jobs.jsonl")
    events: list[Any] = []
    summary = await run_batch(
        jobs, tmp_path / "out", config(mock.base_url, skip_invalid=True), on_event=events.append
    )
    notes = [e for e in events if isinstance(e, ev.ValidationNotes)]
    assert len(notes) == 1 and isinstance(events[0], ev.ValidationNotes)  # before the plan
    note = notes[0]
    assert (note.skipped_lines, note.errors, note.warnings) == (3, 3, 2)
    assert [line.split(": ")[0].rsplit(":", 1)[1] for line in note.first] == [
        "2",
        "3",
        "4",
        "5",
        "6",
    ]
    assert f"{jobs}:2: n: must be 1-4 in editing mode; got 10" in note.first
    assert summary.skipped_invalid == 3 and summary.validation_warnings == 2
    assert summary.jobs_done == 3 and summary.calls == 3


@pytest.mark.parametrize("mode", ["--dry-run", "--mock"])
def test_the_cli_prints_skipped_lines_and_warnings(tmp_path: Path, mode: str) -> None:
    jobs = write_mixed(tmp_path / "jobs.jsonl")
    proc = run_cli("run", str(jobs), "--out", str(tmp_path / "out"), "--skip-invalid", mode)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert f"{jobs}:2: n: must be 1-4 in editing mode; got 10" in err
    assert f"{jobs}:3: negative_prompt: warning: negative_prompt is 600 characters" in err
    assert f"{jobs}:5: id: duplicate id 'ok1' (first on line 1)" in err
    assert f"{jobs}:6: meta.score: warning: a string here, a number on line 1" in err
    assert f"wanbatch: {jobs}: skipping 3 invalid lines (--skip-invalid); 2 warnings" in err
    # The same text as `wanbatch validate` prints.
    problem = re.compile(re.escape(str(jobs)) + r":\d+: ")
    validate = run_cli("validate", str(jobs))
    assert [line for line in validate.stdout.splitlines() if problem.match(line)] == [
        line for line in err.splitlines() if problem.match(line)
    ]


def test_a_refused_run_shows_its_warnings_with_its_errors(tmp_path: Path) -> None:
    jobs = write_mixed(tmp_path / "jobs.jsonl")
    proc = run_cli("run", str(jobs), "--out", str(tmp_path / "out"), "--mock")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    warning = f"{jobs}:3: negative_prompt: warning: negative_prompt is 600 characters"
    assert len([line for line in lines if line.startswith(warning)]) == 1
    assert len([line for line in lines if line.startswith(f"{jobs}:2: n: ")]) == 1
    assert f"wanbatch: {jobs}: 2 warnings" in lines


def test_warnings_alone_are_shown_by_a_run(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [{"id": "a", "prompt": "p" * 2001}])
    proc = run_cli("run", str(jobs), "--out", str(tmp_path / "out"), "--mock", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert f"{jobs}:1: prompt: warning: prompt is 2001 characters" in proc.stderr
    assert f"wanbatch: {jobs}: 1 warning\n" in proc.stderr


@pytest.mark.parametrize("skip", [[], ["--skip-invalid"]])
def test_a_file_without_jobs_is_a_usage_error(tmp_path: Path, skip: list[str]) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n  \n\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli("run", str(jobs), "--out", str(out), "--mock", *skip)
    assert proc.returncode == 2, proc.stderr
    assert "no jobs: the file is empty or holds only blank lines" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


async def test_only_invalid_lines_with_skip_invalid_is_an_error(tmp_path: Path, mock: Any) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": "a"}\n{"id": "b", "prompt": ""}\n', encoding="utf-8")
    with pytest.raises(InvalidJobs):
        await run_batch(jobs, tmp_path / "out", config(mock.base_url, skip_invalid=True))
    assert mock.counters().calls_by_outcome == {}
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- meta


def metadata(out: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    return {row["id"]: row for row in rows}


async def test_an_edited_meta_reaches_metadata_without_buying_again(
    tmp_path: Path, mock: Any
) -> None:
    jobs = [{"id": f"j{i}", "prompt": f"fox {i}", "meta": {"split": "train"}} for i in range(4)]
    path = write_jobs(tmp_path / "jobs.jsonl", jobs)
    out = tmp_path / "out"
    await run_batch(path, out, config(mock.base_url))
    calls = sum(mock.counters().calls_by_outcome.values())
    jobs[1]["meta"] = {"split": "test", "note": "moved"}
    jobs[2].pop("meta")
    write_jobs(path, jobs)
    summary = await run_batch(path, out, config(mock.base_url))
    assert summary.calls == 0 and sum(mock.counters().calls_by_outcome.values()) == calls
    rows = metadata(out)
    assert rows["j0"]["split"] == "train" and rows["j1"]["split"] == "test"
    assert rows["j1"]["note"] == "moved" and "split" not in rows["j2"]
    assert len(rows) == 4 and summary.changed_jobs == 0
    # The next run passes the edited lines over like any done line: nothing new is written.
    before = len(journal_records(out))
    await run_batch(path, out, config(mock.base_url))
    assert [r["event"] for r in journal_records(out)[before:]] == ["run", "end"]
    assert metadata(out) == rows


def load_dataset(out: Path) -> Any:
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    return datasets.load_dataset(
        "imagefolder", data_dir=str(out), split="train", cache_dir=str(out.parent / "hf-cache")
    )


async def test_meta_of_mixed_types_loads_as_a_dataset(
    tmp_path: Path, mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # imagefolder is built in: no network
    path = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"id": "a", "prompt": "one", "meta": {"score": 1, "w": 1, "tags": ["x"]}},
            {"id": "b", "prompt": "two", "meta": {"score": 2, "w": 2.5, "tags": []}},
        ],
    )
    out = tmp_path / "out"
    await run_batch(path, out, config(mock.base_url))
    # A later run adds a job whose types differ: the rows already written change with it.
    with path.open("a") as fh:
        fh.write(json.dumps({"id": "c", "prompt": "3", "meta": {"score": "high", "tags": [1]}}))
        fh.write("\n")
    await run_batch(path, out, config(mock.base_url))
    rows = metadata(out)
    assert [rows[k]["score"] for k in "abc"] == ["1", "2", "high"]
    assert [rows[k]["w"] for k in "ab"] == [1.0, 2.5] and "w" not in rows["c"]
    assert [rows[k]["tags"] for k in "abc"] == ['["x"]', "[]", "[1]"]
    dataset = load_dataset(out)
    by_id = {row["id"]: row for row in dataset}
    assert {k: by_id[k]["score"] for k in "abc"} == {"a": "1", "b": "2", "c": "high"}
    assert by_id["b"]["w"] == 2.5 and by_id["c"]["tags"] == "[1]"


# --------------------------------------------------------------------------- ids in other case


@pytest.mark.parametrize(("done_id", "new_id"), [("fox", "Fox"), ("Fox", "fox"), ("Fox", "FOX")])
async def test_an_id_in_other_case_than_a_done_job_is_refused(
    tmp_path: Path, mock: Any, done_id: str, new_id: str
) -> None:
    jobs = [{"id": f"d{i}", "prompt": f"done {i}"} for i in range(3)]
    jobs.insert(1, {"id": done_id, "prompt": "the first"})
    path = write_jobs(tmp_path / "jobs.jsonl", jobs)
    out = tmp_path / "out"
    await run_batch(path, out, config(mock.base_url))
    calls = sum(mock.counters().calls_by_outcome.values())
    write_jobs(path, [*jobs, {"id": new_id, "prompt": "the second"}])
    with pytest.raises(InvalidJobs) as info:
        await run_batch(path, out, config(mock.base_url))
    assert [str(e).split(": ", 1)[1] for e in info.value.errors] == [
        f"id: duplicate id '{new_id}' in other letter case (first on line 2): ids that differ "
        "only in case name the same image files on macOS and Windows"
    ]
    assert sum(mock.counters().calls_by_outcome.values()) == calls


def test_meta_records_with_wrong_fields_are_skipped_not_fatal() -> None:
    from wanbatch._state import replay

    url = "http://127.0.0.1:9/a.png"
    records: list[dict[str, Any]] = [
        {"event": "generated", "id": "a", "fp": "ab12", "images": [{"url": url}]},
        {"event": "saved", "id": "a", "k": 0},
        {"event": "meta", "id": "a", "fp": "ab12", "gen_line": -1, "images": 1, "line": 5},
        {"event": "meta", "id": "a", "fp": "ab12", "gen_line": "1", "images": 1, "line": 5},
        {"event": "meta", "id": "a", "fp": "ab12", "gen_line": 1, "images": 1},
        {
            "event": "meta",
            "id": "a",
            "fp": "ab12",
            "gen_line": 1,
            "images": 1 << 90,
            "line": 1 << 80,
        },
    ]
    state = replay(json.dumps(r) for r in records)
    assert state.damaged == [3, 4, 5, 6]  # out of range counts too: never stored
    assert state.done.get("a") is not None and len(state.done) == 1
