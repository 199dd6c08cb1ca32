"""wanbatch._loader.validate_file / format_report / validate_command: one pass, every problem."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from wanbatch._config import GenerationDefaults
from wanbatch._loader import format_report, validate_command, validate_file

D = GenerationDefaults()
REPO = Path(__file__).resolve().parents[2]


def write(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines),
        encoding="utf-8",
    )
    return path


def png(path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), "white").save(buf, "PNG")
    path.write_bytes(buf.getvalue())


def test_reports_every_problem_in_one_pass(tmp_path: Path) -> None:
    png(tmp_path / "ref.png")
    path = write(
        tmp_path / "jobs.jsonl",
        [
            {"id": "ok-1", "prompt": "fine"},  # 1
            "",  # 2 blank
            {"id": "bad-n", "prompt": "x", "images": ["ref.png"], "n": 9},  # 3
            '{"prompt": "unterminated',  # 4
            {"id": "ok-2", "prompt": "x" * 2100, "images": ["ref.png"]},  # 5 warning only
            {"id": "ok-1", "prompt": "dup"},  # 6 duplicate of line 1
            {"prompt": "x", "promt": "y", "seed": -1},  # 7 shape error: rules not reached
            {"id": "bad-img", "prompt": "x", "images": ["nope.png"]},  # 8
        ],
    )
    report = validate_file(path, D)
    got = [(e.line, e.field) for e in report.errors]
    assert got == [(3, "n"), (4, "line"), (6, "id"), (7, "promt"), (8, "images[0]")]
    assert report.errors[2].message == "duplicate id 'ok-1' (first on line 1)"
    assert [(w.line, w.field) for w in report.warnings] == [(5, "prompt")]
    assert (report.lines, report.jobs, report.valid_jobs) == (8, 7, 2)
    assert (report.error_count, report.warning_count, report.ok) == (5, 1, False)
    assert report.image_reads == 1  # ref.png read once for two jobs


def test_duplicate_report_names_both_lines_for_every_repeat(tmp_path: Path) -> None:
    path = write(
        tmp_path / "jobs.jsonl",
        [
            {"id": "a", "prompt": "1"},
            {"id": "b", "prompt": "2"},
            {"id": "a", "prompt": "3"},
            {"id": "b", "prompt": "4"},
            {"id": "a", "prompt": "5"},
        ],
    )
    report = validate_file(path, D)
    assert [str(e) for e in report.errors] == [
        f"{path}:3: id: duplicate id 'a' (first on line 1)",
        f"{path}:4: id: duplicate id 'b' (first on line 2)",
        f"{path}:5: id: duplicate id 'a' (first on line 1)",
    ]


def test_image_budget_for_the_dry_run(tmp_path: Path) -> None:
    path = write(
        tmp_path / "jobs.jsonl",
        [
            {"prompt": "t2i"},  # interleaved, max_images default 1
            {"prompt": "t2i 3", "max_images": 3},
            {"prompt": "edit", "images": ["https://example.com/a.png"], "n": 4},
            {"prompt": "edit", "images": ["https://example.com/a.png"]},  # n default 1
            {"prompt": "bad", "n": 4},  # invalid: not counted
        ],
    )
    report = validate_file(path, D)
    assert (report.images, report.interleaved, report.valid_jobs) == (9, 2, 4)
    defaults = GenerationDefaults(n=2, max_images=2)
    assert validate_file(path, defaults).images == 2 + 3 + 4 + 2


def test_max_errors_caps_the_list_not_the_count(tmp_path: Path) -> None:
    path = write(tmp_path / "jobs.jsonl", [{"prompt": "x", "n": 0, "images": ["a"]}] * 50)
    report = validate_file(path, D, max_errors=10)
    assert len(report.errors) == 10 and report.error_count == 50 and report.truncated
    assert "first 10 errors" in format_report(report)[-1]


def test_missing_file_directory_and_empty_file(tmp_path: Path) -> None:
    report = validate_file(tmp_path / "nope.jsonl", D)
    assert not report.ok and report.errors[0].field == "file"
    assert not validate_file(tmp_path, D).ok
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    empty = validate_file(tmp_path / "empty.jsonl", D)
    assert empty.ok and empty.jobs == 0 and "no jobs" in empty.warnings[0].message


def test_invalid_utf8_and_non_object_lines(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(b'{"prompt": "a"}\n\xff\xfe{}\n["x"]\n"just text"\n{"prompt": "b"}\n')
    report = validate_file(path, D)
    assert [(e.line, e.field) for e in report.errors] == [(2, "line"), (3, "line"), (4, "line")]
    assert "UTF-8" in report.errors[0].message
    assert "expected a JSON object, got an array" in report.errors[1].message
    assert "expected a JSON object, got a string" in report.errors[2].message


def test_format_report_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "jobs.jsonl",
        [
            {"id": "a", "prompt": "x", "negative_prompt": "n" * 600},
            {"id": "b", "promt": "x"},
            {"id": "c", "prompt": "ok", "images": ["ftp://h/x.png"]},
            {"id": "d", "prompt": "ok"},
        ],
    )
    assert format_report(validate_file(path, D)) == [
        f"{path}:1: negative_prompt: warning: negative_prompt is 600 characters; the service "
        "silently truncates it to 500 (API notes §2.2)",
        f"{path}:2: promt: unknown field 'promt' (did you mean 'prompt'?)",
        f"{path}:3: images[0]: unsupported scheme 'ftp:' in 'ftp://h/x.png'; use an http(s):// "
        "URL, a data:image/...;base64, URI or a local file path",
        f"{path}: 2 errors, 1 warning in 4 jobs",
    ]


def test_format_report_valid_file_shows_budget(tmp_path: Path) -> None:
    path = write(tmp_path / "jobs.jsonl", [{"prompt": "x"}, {"prompt": "y", "max_images": 2}])
    assert format_report(validate_file(path, D)) == [
        f"{path}: 0 errors, 0 warnings in 2 jobs; a run buys at most 3 images "
        "(2 interleaved, 0 editing)"
    ]


def test_validate_command_exit_codes(tmp_path: Path) -> None:
    good = write(tmp_path / "good.jsonl", [{"prompt": "x"}])
    bad = write(tmp_path / "bad.jsonl", [{"prompt": "x", "seed": "1"}])
    out = io.StringIO()
    assert validate_command(str(good), D, out) == 0
    assert validate_command(str(bad), D, out) == 2
    assert f"{bad}:1: seed: must be a whole number (a JSON integer)" in out.getvalue()
    warn = write(tmp_path / "warn.jsonl", [{"prompt": "x" * 2001}])
    assert validate_command(str(warn), D, io.StringIO()) == 0  # warnings do not fail


def test_demo_validates_clean() -> None:
    report = validate_file(REPO / "jobs" / "demo.jsonl", D)
    assert report.ok and report.warning_count == 0 and report.jobs == report.valid_jobs
    assert 0 < report.interleaved < report.valid_jobs


def test_validate_is_a_stream_with_flat_memory(tmp_path: Path) -> None:
    """100,000 lines validate in a fresh interpreter; the RSS does not grow like the file."""
    path = tmp_path / "jobs.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(100_000):
            fh.write(json.dumps({"id": f"job-{i:06d}", "prompt": f"a prompt numbered {i}"}) + "\n")
    code = (
        "import resource, sys\n"
        "from wanbatch._config import GenerationDefaults\n"
        "from wanbatch._loader import validate_file\n"
        "validate_file(sys.argv[2], GenerationDefaults())  # warm up imports and caches\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "r = validate_file(sys.argv[1], GenerationDefaults())\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "assert r.ok and r.valid_jobs == 100000, r.errors[:3]\n"
        "print(after - before)\n"
    )
    demo = str(REPO / "jobs" / "demo.jsonl")
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path), demo], capture_output=True, text=True, check=True
    )
    growth_kib = int(proc.stdout.strip())
    # Ids cost 12 bytes a slot (~3 MB here, ~4.5 MB while the table grows); keeping the 5 MB
    # of lines, or a dict of 100,000 id strings (~10 MB), would break this bound.
    assert growth_kib < 6 * 1024, growth_kib


def test_skip_predicate_passes_over_done_lines_but_still_sees_duplicates(tmp_path: Path) -> None:
    from wanbatch._loader import iter_jobs

    path = tmp_path / "jobs.jsonl"
    path.write_text(
        '{"id": "a", "prompt": "one"}\n{"id": "b", "prompt": "two"}\n{"id": "a", "prompt": "x"}\n',
        encoding="utf-8",
    )
    seen: list[str] = []
    report = validate_file(
        path, GenerationDefaults(), skip=lambda i, _t: i == "a", on_job=lambda i, _n: seen.append(i)
    )
    assert report.skipped_done == 1 and report.valid_jobs == 2
    assert seen == ["b"]
    assert [(e.line, e.field) for e in report.errors] == [(3, "id")]
    planned = [
        j
        for j in iter_jobs(
            path, GenerationDefaults(), skip_invalid=True, skip=lambda i, _t: i == "a"
        )
        if not isinstance(j, Exception)
    ]
    assert [j.id for j in planned] == ["b"]


def test_work_starts_at_lets_a_later_pass_begin_after_the_done_prefix(tmp_path: Path) -> None:
    from wanbatch._loader import iter_jobs

    path = tmp_path / "jobs.jsonl"
    lines = [json.dumps({"id": f"d{i}", "prompt": f"p{i}"}) for i in range(3)]
    lines += ['{"prompt": "new one", "id": "n1"}', '{"id": "n2", "prompt": "new two"}']
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    done = {"d0", "d1", "d2"}
    report = validate_file(path, GenerationDefaults(), skip=lambda i, _t: i in done)
    assert report.skipped_done == 3 and report.work_starts_at is not None
    line, offset = report.work_starts_at
    assert line == 4 and path.read_bytes()[offset:].startswith(b'{"prompt": "new one"')
    planned = list(iter_jobs(path, GenerationDefaults(), start=report.work_starts_at))
    assert [(j.id, j.line) for j in planned] == [("n1", 4), ("n2", 5)]  # type: ignore[union-attr]
    all_done = validate_file(path, GenerationDefaults(), skip=lambda _i, _t: True)
    assert all_done.work_starts_at is None
