"""A damaged journal: torn or garbage lines are tolerated, a newer format or another job file is
refused with a clear message (the unit-level fold is tested in tests/unit/test_state.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import journal_records, png_info, run_cli, write_jobs
from wanbatch import BatchConfig, ExitCode, Secret, run_batch
from wanbatch.mock import MockConfig, serve_in_thread

pytestmark = pytest.mark.anyio


@pytest.fixture
def mock() -> Iterator[Any]:
    with serve_in_thread(MockConfig(image_size=(16, 16), seed=11)) as handle:
        yield handle


def _config(base_url: str) -> BatchConfig:
    return BatchConfig(base_url=base_url, api_key=Secret("sk-journal"), concurrency=4, rps=None)


def _jobs(tmp_path: Path, count: int = 6, prefix: str = "j") -> Path:
    return write_jobs(
        tmp_path / f"{prefix}.jsonl",
        [{"id": f"{prefix}{i}", "prompt": f"{prefix} journal {i}"} for i in range(count)],
    )


async def test_torn_last_line_is_cut_and_the_run_resumes(mock: Any, tmp_path: Path) -> None:
    jobs, out = _jobs(tmp_path), tmp_path / "out"
    await run_batch(jobs, out, _config(mock.base_url))
    journal = out / "journal.jsonl"
    with journal.open("ab") as fh:  # a crash in the middle of writing a record
        fh.write(b'{"v":1,"ts":1.0,"event":"saved","id":"j0","k":0,"fi')
    calls = mock.counters().calls
    summary = await run_batch(jobs, out, _config(mock.base_url))
    assert summary.exit_code == ExitCode.OK and summary.jobs_done == 6
    assert mock.counters().calls == calls
    # The torn bytes were cut before appending: every line is whole JSON again.
    for line in journal.read_text().splitlines():
        json.loads(line)


async def test_garbage_lines_in_the_middle_are_skipped_and_reported(
    mock: Any, tmp_path: Path
) -> None:
    jobs, out = _jobs(tmp_path), tmp_path / "out"
    await run_batch(jobs, out, _config(mock.base_url))
    journal = out / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    # Garbage, a non-object, invalid UTF-8 and a record missing fields, all mid-file.
    lines[2:2] = [b"\x00\x01garbage\n", b"[1, 2]\n", b"\xff\xfe{not json\n", b'{"event":"saved"}\n']
    journal.write_bytes(b"".join(lines))
    calls = mock.counters().calls
    summary = await run_batch(jobs, out, _config(mock.base_url))
    assert summary.exit_code == ExitCode.OK and summary.jobs_done == 6
    assert mock.counters().calls == calls
    status = run_cli("status", str(out))
    assert status.returncode == 0
    report = json.loads(status.stdout)
    assert report["damaged_journal_lines"] == [3, 4, 5, 6]
    assert report["by_state"] == {"done": 6, "failed": 0, "pending": 0}


async def test_a_damaged_saved_record_only_costs_a_download(mock: Any, tmp_path: Path) -> None:
    jobs, out = _jobs(tmp_path), tmp_path / "out"
    await run_batch(jobs, out, _config(mock.base_url))
    journal = out / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    i = next(n for n, line in enumerate(lines) if '"event":"saved"' in line)
    victim = json.loads(lines[i])["id"]
    lines[i] = lines[i][: len(lines[i]) // 2] + "\n"  # torn in the middle of the file
    journal.write_text("".join(lines))
    calls = mock.counters().calls
    summary = await run_batch(jobs, out, _config(mock.base_url))
    assert summary.exit_code == ExitCode.OK
    assert mock.counters().calls == calls  # fetched again from its still-valid URL, not bought
    assert summary.images_saved_this_run == 1
    png_info(out / "images" / f"{victim}-0.png")
    assert sum(1 for r in journal_records(out) if r.get("id") == victim and r["event"] == "saved")


def test_a_record_from_a_newer_format_is_refused_naming_the_line(mock: Any, tmp_path: Path) -> None:
    jobs, out = _jobs(tmp_path), tmp_path / "out"
    env = {"DASHSCOPE_API_KEY": "sk-journal", "DASHSCOPE_HTTP_BASE_URL": mock.base_url}
    first = run_cli("run", str(jobs), "--out", str(out), "--no-progress", "--rps", "0", env=env)
    assert first.returncode == 0, first.stderr
    journal = out / "journal.jsonl"
    count = len(journal.read_text().splitlines())
    with journal.open("a") as fh:
        fh.write(json.dumps({"v": 99, "ts": 1.0, "event": "hologram", "id": "j0"}) + "\n")
    before = journal.read_bytes()
    calls = mock.counters().calls
    again = run_cli("run", str(jobs), "--out", str(out), "--no-progress", env=env)
    assert again.returncode == 2
    assert f"journal line {count + 1} is format v99" in again.stderr
    assert "upgrade wanbatch" in again.stderr and "Traceback" not in again.stderr
    assert mock.counters().calls == calls and journal.read_bytes() == before  # untouched
    status = run_cli("status", str(out))
    assert status.returncode == 2 and "format v99" in status.stderr


def test_a_journal_of_another_job_file_is_refused_by_the_cli(mock: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {"DASHSCOPE_API_KEY": "sk-journal", "DASHSCOPE_HTTP_BASE_URL": mock.base_url}
    a = _jobs(tmp_path, 3, "a")
    assert run_cli("run", str(a), "--out", str(out), "--no-progress", env=env).returncode == 0
    calls = mock.counters().calls
    b = _jobs(tmp_path, 3, "b")
    proc = run_cli("run", str(b), "--out", str(out), "--no-progress", env=env)
    assert proc.returncode == 2
    assert "another job file" in proc.stderr and str(a.name) in proc.stderr
    assert mock.counters().calls == calls
