"""metadata.jsonl / failed.jsonl updated run after run equal the views rebuilt from scratch.

The end of a run appends only the new rows when it can (``.views-state``); random journals,
cut into runs, check that what it leaves is always byte for byte what a full rebuild writes.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import record
from wanbatch._journal import JOURNAL_NAME, Journal, read_journal
from wanbatch._touchlog import TouchLog
from wanbatch._views import VIEWS_NAME, write_views


def _image(out: Path, name: str, size: int) -> None:
    """The file a ``saved`` record names (the views list only images on disk)."""
    (out / "images").mkdir(exist_ok=True)
    (out / "images" / name).write_bytes(b"i" * size)


def _inode(path: Path) -> int:
    return path.stat().st_ino if path.exists() else 0


def _finish(out: Path) -> tuple[int, int]:
    """What the engine does at the end of a run."""
    touched = TouchLog()
    state = read_journal(out, write_snapshot=True, touched=touched)
    return write_views(out, state, touched)


def _rebuilt(out: Path, scratch: Path) -> tuple[tuple[int, int], str, str]:
    """The views of the same journal, written from nothing."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir()
    shutil.copy(out / JOURNAL_NAME, scratch / JOURNAL_NAME)
    if (out / "images").exists():
        shutil.copytree(out / "images", scratch / "images")
    counts = write_views(scratch, read_journal(scratch))
    return (
        counts,
        (scratch / "metadata.jsonl").read_text(encoding="utf-8"),
        (scratch / "failed.jsonl").read_text(encoding="utf-8"),
    )


class _Service:
    """Appends the records a run would, for a handful of jobs, at random."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.pending: dict[str, list[int]] = {}  # job -> images of its generation not saved
        self.gen = 0

    def step(self, journal: Journal) -> None:
        rng = self.rng
        job = f"j{rng.randrange(8)}"
        roll = rng.random()
        if roll < 0.35 or (job not in self.pending and roll < 0.6):
            self.gen += 1
            n = rng.choice([0, 1, 2, 3])
            self.pending[job] = list(range(n))
            urls = [f"https://x/{job}-{self.gen}-{k}" for k in range(n)]
            journal.append(
                record(
                    "generated",
                    id=job,
                    fp=f"fp-{rng.randrange(3)}",
                    line=rng.randrange(1, 5),
                    attempt=1,
                    request_id=f"r{self.gen}",
                    images=[{"url": url, "expires": None} for url in urls],
                    prompt=f"prompt {job} {self.gen}",
                    meta={"gen": self.gen},
                )
            )
        elif roll < 0.75 and self.pending.get(job):
            k = rng.choice(self.pending[job])
            if rng.random() < 0.8:
                self.pending[job].remove(k)  # else: a duplicate record of the same image
            _image(journal.path.parent, f"{job}-{k}.png", 100 + k)
            journal.append(
                record(
                    "saved",
                    id=job,
                    k=k,
                    file=f"images/{job}-{k}.png",
                    bytes=100 + k,
                    sha256=f"{self.gen:064x}",
                    prompt=f"prompt {job}",
                    seed=k,
                    meta={"gen": self.gen},
                )
            )
        elif roll < 0.9:
            journal.append(
                record(
                    "failed",
                    id=job,
                    fp="fp-0",
                    attempts=2,
                    code="InternalError",
                    message=f"failure {rng.randrange(100)}",
                    source=json.dumps({"id": job, "prompt": "p"}),
                )
            )
        elif self.pending.get(job):
            journal.append(record("expired", id=job, k=self.pending[job][0]))
        else:
            journal.append(record("attempt", id=job, attempt=1, code="Throttling", status=429))


@pytest.mark.parametrize("seed", range(40))
def test_views_after_every_run_equal_a_rebuild(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    service = _Service(rng)
    appended = {"metadata.jsonl": 0, "failed.jsonl": 0}
    for _ in range(rng.randrange(3, 9)):  # runs
        journal = Journal(out)
        journal.open()
        journal.append(record("run", jobs_file="jobs.jsonl", version="test", jobs=8))
        for _ in range(rng.randrange(0, 12)):
            service.step(journal)
        journal.close()
        if rng.random() < 0.15:  # a crash mid-record: a torn last line
            with (out / JOURNAL_NAME).open("ab") as fh:
                fh.write(b'{"v":1,"event":"sav')
        inodes = {name: _inode(out / name) for name in appended}
        counts = _finish(out)
        for name in appended:  # the same file, appended to (a rebuild replaces it)
            appended[name] += inodes[name] == _inode(out / name)
        expected_counts, metadata, failed = _rebuilt(out, scratch)
        assert (out / "metadata.jsonl").read_text(encoding="utf-8") == metadata
        assert (out / "failed.jsonl").read_text(encoding="utf-8") == failed
        assert counts == expected_counts
    # Nothing proves the fast path right unless it ran: seeds where every run rebuilt are few.
    if seed == 0:
        assert all(appended.values()), f"a view was never appended to: {appended}"


def test_an_edited_view_is_rebuilt(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(record("run", jobs_file="j", version="t", jobs=1))
    journal.append(
        record(
            "generated",
            id="a",
            fp="f",
            line=1,
            attempt=1,
            request_id="r",
            images=[{"url": "https://x/a", "expires": None}],
        )
    )
    journal.append(record("saved", id="a", k=0, file="images/a-0.png", bytes=1, sha256="0" * 64))
    journal.close()
    _image(tmp_path, "a-0.png", 1)
    assert _finish(tmp_path) == (1, 0)
    assert (tmp_path / VIEWS_NAME).exists()
    (tmp_path / "metadata.jsonl").write_text("", encoding="utf-8")  # a user emptied it
    assert _finish(tmp_path) == (1, 0)  # seen by its size: rebuilt, not appended to
    assert json.loads((tmp_path / "metadata.jsonl").read_text(encoding="utf-8"))["id"] == "a"


def test_a_resume_that_adds_jobs_appends_their_rows(tmp_path: Path) -> None:
    def run(job_ids: list[str]) -> None:
        journal = Journal(tmp_path)
        journal.open()
        journal.append(record("run", jobs_file="j", version="t", jobs=len(job_ids)))
        for job_id in job_ids:
            url = {"url": f"https://x/{job_id}", "expires": None}
            journal.append(
                record(
                    "generated", id=job_id, fp="f", line=1, attempt=1, request_id="r", images=[url]
                )
            )
            journal.append(
                record(
                    "saved", id=job_id, k=0, file=f"images/{job_id}-0.png", bytes=1, sha256="0" * 64
                )
            )
            _image(tmp_path, f"{job_id}-0.png", 1)
        journal.close()

    run([f"a{i}" for i in range(50)])
    assert _finish(tmp_path) == (50, 0)
    inode = (tmp_path / "metadata.jsonl").stat().st_ino
    run(["b0", "b1"])
    assert _finish(tmp_path) == (52, 0)
    assert (tmp_path / "metadata.jsonl").stat().st_ino == inode  # appended, not rewritten
    rows = (tmp_path / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(r)["id"] for r in rows[-2:]] == ["b0", "b1"]


def test_rows_that_fail_half_way_are_not_left_in_the_view(tmp_path: Path) -> None:
    from wanbatch._views import _append

    view = tmp_path / "metadata.jsonl"
    view.write_text('{"id": "old"}\n', encoding="utf-8")

    def rows() -> Iterator[str]:
        yield '{"id": "new1"}'
        yield '{"id": "new2"}'
        raise ValueError("a damaged record")

    with pytest.raises(ValueError):
        _append(view, rows())
    assert view.read_text(encoding="utf-8") == '{"id": "old"}\n'
