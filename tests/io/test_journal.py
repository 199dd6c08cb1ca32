"""The journal file: torn tails are cut before appending; views are rebuilt from it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import record
from wanbatch._journal import Journal, read_journal
from wanbatch._lifecycle import Status
from wanbatch._records import SavedInfo, generated_record
from wanbatch._state import replay
from wanbatch._views import write_views


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_append_flushes_each_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(record("run", jobs_file="x"))
    # Readable by another reader before close: flushed per record.
    assert json.loads(_lines(tmp_path / "journal.jsonl")[0])["event"] == "run"
    journal.close()


def test_torn_tail_is_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    good = json.dumps({"v": 1, "event": "run", "jobs_file": "x"})
    path.write_text(good + "\n" + '{"v":1,"event":"gen', encoding="utf-8")
    journal = Journal(tmp_path)
    journal.open()
    journal.append(record("run", jobs_file="y"))
    journal.close()
    lines = _lines(path)
    assert len(lines) == 2
    assert [json.loads(line)["jobs_file"] for line in lines] == ["x", "y"]
    assert read_journal(tmp_path).damaged == []


def test_views_keep_only_current_generation_and_last_failure(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    img = [{"url": "http://h/a.png", "expires": None}]
    journal.append(record("generated", id="a", fp="f", images=img))
    journal.append(record("expired", id="a", k=0))
    journal.append(record("generated", id="a", fp="f", images=img))
    journal.append(
        record(
            "saved",
            id="a",
            k=0,
            file="images/a-0.png",
            prompt="cat",
            seed=3,
            size="1280*1280",
            request_id="r2",
            meta={"split": "train"},
        )
    )
    journal.append(
        record(
            "saved",
            id="a",
            k=0,
            file="images/a-0.png",
            prompt="cat",
            seed=3,
            size="1280*1280",
            request_id="r2",
            meta={"split": "train"},
        )
    )
    journal.append(
        record("failed", id="b", code="X", message="first", source='{"id":"b","prompt":"p"}')
    )
    journal.append(
        record("failed", id="b", code="Y", message="second", source='{"id":"b","prompt":"p"}')
    )
    journal.close()
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a-0.png").write_bytes(b"png")  # the views list images on disk
    state = read_journal(tmp_path)
    assert state.job("a").status is Status.DONE
    meta_count, failed_count = write_views(tmp_path, state)
    assert (meta_count, failed_count) == (1, 1)
    row = json.loads(_lines(tmp_path / "metadata.jsonl")[0])
    assert row["file_name"] == "images/a-0.png"
    assert row["prompt"] == "cat" and row["split"] == "train" and row["request_id"] == "r2"
    failed = json.loads(_lines(tmp_path / "failed.jsonl")[0])
    assert failed["prompt"] == "p" and failed["error"]["code"] == "Y"


def test_snapshot_skips_covered_lines_and_matches_a_full_replay(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    img = [{"url": "http://h/a.png", "expires": None}]
    for i in range(5):
        journal.append(record("generated", id=f"j{i}", fp="abcdef12", images=img))
        journal.append(record("saved", id=f"j{i}", k=0, file=f"images/j{i}-0.png"))
    journal.append(record("failed", id="bad", code="X", message="m", source="{}"))
    journal.close()
    first = read_journal(tmp_path, write_snapshot=True)
    assert (tmp_path / ".state-snapshot").exists()
    # More records after the snapshot: a resume replays only those, and agrees with a full replay.
    journal.open()
    journal.append(record("generated", id="late", fp="f", images=img))
    journal.close()
    resumed = read_journal(tmp_path)
    (tmp_path / ".state-snapshot").unlink()
    full = read_journal(tmp_path)
    for state in (resumed, full):
        assert state.status_counts() == {"done": 5, "failed": 1, "generated": 1}
        assert state.lines == first.lines + 1
        assert state.job("j3") is not None and state.job("j3").gen_line == 7  # type: ignore[union-attr]


def test_snapshot_of_another_journal_is_ignored(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(record("generated", id="a", fp="f", images=[{"url": "u", "expires": None}]))
    journal.append(record("saved", id="a", k=0, file="images/a-0.png"))
    journal.close()
    read_journal(tmp_path, write_snapshot=True)
    # Replace the journal with a different one of the same length: the tail digest differs.
    path = tmp_path / "journal.jsonl"
    path.write_text(path.read_text().replace('"a"', '"b"'), encoding="utf-8")
    state = read_journal(tmp_path)
    assert state.job("a") is None and state.job("b") is not None


def test_the_journal_writes_a_record_as_one_compact_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(
        generated_record(
            job_id="a",
            model=None,
            fp="f",
            line=1,
            attempt=1,
            request_id="r",
            images=[("http://h/a.png", None), ("http://h/b.png", None)],
            texts=[],
            usage={},
            info=SavedInfo(prompt="p", seed=None, size=None, request_id="r", meta=None, model=None),
            duration=0.5,
            clock_offset=0.0,
        )
    )
    journal.close()
    lines = (tmp_path / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert list(first)[:3] == ["v", "ts", "event"]
    # The prefix a torn generated line is recognised by (the fold and Journal.open look for it).
    assert '"event":"generated","id":"a"' in lines[0]
    state = replay(lines)
    assert state.job("a") is not None and state.images_generated == 2
