"""Fuzz: damage the journal or a cache of a real run folder, then resume against the mock.

The folder holds done jobs and jobs generated but not saved yet (their URLs valid for hours),
and all three caches; the job file's done prefix covers only its first line, so that the other
done jobs are looked up in the state snapshot. Each case damages one file in one way
(truncation, flipped bits, garbage of the same length, a field of the wrong type, a huge
number; in a cache also with its checksum made valid again, so that the checks of sense are
reached), for several seeds, and resumes.

Whatever the damage: no exception (but the newer-format refusal when the damage wrote a record
``"v"`` above 1), never a call for a job whose ``generated`` record is still intact, never the
folder refused as another job file's, and a damaged cache is reported in one warning line.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import write_jobs
from tests.simclock import run_simulated
from wanbatch import BatchConfig, ExitCode, JournalError, Secret
from wanbatch._cachefile import read_verified, write_verified
from wanbatch._journal import read_journal
from wanbatch._recordcheck import VERSION_LIMIT
from wanbatch.mock import MockConfig, serve_in_thread

DONE, PENDING = 24, 3  # jobs done in the base folder; jobs generated but not saved
CACHES = {".state-snapshot": "QQI", ".resume-prefix": "I", ".views-state": ""}
SEEDS = 6

WRONG_TYPES: list[Any] = ["x", "", [], [1, 2], {}, {"a": 1}, None, True, 1.5, 7]
HUGE: list[Any] = [
    10**30,
    -(10**30),
    10**400,
    2**64,
    2**63,
    -1,
    1e308,
    -1e308,
    float("inf"),
    float("nan"),
]


def _config(base_url: str, concurrency: int = 4) -> BatchConfig:
    return BatchConfig(
        base_url=base_url,
        api_key=Secret("sk-fuzz"),
        concurrency=concurrency,
        download_concurrency=concurrency,
        rps=None,
    )


@pytest.fixture(scope="module")
def mock() -> Iterator[Any]:
    with serve_in_thread(MockConfig(image_size=(8, 8), seed=5)) as handle:
        yield handle


@pytest.fixture(scope="module")
def base(mock: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A job file and its folder: DONE jobs done, PENDING generated whose downloads failed."""
    folder = tmp_path_factory.mktemp("fuzz")
    jobs, out = folder / "jobs.jsonl", folder / "out"
    done = [{"id": f"d{i}", "prompt": f"fuzz done {i}"} for i in range(DONE)]
    write_jobs(jobs, done)
    serial = _config(mock.base_url, concurrency=1)  # records in the same order every time
    assert anyio.run(run_simulated, jobs, out, serial).exit_code == ExitCode.OK
    pending = [{"id": f"g{i}", "prompt": f"fuzz pending {i}"} for i in range(PENDING)]
    write_jobs(jobs, [done[0], pending[0], *done[1:], *pending[1:]])
    mock.configure(truncate_rate=1.0)  # paid for, never saved: the URLs stay in the journal
    try:
        anyio.run(run_simulated, jobs, out, serial)
    finally:
        mock.configure(truncate_rate=0.0)
    state = read_journal(out)
    assert state.status_counts() == {"done": DONE, "generated": PENDING}
    assert all((out / name).is_file() for name in CACHES)
    return jobs, out


# ----------------------------------------------------------------------------- damage


# Each damages bytes at or after ``lo`` (a cache's packed arrays are a small part of it, so
# half the time the damage is aimed at them).


def _truncate(data: bytes, rng: random.Random, lo: int) -> bytes:
    return data[: rng.randrange(lo, len(data))]


def _flip(data: bytes, rng: random.Random, lo: int) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        out[rng.randrange(lo, len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def _garbage(data: bytes, rng: random.Random, lo: int) -> bytes:
    if rng.random() < 0.2:
        return data[:lo] + rng.randbytes(len(data) - lo)  # all of it
    start = rng.randrange(lo, len(data))
    length = rng.randint(1, len(data) - start)
    return data[:start] + rng.randbytes(length) + data[start + length :]


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) below the root of a JSON value."""
    if isinstance(value, (dict, list)):
        for key, child in value.items() if isinstance(value, dict) else enumerate(value):
            yield (*path, key), child
            yield from _nodes(child, (*path, key))


def _kind(value: Any) -> str:
    """A JSON type, ints and floats being one: numbers."""
    return "number" if type(value) in (int, float) else type(value).__name__


def _mutate(doc: Any, rng: random.Random, kind: str) -> Any:
    """``doc`` with one value replaced: by one of another type, or (``huge``) a huge number."""
    nodes = list(_nodes(doc))
    if not nodes:
        return rng.choice(WRONG_TYPES + HUGE)
    if kind == "huge":
        numbers = [n for n in nodes if type(n[1]) in (int, float)]
        path, _old = rng.choice(numbers or nodes)
        new = rng.choice(HUGE)
    else:
        path, old = rng.choice(nodes)
        new = rng.choice([v for v in WRONG_TYPES if _kind(v) != _kind(old)])
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return doc


def _mutate_line(line: bytes, rng: random.Random, kind: str) -> bytes:
    return json.dumps(_mutate(json.loads(line), rng, kind), allow_nan=True).encode()


def _damage_journal(path: Path, kind: str, rng: random.Random) -> None:
    data = path.read_bytes()
    if kind in ("wrong_type", "huge"):
        lines = data.split(b"\n")
        i = rng.randrange(len(lines) - 1)  # the last element is the empty text after "\n"
        lines[i] = _mutate_line(lines[i], rng, kind)
        path.write_bytes(b"\n".join(lines))
    else:
        path.write_bytes(DAMAGE[kind](data, rng, 0))


def _damage_cache(path: Path, kind: str, rng: random.Random) -> None:
    if kind.endswith("_signed"):  # the checksum made valid again: only sense checks remain
        read = read_verified(path, CACHES[path.name])
        assert read is not None
        header, arrays = read
        write_verified(path, _mutate(header, rng, kind.removesuffix("_signed")), arrays)
    elif kind in ("wrong_type", "huge"):
        magic, header, rest = path.read_bytes().split(b"\n", 2)
        path.write_bytes(b"\n".join([magic, _mutate_line(header, rng, kind), rest]))
    else:
        data = path.read_bytes()
        arrays = data.find(b"}\n") + 2  # after the JSON header
        lo = arrays if arrays < len(data) and rng.random() < 0.5 else 0
        path.write_bytes(DAMAGE[kind](data, rng, lo))


DAMAGE = {"truncate": _truncate, "flip": _flip, "garbage": _garbage}
KINDS = ["truncate", "flip", "garbage", "wrong_type", "huge"]
CASES = [("journal.jsonl", kind) for kind in KINDS] + [
    (name, kind) for name in CACHES for kind in [*KINDS, "wrong_type_signed", "huge_signed"]
]


# ----------------------------------------------------------------------------- the check


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _newer_format_record(journal: Path) -> bool:
    for line in journal.read_bytes().splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if (
            isinstance(record, dict)
            and type(record.get("v")) is int
            and 1 < record["v"] < VERSION_LIMIT
        ):
            return True
    return False


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_a_damaged_file_never_crashes_buys_what_is_paid_or_refuses_the_folder(
    mock: Any, base: tuple[Path, Path], tmp_path: Path, name: str, kind: str
) -> None:
    jobs, original = base
    generated = {
        record["id"]: line
        for line in (original / "journal.jsonl").read_bytes().splitlines()
        if (record := json.loads(line))["event"] == "generated"
    }
    prompts = {r["id"]: r["prompt"] for r in map(json.loads, jobs.read_text().splitlines())}
    log = logging.getLogger("wanbatch")
    for seed in range(SEEDS):
        out = tmp_path / f"seed{seed}"
        shutil.copytree(original, out)
        target = out / name
        before = target.read_bytes()
        rng = random.Random(f"{name}/{kind}/{seed}")
        if name == "journal.jsonl":
            _damage_journal(target, kind, rng)
        else:
            _damage_cache(target, kind, rng)
        where = f"{name} {kind} seed {seed}"
        changed = target.read_bytes() != before
        # A whole line, with its line break: a torn last line is cut, not folded.
        journal = b"\n" + (out / "journal.jsonl").read_bytes()
        intact = [i for i, line in generated.items() if b"\n" + line + b"\n" in journal]
        assert name == "journal.jsonl" or len(intact) == DONE + PENDING
        bought = mock.counters().images_by_prompt
        warnings = _Warnings()
        log.addHandler(warnings)
        try:
            summary = anyio.run(run_simulated, jobs, out, _config(mock.base_url))
        except JournalError as exc:  # only a record claiming a newer format may refuse it
            assert name == "journal.jsonl" and _newer_format_record(target), f"{where}: {exc}"
            assert "newer wanbatch" in str(exc), where
            continue
        finally:
            log.removeHandler(warnings)
        assert summary.exit_code in (ExitCode.OK, ExitCode.JOBS_FAILED), where
        now = mock.counters().images_by_prompt
        again = [i for i in intact if now.get(prompts[i], 0) != bought.get(prompts[i], 0)]
        assert again == [], f"{where}: bought again although paid and valid: {again}"
        if name != "journal.jsonl" and not kind.endswith("_signed") and changed:
            said = [w for w in warnings.lines if name in w]
            assert len(said) == 1, f"{where}: {warnings.lines}"  # one line, not one per read
        read_journal(out)  # the folder the run left reads back
        shutil.rmtree(out)
