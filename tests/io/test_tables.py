"""CSV, TSV, Parquet and text job files read as job texts (``_tables``, ``_jobsource``), and
checked by ``validate_file`` with errors naming file, row and column."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from wanbatch._config import GenerationDefaults
from wanbatch._errors import JobFileError
from wanbatch._jobinput import JobInput
from wanbatch._jobsource import open_jobs
from wanbatch._validate import validate_file

CAPTION = JobInput(mapping={"prompt": "caption"})


def texts(path: Path, spec: JobInput | None = None) -> list[tuple[int, Any]]:
    opened = open_jobs(path, spec)
    assert not isinstance(opened, JobFileError), opened
    with opened as source:
        return [
            (row, json.loads(item) if isinstance(item, str) else str(item))
            for row, item in source.items()
        ]


def problems(path: Path, spec: JobInput | None = None) -> list[str]:
    report = validate_file(path, GenerationDefaults(), spec=spec)
    return [str(e) for e in report.errors] + [str(w) for w in report.warnings]


def test_csv_quotes_commas_and_line_breaks_inside_cells(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes(
        b"\xef\xbb\xbfid,caption,seed\r\n"
        b'cat,"a cat, ""fluffy"",\r\non a mat",7\r\n'
        b"\r\n"
        b'dog,"say ""hi""",\r\n'
        b"fox,plain,3"  # no line break at the end
    )
    assert texts(path, CAPTION) == [
        (2, {"id": "cat", "prompt": 'a cat, "fluffy",\r\non a mat', "seed": 7}),
        (4, {"id": "dog", "prompt": 'say "hi"'}),  # row 3 is blank: a row all the same
        (5, {"id": "fox", "prompt": "plain", "seed": 3}),
    ]
    report = validate_file(path, GenerationDefaults(), spec=CAPTION)
    assert report.ok and report.valid_jobs == 3 and report.lines == 5


def test_tsv_and_text_files(tmp_path: Path) -> None:
    tsv = tmp_path / "jobs.tsv"
    tsv.write_text('prompt\tsize\tsource\na cat\t1280*1280\tweb\n"a\ttab"\t\t\n', encoding="utf-8")
    assert texts(tsv) == [
        (2, {"prompt": "a cat", "size": "1280*1280", "meta": {"source": "web"}}),
        (3, {"prompt": "a\ttab", "meta": {"source": None}}),
    ]
    txt = tmp_path / "prompts.txt"
    txt.write_bytes(b"\xef\xbb\xbfa red fox\r\n\r\n  \nblue whale, at dusk\n")
    assert texts(txt) == [(1, {"prompt": "a red fox"}), (4, {"prompt": "blue whale, at dusk"})]
    assert validate_file(txt, GenerationDefaults()).valid_jobs == 2


def test_format_option_overrides_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "jobs.data"
    path.write_text("prompt,seed\na cat,1\n", encoding="utf-8")
    assert texts(path, JobInput("csv")) == [(2, {"prompt": "a cat", "seed": 1})]
    report = validate_file(path, GenerationDefaults())  # read as JSONL: not JSON
    assert not report.ok and "not valid JSON" in str(report.errors[0])


def test_errors_name_file_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text(
        "id,caption,seed,watermark,score\n"
        "a,a cat,7,true,1\n"
        "b,a dog,seven,maybe,x\n"
        "c,,3,,2\n"
        "d,a fox,1,,\n"
        "d,again,2,,3,extra\n",
        encoding="utf-8",
    )
    found = problems(path, CAPTION)
    assert f'{path}:3: seed: must be a whole number (a JSON integer), got "seven"' in found
    assert any(p.startswith(f"{path}:3: watermark: must be true or false") for p in found)
    assert any(p.startswith(f"{path}:4: caption (prompt): missing") for p in found)
    assert any(p.startswith(f"{path}:6: row: has 6 cells but the header names 5") for p in found)
    # meta columns are text in a CSV: no type warning; the id check works across rows
    assert not any(":5:" in p for p in found)


def test_header_and_file_problems(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text("text,seed\na cat,1\n", encoding="utf-8")
    (err,) = validate_file(path, GenerationDefaults(), spec=CAPTION).errors
    assert str(err).startswith(f"{path}:1: header: no column 'caption' (--map prompt=caption)")
    path.write_text("", encoding="utf-8")
    (err,) = validate_file(path, GenerationDefaults()).errors
    assert "no header row" in str(err)
    path.write_bytes(b"prompt\nok\nbad \xff here\n")
    (err,) = validate_file(path, GenerationDefaults()).errors
    assert str(err).startswith(f"{path}:3: file: not valid UTF-8")
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text('{"prompt": "x"}\n', encoding="utf-8")
    (err,) = validate_file(jsonl, GenerationDefaults(), spec=CAPTION).errors
    assert "--map is for CSV, TSV and Parquet" in str(err)


def test_duplicate_ids_across_rows(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text("id,prompt\na,x\nb,y\nA,z\n", encoding="utf-8")
    (err,) = validate_file(path, GenerationDefaults()).errors
    assert str(err).startswith(f"{path}:4: id:")


def test_parquet_values_keep_their_types(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "jobs.parquet"
    table = pa.table(
        {
            "caption": ["a cat", "a dog", None],
            "seed": [1.0, None, 3.0],  # an int column with a gap, as pandas writes it
            "images": [None, ["ref.png"], None],
            "score": [0.5, 1.5, None],
            "tags": [["x"], [], None],
        }
    )
    pq.write_table(table, path, row_group_size=2)
    (tmp_path / "ref.png").write_bytes(b"")
    assert texts(path, CAPTION) == [
        (1, {"prompt": "a cat", "seed": 1, "meta": {"score": 0.5, "tags": ["x"]}}),
        (2, {"prompt": "a dog", "images": ["ref.png"], "meta": {"score": 1.5, "tags": []}}),
        (3, {"seed": 3, "meta": {"score": None, "tags": None}}),
    ]
    found = problems(path, CAPTION)
    assert any(p.startswith(f"{path}:3: caption (prompt): missing") for p in found)
    assert any(p.startswith(f"{path}:2: images[0]:") for p in found)  # the empty PNG


def test_parquet_without_pyarrow_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "jobs.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    (err,) = validate_file(path, GenerationDefaults()).errors
    assert str(err) == (
        f"{path}:0: file: reading a Parquet job file needs pyarrow: pip install 'wanbatch[parquet]'"
    )


def test_a_damaged_parquet_file_is_an_error(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "jobs.parquet"
    path.write_bytes(b"not parquet at all")
    (err,) = validate_file(path, GenerationDefaults()).errors
    assert str(err).startswith(f"{path}:0: file: not a readable Parquet file")


def test_sweep_over_table_rows_and_jsonl_lines(tmp_path: Path) -> None:
    spec = JobInput(mapping={"prompt": "caption"}).with_sweep("seed=1,2")
    path = tmp_path / "jobs.csv"
    path.write_text("caption,id\na cat,cat\na dog,\n", encoding="utf-8")
    items = texts(path, spec)
    assert [(row, job["id"], job["seed"]) for row, job in items][:2] == [
        (2, "cat.seed-1", 1),
        (2, "cat.seed-2", 2),
    ]
    derived = items[2][1]["id"]
    assert derived.startswith("j") and derived.endswith(".seed-1") and items[3][0] == 3
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text('{"id": "cat", "prompt": "a cat", "seed": 9}\n', encoding="utf-8")
    assert texts(jsonl, JobInput().with_sweep("seed=1,2")) == [
        (1, {"id": "cat.seed-1", "prompt": "a cat", "seed": 1}),
        (1, {"id": "cat.seed-2", "prompt": "a cat", "seed": 2}),
    ]
    report = validate_file(jsonl, GenerationDefaults(), spec=JobInput().with_sweep("seed=1-3"))
    assert report.ok and report.valid_jobs == 3 and report.lines == 1
    bad = JobInput().with_sweep("size=9*9")
    found = problems(jsonl, bad)
    assert found and all(p.startswith(f"{jsonl}:1: size (--sweep):") for p in found)


def test_parquet_image_bytes_become_data_uris_and_stay_out_of_meta(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    png = (REPO / "jobs" / "images" / "cat.png").read_bytes()
    path = tmp_path / "edits.parquet"
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    pq.write_table(
        pa.table(
            {
                "instruction": ["make it blue", "make it red"],
                "source": pa.array(
                    [{"bytes": png, "path": "cat.png"}, {"bytes": png, "path": None}],
                    type=image_type,
                ),
                "target": pa.array([png, b"junk"], type=pa.binary()),
                "split": ["a", "b"],
            }
        ),
        path,
    )
    spec = JobInput(mapping={"prompt": "instruction", "images": "source"})
    (first, second) = texts(path, spec)
    assert first[1]["images"][0].startswith("data:image/png;base64,iVBOR")
    assert first[1]["meta"] == {"split": "a"}  # the bytes of "target" are left out
    assert second[1]["images"] == first[1]["images"]
    report = validate_file(path, GenerationDefaults(), spec=spec)
    assert report.ok and report.valid_jobs == 2, report.errors


def test_a_bad_row_is_an_error_and_the_rows_after_it_are_still_read(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes(b"prompt\na\nb\rc\ncaf\xe9\nd\n")  # a stray CR in row 3, Latin-1 in row 4
    found = problems(path)
    assert any(p.startswith(f"{path}:3: row:") and "carriage return" in p for p in found)
    assert any(p.startswith(f"{path}:4: file:") and "UTF-8" in p for p in found)
    prompts = [item["prompt"] for _, item in texts(path) if isinstance(item, dict)]
    assert prompts == ["a", "d"]


def test_a_quote_never_closed_is_an_error_not_one_long_prompt(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text('prompt,seed\n"unterminated,1\ndog,2\n')
    assert any("never closed" in p for p in problems(path))


def test_old_mac_line_ends_are_refused_plainly(tmp_path: Path) -> None:
    csv_path, txt_path = tmp_path / "mac.csv", tmp_path / "mac.txt"
    csv_path.write_bytes(b"prompt,seed\rcat,1\rdog,2\r")
    txt_path.write_bytes(b"cat\rdog\r")
    assert [p for p in problems(csv_path) if "LF or CRLF line ends" in p]
    assert problems(txt_path) == [
        f"{txt_path}:1: line: holds a carriage return (CR): save the file with LF or CRLF line ends"
    ]
