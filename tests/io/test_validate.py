"""wanbatch._validate.validate_file / format_report / validate_command: one pass, every problem."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from tests.conftest import record
from wanbatch._config import GenerationDefaults
from wanbatch._donejobs import DoneLines, line_hash
from wanbatch._journal import Journal, read_journal
from wanbatch._prefixcache import read_prefix, write_prefix
from wanbatch._prefixscan import scan_done_prefix, usable_prefix
from wanbatch._state import RunState, replay
from wanbatch._validate import format_report, validate_command, validate_file

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
    assert not empty.ok and empty.jobs == 0 and "no jobs" in empty.errors[0].message


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
        "silently truncates it to 500",
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
        "from wanbatch._validate import validate_file\n"
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


SALT = GenerationDefaults().model_dump_json()


def done_lines(texts: dict[str, str], newer: dict[str, str] | None = None) -> DoneLines:
    """A real journal fold in which each id of ``texts`` was generated from that line and saved;
    ``newer`` adds a later record per id (``"generated"``: being generated again, ``"failed"``)."""
    records: list[str] = []
    for job_id, text in texts.items():
        url = f"http://127.0.0.1:9/{job_id}.png?Expires=9999999999"
        records.append(
            json.dumps(
                {
                    "v": 1,
                    "event": "generated",
                    "id": job_id,
                    "line": line_hash(text, SALT),
                    "images": [{"url": url, "expires": 9999999999}],
                }
            )
        )
        records.append(json.dumps({"v": 1, "event": "saved", "id": job_id, "k": 0}))
    for job_id, event in (newer or {}).items():
        url = f"http://127.0.0.1:9/{job_id}-2.png?Expires=9999999999"
        extra = {"images": [{"url": url, "expires": 9999999999}]} if event == "generated" else {}
        records.append(json.dumps({"v": 1, "event": event, "id": job_id, **extra}))
    return DoneLines(replay(records), SALT)


def test_done_lines_are_passed_over_but_still_count_for_duplicates(tmp_path: Path) -> None:
    from wanbatch._loader import iter_jobs

    a = '{"id": "a", "prompt": "one"}'
    path = tmp_path / "jobs.jsonl"
    path.write_text(f'{a}\n{{"id": "b", "prompt": "two"}}\n{{"id": "a", "prompt": "x"}}\n{a}\n')
    done = done_lines({"a": a})
    seen: list[str] = []
    report = validate_file(
        path, GenerationDefaults(), done=done, on_job=lambda i, _n, _m: seen.append(i)
    )
    assert report.skipped_done == 1 and report.valid_jobs == 2
    assert seen == ["b"]
    # A changed line under a done id, and the same done line again: both duplicates of line 1.
    assert [(e.line, e.field) for e in report.errors] == [(3, "id"), (4, "id")]
    assert all("(first on line 1)" in e.message and "'a'" in e.message for e in report.errors)
    planned = [
        j
        for j in iter_jobs(path, GenerationDefaults(), skip_invalid=True, done=done)
        if not isinstance(j, Exception)
    ]
    assert [j.id for j in planned] == ["b"]


def test_a_done_line_after_a_new_line_with_its_id_is_the_duplicate(tmp_path: Path) -> None:
    a = '{"id": "a", "prompt": "one"}'
    path = tmp_path / "jobs.jsonl"
    path.write_text(f'{{"id": "a", "prompt": "changed"}}\n{a}\n')
    report = validate_file(path, GenerationDefaults(), done=done_lines({"a": a}))
    assert [(e.line, e.field) for e in report.errors] == [(2, "id")]
    assert "(first on line 1)" in report.errors[0].message


def test_only_unchanged_lines_of_finished_jobs_are_passed_over(tmp_path: Path) -> None:
    texts = {k: json.dumps({"id": k, "prompt": f"prompt {k}"}) for k in "abcd"}
    path = tmp_path / "jobs.jsonl"
    edited = texts["b"].replace("prompt b", "prompt B")
    # BOM on line 1 and CRLF line ends: the bytes hashed are those of the decoded line.
    body = "\r\n".join([texts["a"], edited, texts["c"], texts["d"]]) + "\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    done = done_lines(texts, newer={"c": "generated", "d": "failed"})
    seen: list[str] = []
    report = validate_file(
        path, GenerationDefaults(), done=done, on_job=lambda i, _n, _m: seen.append(i)
    )
    assert report.ok and report.valid_jobs == 4
    # b was edited; c is being generated again (a newer record); a failure after done is moot.
    assert seen == ["b", "c"] and report.skipped_done == 2
    assert report.work_starts_at is not None and report.work_starts_at[0] == 2


def test_work_starts_at_lets_a_later_pass_begin_after_the_done_prefix(tmp_path: Path) -> None:
    from wanbatch._loader import iter_jobs

    path = tmp_path / "jobs.jsonl"
    lines = [json.dumps({"id": f"d{i}", "prompt": f"p{i}"}) for i in range(3)]
    new = ['{"prompt": "new one", "id": "n1"}', '{"id": "n2", "prompt": "new two"}']
    path.write_bytes(("\r\n".join(lines + new) + "\r\n").encode())
    done = done_lines({f"d{i}": text for i, text in enumerate(lines)})
    report = validate_file(path, GenerationDefaults(), done=done)
    assert report.skipped_done == 3 and report.work_starts_at is not None
    line, offset = report.work_starts_at
    assert line == 4 and path.read_bytes()[offset:].startswith(b'{"prompt": "new one"')
    planned = list(iter_jobs(path, GenerationDefaults(), start=report.work_starts_at))
    assert [(j.id, j.line) for j in planned] == [("n1", 4), ("n2", 5)]  # type: ignore[union-attr]
    path.write_bytes(("\n".join(lines) + "\n").encode())
    all_done = validate_file(path, GenerationDefaults(), done=done)
    assert all_done.work_starts_at is None and all_done.skipped_done == 3


def journal_of(out: Path, texts: dict[str, str]) -> RunState:
    """A real journal in ``out`` in which each id of ``texts`` was generated and saved."""
    journal = Journal(out)
    journal.open()
    for job_id, text in texts.items():
        img = [{"url": f"http://127.0.0.1:9/{job_id}.png", "expires": None}]
        journal.append(record("generated", id=job_id, line=line_hash(text, SALT), images=img))
        journal.append(record("saved", id=job_id, k=0, file=f"images/{job_id}-0.png"))
    journal.close()
    return read_journal(out, write_snapshot=True)


def done_job_file(folder: Path, count: int, name: str = "d") -> tuple[Path, RunState]:
    """A job file of ``count`` lines, all generated and saved in ``folder``'s journal."""
    ids = [f"{name}{i}" for i in range(count)]
    texts = {job_id: json.dumps({"id": job_id, "prompt": f"p{i}"}) for i, job_id in enumerate(ids)}
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(texts.values()) + "\n")
    return path, journal_of(folder, texts)


def test_a_done_prefix_is_not_read_again_and_still_catches_duplicates(tmp_path: Path) -> None:
    texts = {f"d{i}": json.dumps({"id": f"d{i}", "prompt": f"p{i}"}) for i in range(4)}
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(texts.values()) + "\n\n")
    state = journal_of(tmp_path, texts)
    assert state.source is not None
    prefix = scan_done_prefix(path, state, SALT)
    assert prefix is not None and (prefix.jobs, prefix.next_line) == (4, 6)  # 5 is blank
    write_prefix(tmp_path, prefix)
    loaded = read_prefix(tmp_path)
    assert loaded is not None and loaded.first.tolist() == prefix.first.tolist()
    # New jobs appended: one new, one reusing the id of line 3 (never read again).
    size = path.stat().st_size
    assert prefix.size == size
    with path.open("a") as fh:
        fh.write('{"id": "n1", "prompt": "new"}\n{"id": "d2", "prompt": "clash"}\n')
    resumed = read_journal(tmp_path)
    usable = usable_prefix(loaded, path, resumed, SALT)
    assert usable is not None
    seen: list[str] = []
    report = validate_file(
        path,
        GenerationDefaults(),
        done=DoneLines(resumed, SALT),
        prefix=usable,
        on_job=lambda i, _n, _m: seen.append(i),
    )
    assert seen == ["n1"] and report.skipped_done == 4 and report.valid_jobs == 5
    assert [(e.line, e.field) for e in report.errors] == [(7, "id")]
    assert "(first on line 3)" in report.errors[0].message
    assert report.lines == 7 and report.work_starts_at == (6, size)


def test_a_done_prefix_is_dropped_when_anything_it_rests_on_changed(tmp_path: Path) -> None:
    path, state = done_job_file(tmp_path, 3)
    prefix = scan_done_prefix(path, state, SALT)
    assert prefix is not None and usable_prefix(prefix, path, state, SALT) is prefix
    # Other run defaults: every line hash differs.
    assert usable_prefix(prefix, path, state, SALT + " ") is None
    # The job file's first bytes changed (same length).
    original = path.read_bytes()
    path.write_bytes(original.replace(b"p0", b"P0"))
    assert usable_prefix(prefix, path, state, SALT) is None
    path.write_bytes(original[:-5])  # cut short
    assert usable_prefix(prefix, path, state, SALT) is None
    path.write_bytes(original)
    # The journal grew after the prefix was taken (a killed run): its state is another one.
    journal = Journal(tmp_path)
    journal.open()
    journal.append(record("failed", id="x", code="X", message="m", source="{}"))
    journal.close()
    grown = read_journal(tmp_path)
    assert grown.source is None and usable_prefix(prefix, path, grown, SALT) is None
    # Nothing done: no prefix at all.
    assert scan_done_prefix(path, RunState(), SALT) is None


def test_a_damaged_prefix_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / ".resume-prefix").write_bytes(b'{"format": 1, "done": 5}\n\x00\x01')
    assert read_prefix(tmp_path) is None
    (tmp_path / ".resume-prefix").write_bytes(b"not json\n")
    assert read_prefix(tmp_path) is None


def _same_prefix(a: Any, b: Any) -> bool:
    fields = ("source", "salt", "size", "next_line", "jobs", "digest")
    return (
        all(getattr(a, f) == getattr(b, f) for f in fields) and a.first.tolist() == b.first.tolist()
    )


def test_the_end_of_a_run_scans_on_from_the_prefix_it_began_with(tmp_path: Path) -> None:
    from array import array

    path, start_state = done_job_file(tmp_path, 30, "job-")
    start = scan_done_prefix(path, start_state, SALT)
    assert start is not None and start.jobs == 30
    start_keys = array("Q", start_state.done.arrays()[0])
    # The run adds 40 jobs whose ids sort among the old ones (every done index moves), does 35,
    # and line 66 repeats the id of line 7: the prefix must end before it.
    new = {f"job-{i}x": json.dumps({"id": f"job-{i}x", "prompt": f"q{i}"}) for i in range(40)}
    lines = list(new.values())
    lines[35] = json.dumps({"id": "job-6", "prompt": "again"})
    with path.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    end_state = journal_of(tmp_path, dict(list(new.items())[:35]))
    full = scan_done_prefix(path, end_state, SALT)
    assert full is not None and (full.jobs, full.next_line) == (65, 66)
    went_on = scan_done_prefix(path, end_state, SALT, start=start, start_keys=start_keys)
    assert went_on is not None, "no prefix"
    assert (went_on.jobs, went_on.next_line, went_on.size) == (full.jobs, full.next_line, full.size)
    assert _same_prefix(went_on, full)
    # A job file edited inside the old prefix during the run: every line is checked again.
    path.write_bytes(path.read_bytes().replace(b'"p3"', b'"P3"', 1))
    full = scan_done_prefix(path, end_state, SALT)
    assert full is not None and full.jobs == 3  # line 4 changed: the prefix ends before it
    went_on = scan_done_prefix(path, end_state, SALT, start=start, start_keys=start_keys)
    assert went_on is not None, "no prefix"
    assert (went_on.jobs, went_on.next_line, went_on.size) == (full.jobs, full.next_line, full.size)
    assert _same_prefix(went_on, full)


def test_a_prefix_scan_from_the_start_of_the_run_covers_a_file_with_no_new_line(
    tmp_path: Path,
) -> None:
    from array import array

    path, state = done_job_file(tmp_path, 5)
    start = scan_done_prefix(path, state, SALT)
    assert start is not None
    keys = array("Q", state.done.arrays()[0])
    again = scan_done_prefix(path, state, SALT, start=start, start_keys=keys)
    assert again is not None and _same_prefix(again, start)


def test_a_prefix_never_ends_inside_a_line(tmp_path: Path) -> None:
    from array import array

    a, b, c = (json.dumps({"id": i, "prompt": i * 2}) for i in "abc")
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(f"{a}\n{b}".encode())  # no line break after the last line
    state = journal_of(tmp_path, {"a": a, "b": b})
    start = scan_done_prefix(path, state, SALT)
    # Text appended later would continue line 2, so the prefix stops where line 2 starts.
    assert start is not None and (start.jobs, start.next_line, start.size) == (1, 2, len(a) + 1)
    keys = array("Q", state.done.arrays()[0])
    for grown in (f"{a}\n{b}\n{c}\n", f"{a}\n{b}{c}\n"):  # a new line; or `echo >>` gluing one
        path.write_bytes(grown.encode())
        full = scan_done_prefix(path, state, SALT)
        went_on = scan_done_prefix(path, state, SALT, start=start, start_keys=keys)
        assert full is not None and went_on is not None and _same_prefix(went_on, full)
    assert full.jobs == 1  # line 2 is now "b" and "c" glued: not the done job b any more
