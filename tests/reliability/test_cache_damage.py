"""A damaged cache or journal record never changes what is bought.

The caches (``.state-snapshot``, ``.resume-prefix``, ``.views-state``) carry a checksum over
their whole content: a damaged one is ignored with one warning line and rebuilt from the
journal. Journal records whose fields have the wrong type or a number out of range are skipped
and listed by ``status`` like garbage lines. (Random damage of every kind: test_damage_fuzz.py.)
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, write_jobs
from wanbatch._journal import read_journal
from wanbatch._snapshot import job_to_json
from wanbatch.mock import MockConfig, serve_in_thread

CACHES = (".state-snapshot", ".resume-prefix", ".views-state")


@pytest.fixture(scope="module")
def mock() -> Iterator[Any]:
    with serve_in_thread(MockConfig(image_size=(8, 8), seed=17)) as handle:
        yield handle


def _env(mock: Any) -> dict[str, str]:
    return {"DASHSCOPE_API_KEY": "sk-caches", "DASHSCOPE_HTTP_BASE_URL": mock.base_url}


def _run(mock: Any, jobs: Path, out: Path) -> Any:
    return run_cli(
        "run", str(jobs), "--out", str(out), "--no-progress", "--rps", "0", env=_env(mock)
    )


def _jobs(path: Path, count: int) -> Path:
    return write_jobs(path, [{"id": f"c{i}", "prompt": f"cache {i}"} for i in range(count)])


@pytest.fixture(scope="module")
def done_folder(mock: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A job file of 6 jobs, all done in its folder by a real run."""
    folder = tmp_path_factory.mktemp("caches")
    jobs, out = _jobs(folder / "jobs.jsonl", 6), folder / "out"
    assert _run(mock, jobs, out).returncode == 0
    assert all((out / name).is_file() for name in CACHES)
    return jobs, out


def _copy(done_folder: tuple[Path, Path], tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(done_folder[1], out)
    return out


def _arrays_start(data: bytes) -> int:
    """Where a cache's packed arrays begin: after its JSON header line."""
    return data.find(b"}\n") + 2


def _warnings_about(stderr: str, name: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ignoring the cache" in line and name in line]


def _state_of(out: Path) -> Any:
    state = read_journal(out)
    keys, vals, lines = state.done.arrays()
    jobs = {job_id: job_to_json(job) for job_id, job in state.jobs.items()}
    return (keys.tolist(), vals.tolist(), lines.tolist(), jobs, state.lines)


def test_a_flipped_bit_anywhere_in_the_snapshot_reads_as_the_journal_says(
    done_folder: tuple[Path, Path], tmp_path: Path
) -> None:
    out = _copy(done_folder, tmp_path)
    snapshot = out / ".state-snapshot"
    good = snapshot.read_bytes()
    snapshot.unlink()
    truth = _state_of(out)
    rng = random.Random(3)
    for pos in range(len(good)):  # one bit of every byte
        damaged = bytearray(good)
        damaged[pos] ^= 1 << rng.randrange(8)
        snapshot.write_bytes(bytes(damaged))
        assert _state_of(out) == truth, f"bit flipped at byte {pos} of {len(good)}"
    assert not snapshot.exists(), "a damaged cache is removed, so it is reported once"


def test_a_flipped_bit_in_the_snapshot_buys_nothing_and_is_reported_in_one_line(
    mock: Any, done_folder: tuple[Path, Path], tmp_path: Path
) -> None:
    jobs, out = done_folder[0], _copy(done_folder, tmp_path)
    # Without the prefix (a cache too: deleting it is safe) every job is looked up in the state.
    (out / ".resume-prefix").unlink()
    snapshot = out / ".state-snapshot"
    data = bytearray(snapshot.read_bytes())
    data[_arrays_start(data) + 3] ^= 0x10  # a bit of the first done job's id hash
    snapshot.write_bytes(bytes(data))
    calls = mock.counters().calls
    proc = _run(mock, jobs, out)
    assert proc.returncode == 0, proc.stderr
    assert mock.counters().calls == calls, "a job done and on disk was bought again"
    assert len(_warnings_about(proc.stderr, ".state-snapshot")) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (out / ".state-snapshot").is_file()  # rebuilt at the end of the run


def test_same_length_garbage_in_the_snapshot_does_not_refuse_the_folder(
    mock: Any, done_folder: tuple[Path, Path], tmp_path: Path
) -> None:
    jobs, out = done_folder[0], _copy(done_folder, tmp_path)
    (out / ".resume-prefix").unlink()
    snapshot = out / ".state-snapshot"
    data = snapshot.read_bytes()
    start = _arrays_start(data)
    snapshot.write_bytes(data[:start] + random.Random(1).randbytes(len(data) - start))
    calls = mock.counters().calls
    proc = _run(mock, jobs, out)
    assert proc.returncode == 0, proc.stderr
    assert "another job file" not in proc.stderr
    assert mock.counters().calls == calls
    assert len(_warnings_about(proc.stderr, ".state-snapshot")) == 1, proc.stderr


def test_garbage_in_the_resume_prefix_neither_refuses_nor_buys_again(
    mock: Any, done_folder: tuple[Path, Path], tmp_path: Path
) -> None:
    jobs, out = tmp_path / "jobs.jsonl", _copy(done_folder, tmp_path)
    # Line 2 fails for good, so the done prefix ends after line 1: the done jobs after it are
    # told apart by the prefix's array (the first line of each done id).
    lines = [{"id": f"c{i}", "prompt": f"cache {i}"} for i in range(7)]
    write_jobs(jobs, [lines[0], {"id": "f", "prompt": "forbidden"}, *lines[1:]])
    mock.configure(inspection_triggers=("forbidden",))
    try:
        assert _run(mock, jobs, out).returncode == 1  # "f" failed; c6 bought
    finally:
        mock.configure(inspection_triggers=())
    prefix = out / ".resume-prefix"
    data = prefix.read_bytes()
    start = _arrays_start(data)
    prefix.write_bytes(data[:start] + random.Random(2).randbytes(len(data) - start))
    calls = mock.counters().calls
    proc = _run(mock, jobs, out)
    assert proc.returncode == 1, proc.stderr  # "f" still failed, everything else done
    assert "duplicate id" not in proc.stderr and "Traceback" not in proc.stderr
    assert mock.counters().calls == calls
    assert len(_warnings_about(proc.stderr, ".resume-prefix")) == 1, proc.stderr


def test_a_damaged_views_state_is_reported_and_the_views_rebuilt(
    mock: Any, done_folder: tuple[Path, Path], tmp_path: Path
) -> None:
    jobs, out = tmp_path / "jobs.jsonl", _copy(done_folder, tmp_path)
    _jobs(jobs, 7)
    views = out / ".views-state"
    views.write_bytes(views.read_bytes().replace(b'"metadata_rows":6', b'"metadata_rows":9'))
    proc = _run(mock, jobs, out)
    assert proc.returncode == 0, proc.stderr
    assert len(_warnings_about(proc.stderr, ".views-state")) == 1, proc.stderr
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert sorted(row["id"] for row in rows) == [f"c{i}" for i in range(7)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["jobs_done"] == 7


def _set(line: str, path: tuple[Any, ...], value: Any) -> str:
    record = json.loads(line)
    target = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(record)


def test_wrong_types_and_huge_numbers_in_journal_lines_are_listed_never_fatal(
    mock: Any, done_folder: tuple[Path, Path], tmp_path: Path
) -> None:
    jobs, out = done_folder[0], _copy(done_folder, tmp_path)
    for name in CACHES:  # the journal alone decides
        (out / name).unlink()
    journal = out / "journal.jsonl"
    lines = journal.read_text().splitlines()

    def where(event: str, job_id: str) -> int:
        return next(
            i for i, line in enumerate(lines) if f'"event":"{event}"' in line and job_id in line
        )

    damage = {
        where("saved", '"c0"'): ("k",),
        where("saved", '"c1"'): ("k",),
        where("saved", '"c2"'): ("k",),
        where("generated", '"c3"'): ("images", 0, "expires"),
    }
    values = ["x", 10**30, -1, 10**400]
    for (i, path), value in zip(damage.items(), values, strict=True):
        lines[i] = _set(lines[i], path, value)
    # A field the fold does not read: the paid URLs of this record are kept.
    c4 = where("generated", '"c4"')
    lines[c4] = _set(lines[c4], ("attempt",), 1e308)
    lines.append("[" * 100_000 + "]" * 100_000)  # nested past the JSON parser's depth
    journal.write_text("\n".join(lines) + "\n")
    expected = sorted([i + 1 for i in damage] + [len(lines)])

    bought = mock.counters().images_by_prompt
    proc = _run(mock, jobs, out)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    now = mock.counters().images_by_prompt
    # c3's record is damaged: it is not known as paid any more, so it is bought again; the
    # images of c0-c2 are fetched again from their valid URLs, free.
    assert {p for p in now if now[p] != bought.get(p, 0)} == {"cache 3"}
    added = [json.loads(line) for line in journal.read_text().splitlines()[len(lines) :]]
    saved_again = [r["id"] for r in added if r["event"] == "saved"]
    assert sorted(saved_again) == ["c0", "c1", "c2", "c3"]

    status = run_cli("status", str(out))
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["damaged_journal_lines"] == expected
    assert report["by_state"] == {"done": 6, "failed": 0, "pending": 0}
