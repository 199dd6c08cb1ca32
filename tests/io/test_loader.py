"""wanbatch._loader.iter_jobs and wanbatch._imagefiles.ImageResolver: streaming a job file,
local images read once."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from wanbatch._config import GenerationDefaults
from wanbatch._errors import JobFileError
from wanbatch._imagefiles import ImageResolver
from wanbatch._images import ImageError
from wanbatch._jobs import PlannedJob
from wanbatch._loader import iter_jobs

D = GenerationDefaults()
REPO = Path(__file__).resolve().parents[2]


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (256, 256), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (200, 100, 50, 255)[: len(mode)]).save(buf, fmt)
    return buf.getvalue()


def write_lines(path: Path, lines: list[Any], *, newline: str = "\n", bom: bool = False) -> Path:
    text = newline.join(x if isinstance(x, str) else json.dumps(x) for x in lines) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def planned(items: list[PlannedJob | JobFileError]) -> list[PlannedJob]:
    assert all(isinstance(i, PlannedJob) for i in items), [str(i) for i in items]
    return [i for i in items if isinstance(i, PlannedJob)]


# ----------------------------------------------------------------------------- file shapes


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("bom", [False, True])
def test_bom_crlf_and_blank_lines(tmp_path: Path, newline: str, bom: bool) -> None:
    path = write_lines(
        tmp_path / "jobs.jsonl",
        [{"id": "a", "prompt": "x"}, "", "   \t", {"id": "b", "prompt": "y"}, ""],
        newline=newline,
        bom=bom,
    )
    jobs = planned(list(iter_jobs(path, D)))
    assert [(j.id, j.line) for j in jobs] == [("a", 1), ("b", 4)]
    assert jobs[0].source == '{"id": "a", "prompt": "x"}'  # no BOM, no CR


def test_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "y"}', encoding="utf-8")
    assert [j.id for j in planned(list(iter_jobs(path, D)))] == ["a", "b"]


def test_missing_file_and_directory_are_errors(tmp_path: Path) -> None:
    [err] = list(iter_jobs(tmp_path / "nope.jsonl", D))
    assert isinstance(err, JobFileError) and err.field == "file" and "no such file" in err.message
    [err] = list(iter_jobs(tmp_path, D))
    assert isinstance(err, JobFileError) and "is a directory" in err.message


def test_invalid_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n{"prompt": "fine"}\n')
    items = list(iter_jobs(path, D, skip_invalid=True))
    assert isinstance(items[0], PlannedJob) and isinstance(items[2], PlannedJob)
    err = items[1]
    assert isinstance(err, JobFileError)
    assert (err.line, err.field) == (2, "line") and "not valid UTF-8" in err.message


def test_errors_come_in_order_and_skip_invalid_goes_on(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "jobs.jsonl",
        [{"id": "a", "prompt": "x"}, [1], {"id": "c", "promt": "x"}, {"id": "d", "prompt": "y"}],
    )
    items = list(iter_jobs(path, D, skip_invalid=True))
    kinds = [(type(i).__name__, i.line) for i in items]
    assert kinds == [("PlannedJob", 1), ("JobFileError", 2), ("JobFileError", 3), ("PlannedJob", 4)]
    assert "expected a JSON object" in str(items[1])
    assert str(items[2]).endswith("promt: unknown field 'promt' (did you mean 'prompt'?)")


def test_without_skip_invalid_iteration_stops_at_the_first_error(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "jobs.jsonl",
        [{"id": "a", "prompt": "x"}, {"id": "b", "n": "2", "prompt": "x"}, {"prompt": "z"}],
    )
    items = list(iter_jobs(path, D))
    assert isinstance(items[0], PlannedJob)
    assert isinstance(items[1], JobFileError) and (items[1].line, items[1].field) == (2, "n")
    assert len(items) == 2


def test_duplicate_ids_yield_an_error_naming_the_first_line(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "jobs.jsonl",
        [{"id": "x", "prompt": "a"}, {"id": "y", "prompt": "b"}, {"id": "x", "prompt": "c"}],
    )
    items = list(iter_jobs(path, D, skip_invalid=True))
    err = items[2]
    assert isinstance(err, JobFileError)
    assert (err.line, err.field) == (3, "id")
    assert err.message == "duplicate id 'x' (first on line 1)"


def test_identical_lines_without_id_are_duplicates(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "jobs.jsonl", [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "a"}])
    items = list(iter_jobs(path, D, skip_invalid=True))
    assert isinstance(items[2], JobFileError) and "first on line 1" in items[2].message
    assert "derived from the request" in items[2].message


def test_iter_jobs_streams_lazily(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "jobs.jsonl", [{"prompt": f"p{i}"} for i in range(1000)])
    it = iter_jobs(path, D)
    first = next(it)
    assert isinstance(first, PlannedJob) and first.line == 1
    it.close()  # closes the file


# ----------------------------------------------------------------------------- local images


def test_local_images_relative_to_job_file_folder_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub" / "pics").mkdir(parents=True)
    raw = image_bytes("JPEG")
    (tmp_path / "sub" / "pics" / "ref.jpg").write_bytes(raw)
    path = write_lines(
        tmp_path / "sub" / "jobs.jsonl", [{"prompt": "e", "images": ["pics/ref.jpg"]}]
    )
    monkeypatch.chdir(tmp_path)  # the cwd is not the job file's folder
    [job] = planned(list(iter_jobs(path, D)))
    image = job.body["input"]["messages"][0]["content"][1]["image"]
    assert image == "data:image/jpeg;base64," + base64.b64encode(raw).decode()


def test_absolute_path_and_file_uri(tmp_path: Path) -> None:
    img = tmp_path / "elsewhere" / "ref image.png"
    img.parent.mkdir()
    img.write_bytes(image_bytes())
    path = write_lines(
        tmp_path / "jobs.jsonl",
        [
            {"id": "abs", "prompt": "e", "images": [str(img)]},
            {"id": "uri", "prompt": "e", "images": [img.as_uri()]},
            {"id": "rel", "prompt": "e", "images": ["file:elsewhere/ref%20image.png"]},
        ],
    )
    jobs = planned(list(iter_jobs(path, D)))
    uris = {j.body["input"]["messages"][0]["content"][1]["image"] for j in jobs}
    assert len(uris) == 1 and next(iter(uris)).startswith("data:image/png;base64,")


def test_format_is_sniffed_not_taken_from_the_extension(tmp_path: Path) -> None:
    (tmp_path / "really-a-jpeg.png").write_bytes(image_bytes("JPEG"))
    path = write_lines(tmp_path / "j.jsonl", [{"prompt": "e", "images": ["really-a-jpeg.png"]}])
    [job] = planned(list(iter_jobs(path, D)))
    assert job.body["input"]["messages"][0]["content"][1]["image"].startswith("data:image/jpeg;")


@pytest.mark.parametrize(
    ("setup", "ref", "fragment"),
    [
        (None, "missing.png", "no such file"),
        ("dir", "adir", "is a directory"),
        ("alpha", "alpha.png", "alpha"),
        ("small", "small.png", "240-8000 px"),
        ("text", "notes.png", "not a JPEG, PNG, BMP or WEBP"),
        ("gif", "anim.gif", "not a JPEG, PNG, BMP or WEBP"),
        ("big", "big.png", "at most 10 MB"),
        ("fifo", "pipe.png", "not a regular file"),
    ],
)
def test_bad_local_images_name_line_and_field(
    tmp_path: Path, setup: str | None, ref: str, fragment: str
) -> None:
    target = tmp_path / ref
    if setup == "dir":
        target.mkdir()
    elif setup == "alpha":
        target.write_bytes(image_bytes(mode="RGBA"))
    elif setup == "small":
        target.write_bytes(image_bytes(size=(100, 300)))
    elif setup == "text":
        target.write_text("hello")
    elif setup == "gif":
        target.write_bytes(image_bytes("GIF"))
    elif setup == "big":
        with target.open("wb") as fh:
            fh.truncate(11 * 1024 * 1024)
    elif setup == "fifo":
        os.mkfifo(target)
    path = write_lines(
        tmp_path / "jobs.jsonl",
        [{"prompt": "ok"}, {"prompt": "e", "images": ["https://example.com/a.png", ref]}],
    )
    items = list(iter_jobs(path, D, skip_invalid=True))
    err = items[1]
    assert isinstance(err, JobFileError), err
    assert (err.line, err.field) == (2, "images[1]")
    assert fragment in err.message, err.message


def test_data_uri_is_checked(tmp_path: Path) -> None:
    good = "data:image/png;base64," + base64.b64encode(image_bytes()).decode()
    alpha = "data:image/png;base64," + base64.b64encode(image_bytes(mode="RGBA")).decode()
    wrong = "data:image/png;base64," + base64.b64encode(image_bytes("JPEG")).decode()
    path = write_lines(
        tmp_path / "jobs.jsonl",
        [
            {"id": "good", "prompt": "e", "images": [good]},
            {"id": "alpha", "prompt": "e", "images": [alpha]},
            {"id": "wrong", "prompt": "e", "images": [wrong]},
            {"id": "gif", "prompt": "e", "images": ["data:image/gif;base64,R0lG"]},
        ],
    )
    items = list(iter_jobs(path, D, skip_invalid=True))
    assert isinstance(items[0], PlannedJob)
    assert items[0].body["input"]["messages"][0]["content"][1]["image"] == good
    fields = [(e.line, e.field) for e in items[1:] if isinstance(e, JobFileError)]
    assert fields == [(2, "images[0]"), (3, "images[0]"), (4, "images[0]")]


def test_shared_local_image_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "ref.png").write_bytes(image_bytes())
    lines = [
        {"prompt": f"edit {i}", "images": ["img/ref.png" if i % 2 else "./img/../img/ref.png"]}
        for i in range(200)
    ]
    path = write_lines(tmp_path / "jobs.jsonl", lines)

    opened: list[str] = []
    real_open = open

    def counting_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith("ref.png"):
            opened.append(str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    jobs = planned(list(iter_jobs(path, D)))
    assert len(jobs) == 200
    assert len(opened) == 1
    uris = {j.body["input"]["messages"][0]["content"][1]["image"] for j in jobs}
    assert len(uris) == 1


def test_resolver_cache_stats_and_byte_bound(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.png").write_bytes(image_bytes(size=(256, 256 + ord(name))))
    one = len(ImageResolver(str(tmp_path))("a.png"))
    resolver = ImageResolver(str(tmp_path), max_bytes=2 * one + 100)
    for ref in ["a.png", "b.png", "a.png", "b.png", "https://example.com/x.png"]:
        resolver(ref)
    stats = resolver.stats()
    assert (stats.reads, stats.hits, stats.entries) == (2, 2, 2)
    resolver("c.png")  # evicts a.png (least recently used)
    resolver("a.png")
    assert resolver.stats().reads == 4
    assert resolver.stats().bytes <= 2 * one + 100


def test_resolver_caches_errors_too(tmp_path: Path) -> None:
    resolver = ImageResolver(str(tmp_path))
    for _ in range(3):
        with pytest.raises(ImageError, match="no such file"):
            resolver("gone.png")
    assert resolver.stats().hits == 2


def test_resolver_check_only_returns_the_reference(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(image_bytes())
    resolver = ImageResolver(str(tmp_path), embed=False)
    assert resolver("a.png") == "a.png"
    assert resolver.stats().bytes == 0


# ----------------------------------------------------------------------------- shipped jobs


def test_demo_file_plans_both_modes() -> None:
    jobs = planned(list(iter_jobs(REPO / "jobs" / "demo.jsonl", D)))
    assert 5 <= len(jobs) <= 6
    assert {j.interleave for j in jobs} == {True, False}
    for job in jobs:
        assert job.meta and job.seed is not None and not job.id_derived
        for item in job.body["input"]["messages"][0]["content"][1:]:
            assert item["image"].startswith("data:image/")


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "jobs" / "examples").glob("*")))
def test_example_files_are_valid(name: str) -> None:
    items = list(iter_jobs(REPO / "jobs" / "examples" / name, D))
    assert items and planned(items)


def test_shipped_reference_images_fit_the_rules() -> None:
    for img in (REPO / "jobs" / "images").iterdir():
        with Image.open(img) as im:
            assert im.mode == "RGB" and min(im.size) >= 256
        assert img.stat().st_size < 50_000
