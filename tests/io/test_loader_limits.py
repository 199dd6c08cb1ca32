"""Validation of what a user gets wrong: absurd sizes, every duplicate, ids in other case, meta
types, and messages that state the rule (no document the user does not have)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from PIL import Image

from tests.io.test_validate import SALT, done_lines, journal_of, write
from wanbatch._config import GenerationDefaults
from wanbatch._donejobs import DoneLines
from wanbatch._journal import read_journal
from wanbatch._loader import iter_jobs
from wanbatch._prefixscan import scan_done_prefix, usable_prefix
from wanbatch._validate import validate_file

D = GenerationDefaults()
MAX_LINE_BYTES = 64 << 20  # the documented limit (wanbatch._lines.MAX_LINE_BYTES)


def errors_of(path: Path, **kwargs: Any) -> list[tuple[int, str, str]]:
    return [(e.line, e.field, e.message) for e in validate_file(path, D, **kwargs).errors]


# --------------------------------------------------------------------------- sizes


def test_a_gigabyte_line_is_refused_with_its_size_without_being_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    gib = 1 << 30
    with path.open("wb") as fh:  # a sparse file: a 1 GiB line of NUL bytes between two jobs
        fh.write(b'{"id": "a", "prompt": "before"}\n')
        fh.truncate(gib)
        fh.seek(gib)
        fh.write(b'\n{"id": "b", "prompt": "after"}\n')
    # In a child limited to 768 MB of address space: reading the line whole would fail there.
    child = textwrap.dedent(
        f"""
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (768 << 20, 768 << 20))
        from wanbatch._config import GenerationDefaults
        from wanbatch._validate import validate_file
        report = validate_file({str(path)!r}, GenerationDefaults())
        print(json.dumps([report.valid_jobs, [str(e) for e in report.errors]]))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    valid, errors = json.loads(proc.stdout)
    assert valid == 2  # the lines around it are read as usual
    assert errors == [
        f"{path}:2: line: is {gib - 32:,} bytes (1.0 GiB); a job line may be at most "
        f"{MAX_LINE_BYTES >> 20} MiB (room for four 10 MB reference images inline)"
    ]


def test_a_line_just_over_the_limit_is_refused_and_iteration_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    long_line = b'{"id": "x", "prompt": "' + b"a" * MAX_LINE_BYTES + b'"}\r\n'
    path.write_bytes(long_line + b'{"id": "b", "prompt": "after"}\n')
    items = list(iter_jobs(path, D, skip_invalid=True))
    assert [type(i).__name__ for i in items] == ["JobFileError", "PlannedJob"]
    assert "is 67,108,889 bytes (64.0 MiB)" in str(items[0])
    assert getattr(items[1], "line", 0) == 2


def test_a_prompt_of_megabytes_is_an_error_a_long_one_a_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path / "jobs.jsonl",
        [
            {"id": "long", "prompt": "x" * 2500},
            {"id": "absurd", "prompt": "x" * 3_000_000},
            {"id": "neg", "prompt": "x", "negative_prompt": "n" * 50_000},
        ],
    )
    report = validate_file(path, D)
    assert [(w.line, w.field) for w in report.warnings] == [(1, "prompt")]
    assert [(e.line, e.field) for e in report.errors] == [
        (2, "prompt"),
        (2, "line"),  # 3 MB besides inline images, too
        (3, "negative_prompt"),
    ]
    assert report.errors[0].message == (
        "prompt is 3,000,000 characters; the service would silently truncate it to 2000, "
        "and over 20,000 wanbatch takes it for a mistake"
    )
    assert "at most 1 MiB besides them" in report.errors[1].message


def test_a_megabyte_of_meta_is_an_error_but_inline_images_do_not_count(tmp_path: Path) -> None:
    noise = Image.frombytes("RGB", (700, 700), os.urandom(700 * 700 * 3))
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    inline = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    assert len(inline) > 1_200_000
    path = write(
        tmp_path / "jobs.jsonl",
        [
            {"id": "img", "prompt": "edit it", "images": [inline]},
            {"id": "meta", "prompt": "x", "meta": {"notes": "m" * 1_100_000}},
            {"id": "params", "prompt": "x", "parameters": {"extra": ["p" * 600_000] * 2}},
        ],
    )
    got = [(line, field) for line, field, _message in errors_of(path)]
    assert got == [(2, "line"), (3, "line")]


def test_a_file_with_only_blank_lines_is_an_error() -> None:
    empty = Path(os.devnull)  # zero bytes
    assert [(line, field) for line, field, _m in errors_of(empty)] == [(0, "file")]


# --------------------------------------------------------------------------- duplicates


def test_a_duplicate_of_an_invalid_line_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path / "jobs.jsonl",
        [
            {"id": "a", "prompt": ""},  # 1 invalid: empty prompt
            {"id": "a", "prompt": "fine"},  # 2 duplicate of 1
            {"id": "b", "promt": "typo"},  # 3 invalid shape, its id still known
            {"id": "b", "prompt": "fine"},  # 4 duplicate of 3
            {"id": "c", "prompt": "x", "n": 0, "images": ["https://h/x.png"]},  # 5 invalid
            {"id": "c", "prompt": "x", "seed": -1},  # 6 invalid and a duplicate of 5
        ],
    )
    report = validate_file(path, D)
    dups = [(e.line, e.message) for e in report.errors if e.field == "id"]
    assert dups == [
        (2, "duplicate id 'a' (first on line 1)"),
        (4, "duplicate id 'b' (first on line 3)"),
        (6, "duplicate id 'c' (first on line 5)"),
    ]
    assert report.valid_jobs == 0 and report.invalid_lines == 6
    # The run's own reader agrees: with skip_invalid nothing is left to run.
    assert not [j for j in iter_jobs(path, D, skip_invalid=True) if not isinstance(j, Exception)]


def test_ids_that_differ_only_in_case_are_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path / "jobs.jsonl",
        [
            {"id": "fox", "prompt": "1"},
            {"id": "Fox", "prompt": "2"},
            {"id": "Cat.v2", "prompt": "3"},
            {"id": "CAT.V2", "prompt": "4"},
            {"id": "cat.v2", "prompt": "5"},
            {"id": "dog", "prompt": "6"},
        ],
    )
    report = validate_file(path, D)
    assert [(e.line, e.field) for e in report.errors] == [(2, "id"), (4, "id"), (5, "id")]
    assert report.errors[0].message.startswith(
        "duplicate id 'Fox' in other letter case (first on line 1): "
    )
    assert "macOS and Windows" in report.errors[0].message
    assert "(first on line 3)" in report.errors[1].message
    assert "(first on line 3)" in report.errors[2].message
    kept = [j.id for j in iter_jobs(path, D, skip_invalid=True) if not isinstance(j, Exception)]
    assert kept == ["fox", "Cat.v2", "dog"]


def test_case_duplicates_of_done_lines_passed_over_unread(tmp_path: Path) -> None:
    fox = '{"id": "Fox", "prompt": "one"}'
    cat = '{"id": "cat", "prompt": "two"}'
    path = tmp_path / "jobs.jsonl"
    clashes = '{"id": "fox", "prompt": "x"}\n{"id": "CAT", "prompt": "y"}\n'
    path.write_text(f"{fox}\n{cat}\n{clashes}")
    done = done_lines({"Fox": fox, "cat": cat})
    report = validate_file(path, D, done=done)
    assert report.skipped_done == 2
    assert [(e.line, e.field) for e in report.errors] == [(3, "id"), (4, "id")]
    assert "'fox' in other letter case (first on line 1)" in report.errors[0].message
    assert "'CAT' in other letter case (first on line 2)" in report.errors[1].message
    # A done line second: the case duplicate is the done line.
    path.write_text(f'{{"id": "FOX", "prompt": "x"}}\n{fox}\n')
    assert [(e.line, e.field) for e in validate_file(path, D, done=done).errors] == [(2, "id")]


def test_a_done_prefix_ends_before_an_id_with_a_capital(tmp_path: Path) -> None:
    texts = {
        "a": '{"id": "a", "prompt": "1"}',
        "b": '{"id": "b", "prompt": "2"}',
        "Fox": '{"id": "Fox", "prompt": "3"}',
        "c": '{"id": "c", "prompt": "4"}',
    }
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(texts.values()) + "\n")
    state = journal_of(tmp_path, texts)
    prefix = scan_done_prefix(path, state, SALT)
    assert prefix is not None and (prefix.jobs, prefix.next_line) == (2, 3)
    with path.open("a") as fh:  # appended later: 'fox' and 'A' clash with lines 3 and 1
        fh.write('{"id": "fox", "prompt": "new"}\n{"id": "A", "prompt": "new"}\n')
    resumed = read_journal(tmp_path)
    usable = usable_prefix(prefix, path, resumed, SALT)
    assert usable is not None
    report = validate_file(path, D, done=DoneLines(resumed, SALT), prefix=usable)
    assert report.skipped_done == 4
    assert [(e.line, e.field) for e in report.errors] == [(5, "id"), (6, "id")]
    assert "(first on line 3)" in report.errors[0].message
    assert "(first on line 1)" in report.errors[1].message


# --------------------------------------------------------------------------- meta types


def test_meta_keys_of_mixed_types_are_warned_once_each(tmp_path: Path) -> None:
    path = write(
        tmp_path / "jobs.jsonl",
        [
            {"id": "a", "prompt": "1", "meta": {"score": 1, "tags": ["x"], "w": 1}},
            {"id": "b", "prompt": "2", "meta": {"score": 2.5, "tags": None, "w": {"k": 1}}},
            {"id": "c", "prompt": "3", "meta": {"score": "high", "tags": ["y", "z"]}},
            {"id": "d", "prompt": "4", "meta": {"score": "low", "tags": [1]}},
        ],
    )
    report = validate_file(path, D)
    assert report.ok
    got = [(w.line, w.field, w.message.split(":")[0]) for w in report.warnings]
    assert got == [
        (2, "meta.w", "an object here, a number on line 1"),
        (3, "meta.score", "a string here, a number on line 1"),
        (4, "meta.tags", "a list whose values differ in type from line 1's"),
    ]
    assert all("metadata.jsonl writes this one as text" in w.message for w in report.warnings)


# --------------------------------------------------------------------------- messages


def test_messages_state_the_rule_and_cite_no_document(tmp_path: Path) -> None:
    url = "https://h/x.png"
    path = write(
        tmp_path / "jobs.jsonl",
        [
            {"id": "a", "prompt": "x", "images": [url], "n": 10},
            {"id": "b", "prompt": "x", "max_images": 9},
            {"id": "c", "prompt": "x", "n": 3},
            {"id": "d", "prompt": "x", "size": "1K"},
            {"id": "e", "prompt": "x", "images": [url], "size": "100*100"},
            {"id": "f", "prompt": "x", "images": [url], "size": "2048*500"},
            {"id": "g", "prompt": "x", "images": [url] * 5},
            {"id": "h", "prompt": "x", "enable_interleave": False},
            {"id": "i", "messages": [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}]},
            {"id": "j", "prompt": "x", "parameters": {"stream": True}},
            {"id": "k", "prompt": "x", "images": [url], "max_images": 2},
            {"id": "l", "prompt": "x", "images": ["data:image/gif;base64,R0lGOD"]},
            {"id": "m", "prompt": "x", "negative_prompt": "n" * 600, "seed": -5},
        ],
    )
    report = validate_file(path, D)
    texts = [str(e) for e in report.errors] + [str(w) for w in report.warnings]
    assert len(texts) == 14
    assert not [t for t in texts if "API notes" in t or "§" in t]
    assert f"{path}:1: n: must be 1-4 in editing mode; got 10" in texts
    assert f"{path}:2: max_images: must be 1-5 in interleaved mode; got 9" in texts
    assert f"{path}:13: seed: must be 0-2147483647; got -5" in texts
