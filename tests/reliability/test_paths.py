"""Paths and sizes: job ids never escape the output folder, symlinks in it are refused or replaced
(not followed), downloads are size-capped, reference images follow the documented rule."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import write_jobs
from wanbatch import BatchConfig, InvalidJobs, OutputError, Secret, run_batch
from wanbatch._config import GenerationDefaults
from wanbatch._download import download_image
from wanbatch._errors import IntegrityError, JobFileError
from wanbatch._jobs import check_id
from wanbatch._loader import iter_jobs
from wanbatch._urls import image_filename
from wanbatch.mock import MockConfig, serve_in_thread

pytestmark = pytest.mark.anyio

BAD_IDS = [
    "../x",
    "..",
    ".",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "CON",
    "con.txt",
    "NUL",
    "x" * 129,
    "a\uff0fb",  # fullwidth solidus
    "a\u202eb",  # right-to-left override
    "a\x00b",
    "",
    " a",
    "a.",
    "-rf",
    "\u0430bc",  # Cyrillic a
]

#: Refused by job validation only (harmless on POSIX, unusable file names on Windows).
WINDOWS_ONLY = {"CON", "con.txt", "NUL", "a."}


@pytest.mark.parametrize("job_id", BAD_IDS)
def test_unsafe_ids_are_rejected_everywhere(tmp_path: Path, job_id: str) -> None:
    assert check_id(job_id) is not None
    if job_id not in WINDOWS_ONLY:  # the file-name layer refuses traversal too (defence in depth)
        with pytest.raises(ValueError):
            image_filename(job_id, 0)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"id": job_id, "prompt": "p"}) + "\n", encoding="utf-8")
    items = list(iter_jobs(jobs, GenerationDefaults(), skip_invalid=True))
    assert len(items) == 1 and isinstance(items[0], JobFileError)
    assert items[0].line == 1 and items[0].field == "id"


async def test_a_file_of_unsafe_ids_writes_nothing_anywhere(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    jobs = work / "jobs.jsonl"
    jobs.write_text(
        "".join(json.dumps({"id": i, "prompt": f"p{n}"}) + "\n" for n, i in enumerate(BAD_IDS)),
        encoding="utf-8",
    )
    before = sorted(p for p in tmp_path.rglob("*"))
    config = BatchConfig(base_url="http://127.0.0.1:9/api/v1", api_key=Secret("sk-p"), rps=None)
    with pytest.raises(InvalidJobs) as info:
        await run_batch(jobs, work / "out", config)
    assert info.value.total == len(BAD_IDS)
    assert sorted(p for p in tmp_path.rglob("*")) == before  # not even the out folder
    # --skip-invalid: with nothing valid to run it is the same error; still nothing written.
    with pytest.raises(InvalidJobs):
        await run_batch(jobs, work / "out", config.replace(skip_invalid=True))
    assert sorted(p for p in tmp_path.rglob("*")) == before


async def test_tmp_symlink_is_refused_and_an_image_symlink_is_replaced_not_followed(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("do not touch")
    with serve_in_thread(MockConfig(image_size=(16, 16))) as mock:
        config = BatchConfig(base_url=mock.base_url, api_key=Secret("sk-p"), rps=None)
        jobs = write_jobs(tmp_path / "jobs.jsonl", [{"id": "s0", "prompt": "symlink"}])
        out = tmp_path / "out"
        out.mkdir()
        (out / ".tmp").symlink_to(outside)
        with pytest.raises(OutputError, match="symbolic link"):
            await run_batch(jobs, out, config)
        (out / ".tmp").unlink()
        (out / "images").mkdir(exist_ok=True)
        (out / "images" / "s0-0.png").symlink_to(victim)  # planted before the run
        summary = await run_batch(jobs, out, config)
    assert summary.jobs_done == 1
    assert victim.read_text() == "do not touch"
    final = out / "images" / "s0-0.png"
    assert not final.is_symlink() and final.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]


@pytest.fixture
async def huge_server() -> AsyncIterator[str]:
    """127.0.0.1 server: /endless streams zeros forever, /declared claims 10 GB."""

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"\x89PNG\r\n\x1a\n" + b"\x00" * 65528
        for _ in range(100_000):  # bounded: ~6.5 GB at most, the client stops far earlier
            await resp.write(chunk)
        return resp

    async def declared(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(10 * 1024**3)})
        await resp.prepare(request)
        await resp.write(b"\x89PNG\r\n\x1a\n")
        return resp

    app = web.Application()
    app.router.add_get("/endless", endless)
    app.router.add_get("/declared", declared)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("path", ["/endless", "/declared"])
async def test_a_huge_or_endless_download_is_cut_off_at_the_cap(
    huge_server: str, tmp_path: Path, path: str
) -> None:
    tmp_dir, dest = tmp_path / ".tmp", tmp_path / "images" / "big-0.png"
    tmp_dir.mkdir()
    dest.parent.mkdir()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(IntegrityError, match="cap") as info:
            await download_image(
                session, huge_server + path, dest, tmp_dir, timeout=30, max_bytes=1_000_000
            )
    assert "1000000-byte cap" in str(info.value)
    assert not dest.exists() and not list(tmp_dir.iterdir())


# --------------------------------------------------------------------------- reference images


def test_reference_image_rule(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "jobs"
    folder.mkdir()
    Image.new("RGB", (300, 300), (1, 2, 3)).save(folder / "in.png")
    Image.new("RGB", (300, 300), (4, 5, 6)).save(tmp_path / "up.png")
    (folder / "link.png").symlink_to(tmp_path / "up.png")
    (folder / "notes.png").write_text("not really an image")
    (folder / "secret-link.png").symlink_to("/etc/passwd")
    results = dict(
        zip(
            refs := [
                "in.png",  # relative to the job file's folder
                "../up.png",  # a relative path may leave it: the job file is the user's own
                "link.png",  # symlinks are followed, like any local path
                f"file://{folder / 'in.png'}",
                "https://example.com/a.png",
                "data:image/png;base64,AAAA",  # decodes, but not an image: refused
                "ftp://example.com/a.png",
                "file://evil.example/x.png",
                "javascript:alert(1)",
                "gopher://x/y",
                "notes.png",  # not an image by its bytes
                "secret-link.png",  # a symlink to a non-image: refused for its content
                "/dev/zero",  # not a regular file
                "in\x00.png",
            ],
            _check(tmp_path, refs),
            strict=True,
        )
    )
    accepted = [r for r, err in results.items() if err is None]
    assert accepted == [
        "in.png",
        "../up.png",
        "link.png",
        f"file://{folder / 'in.png'}",
        "https://example.com/a.png",
    ]
    assert "unsupported scheme 'ftp:'" in str(results["ftp://example.com/a.png"])
    assert "remote host" in str(results["file://evil.example/x.png"])
    assert "not a regular file" in str(results["/dev/zero"])
    assert "not a JPEG, PNG" in str(results["secret-link.png"])


def _check(tmp_path: Path, refs: list[str]) -> list[str | None]:
    jobs = tmp_path / "jobs" / "jobs.jsonl"
    jobs.write_text(
        "".join(
            json.dumps({"id": f"r{n}", "prompt": "p", "images": [ref]}) + "\n"
            for n, ref in enumerate(refs)
        ),
        encoding="utf-8",
    )
    out: list[str | None] = []
    for item in iter_jobs(jobs, GenerationDefaults(), skip_invalid=True):
        out.append(str(item) if isinstance(item, JobFileError) else None)
    return out
