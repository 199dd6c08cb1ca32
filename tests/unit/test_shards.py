"""Shards: the stable hash of a job id, ``I/N`` parsing, and the folder's shard check."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wanbatch._shards import MAX_SHARDS, Shard, parse_shard, shard_conflict, shard_label, shard_of

#: Fixed vectors: (id, N) -> shard. The first 8 bytes of sha256(id as UTF-8), big-endian,
#: mod N, plus 1. A change here moves jobs between machines' shards: never change them.
VECTORS = [
    ("fox", 3, 1),
    ("fox", 7, 2),
    ("fox", 1000, 521),
    ("cat-story", 3, 3),
    ("cat-story", 1000, 467),
    ("job-000001", 3, 2),
    ("job-000001", 7, 3),
    ("é", 7, 4),
    ("日本", 7, 3),
]


@pytest.mark.parametrize(("job_id", "count", "expected"), VECTORS)
def test_fixed_vectors(job_id: str, count: int, expected: int) -> None:
    assert shard_of(job_id, count) == expected
    assert Shard(expected, count).holds(job_id)


def test_the_hash_is_the_documented_one() -> None:
    # 'fox': sha256 starts 776cb326ab0cd5f0; its first 8 bytes as a big-endian number.
    assert int("776cb326ab0cd5f0", 16) == 8605449966658049520
    assert shard_of("fox", 2**62) == 8605449966658049520 % 2**62 + 1


def test_every_process_agrees_whatever_its_hash_seed() -> None:
    """Not Python's hash(): another interpreter with another PYTHONHASHSEED gives the same."""
    code = (
        "from wanbatch._shards import shard_of; print([shard_of(f'id-{i}', 5) for i in range(50)])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("0", "1", "12345")
    }
    assert outs == {str([shard_of(f"id-{i}", 5) for i in range(50)]) + "\n"}


def test_reordering_and_appending_never_move_a_job() -> None:
    ids = [f"job-{i}" for i in range(2000)]
    before = {job_id: shard_of(job_id, 4) for job_id in ids}
    shuffled = ids[:]
    random.Random(7).shuffle(shuffled)
    after = {
        job_id: shard_of(job_id, 4) for job_id in [*shuffled, *(f"new-{i}" for i in range(500))]
    }
    assert all(after[job_id] == shard for job_id, shard in before.items())


def test_every_id_is_in_exactly_one_shard_and_shards_are_even() -> None:
    ids = [f"img-{i:06d}" for i in range(30_000)]
    shards = [Shard(i, 3) for i in (1, 2, 3)]
    holders = [sum(s.holds(job_id) for s in shards) for job_id in ids]
    assert set(holders) == {1}
    sizes = Counter(shard_of(job_id, 3) for job_id in ids)
    assert set(sizes) == {1, 2, 3}
    assert all(abs(size - 10_000) < 400 for size in sizes.values()), sizes


@given(st.text(max_size=40), st.integers(min_value=1, max_value=MAX_SHARDS))
def test_a_shard_is_always_in_range(job_id: str, count: int) -> None:
    shard = shard_of(job_id, count)
    assert 1 <= shard <= count
    assert Shard(shard, count).holds(job_id)


@pytest.mark.parametrize(
    ("text", "expected"), [("1/3", Shard(1, 3)), (" 3/3 ", Shard(3, 3)), ("1/1", Shard(1, 1))]
)
def test_parse_shard(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected
    assert str(parse_shard(text)) == text.strip()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0/3", "numbered from 1 to 3, got 0"),
        ("4/3", "numbered from 1 to 3, got 4"),
        ("-1/3", "numbered from 1 to 3, got -1"),
        ("1/0", "must be from 1 to"),
        ("3", "expected I/N"),
        ("a/b", "expected I/N"),
        ("1/3/5", "expected I/N"),
        ("", "expected I/N"),
        (f"1/{MAX_SHARDS + 1}", "must be from 1 to"),
    ],
)
def test_a_bad_shard_says_what_it_takes(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shard(text)


def test_shard_label_and_conflict() -> None:
    assert shard_label(None) is None and shard_label(Shard(1, 1)) is None
    assert shard_label(Shard(2, 3)) == "2/3"
    # A new folder takes any shard; a folder keeps the one its runs had.
    assert shard_conflict("out", runs=0, recorded=None, wanted=Shard(1, 3)) is None
    assert shard_conflict("out", runs=2, recorded="1/3", wanted=Shard(1, 3)) is None
    assert shard_conflict("out", runs=1, recorded=None, wanted=None) is None
    assert shard_conflict("out", runs=1, recorded=None, wanted=Shard(1, 1)) is None
    other = shard_conflict("out", runs=1, recorded="1/3", wanted=Shard(2, 3))
    assert other is not None and "holds shard 1/3" in other and "shard 2/3" in other
    whole = shard_conflict("out", runs=1, recorded="1/3", wanted=None)
    assert whole is not None and "every job (no --shard)" in whole
    split = shard_conflict("out", runs=1, recorded=None, wanted=Shard(1, 2))
    assert split is not None and "every job of its job file" in split


def test_the_folder_s_shard_is_folded_from_the_journal_and_kept_by_the_snapshot() -> None:
    from wanbatch._records import run_record
    from wanbatch._snapshot import state_from_header, state_header
    from wanbatch._state import RunState

    record = run_record(
        jobs_file="/j.jsonl", version="x", jobs=3, endpoint="e", mock=True, shard="2/3"
    )
    state = RunState()
    state.apply({**record}, 1)
    assert state.shard == "2/3" and state.runs == 1
    again = state_from_header(state_header(state), state.done)
    assert again.shard == "2/3"
    assert shard_conflict("out", runs=again.runs, recorded=again.shard, wanted=Shard(1, 3))
    # A journal written before shards existed: its run records name none (every job).
    old = RunState()
    old.apply({k: v for k, v in record.items() if k != "shard"}, 1)
    assert old.shard is None
    header = state_header(old)
    del header["shard"]
    assert state_from_header(header, old.done).shard is None
