"""download_image against the mock: what lands under the final name, and what never does."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from tests.conftest import png_info
from wanbatch._download import Superseded, download_image
from wanbatch.mock import MockConfig, serve_in_thread

pytestmark = pytest.mark.anyio


@pytest.fixture
def mock() -> Iterator[Any]:
    with serve_in_thread(MockConfig(image_size=(64, 48), seed=3)) as handle:
        yield handle


def _reference() -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (10, 120, 200)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


async def _image_url(session: aiohttp.ClientSession, base_url: str) -> str:
    content = [{"text": "a fox"}, {"image": _reference()}]
    body = {
        "model": "wan2.6-image",
        "input": {"messages": [{"role": "user", "content": content}]},
        "parameters": {"n": 1, "enable_interleave": False},
    }
    url = base_url + "/services/aigc/multimodal-generation/generation"
    headers = {"Authorization": "Bearer sk-test"}
    async with session.post(url, json=body, headers=headers) as resp:
        answer = await resp.json()
    for item in answer["output"]["choices"][0]["message"]["content"]:
        if "image" in item:
            return str(item["image"])
    raise AssertionError(f"no image in {answer}")


async def test_a_kept_image_is_saved_whole_with_its_sha256(mock: Any, tmp_path: Path) -> None:
    tmp_dir, dest = tmp_path / ".tmp", tmp_path / "a-0.png"
    tmp_dir.mkdir()
    async with aiohttp.ClientSession() as session:
        url = await _image_url(session, mock.base_url)
        saved = await download_image(
            session, url, dest, tmp_dir, timeout=30, max_bytes=1 << 24, keep=lambda: True
        )
    assert png_info(dest) == (saved.width, saved.height) == (64, 48)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == saved.sha256
    assert not list(tmp_dir.iterdir())


async def test_an_image_no_longer_wanted_never_lands_under_its_name(
    mock: Any, tmp_path: Path
) -> None:
    tmp_dir, dest = tmp_path / ".tmp", tmp_path / "a-0.png"
    tmp_dir.mkdir()
    dest.write_bytes(b"the newer generation's image")  # saved while the old one downloaded
    asked: list[bool] = []

    def keep() -> bool:
        asked.append(True)
        return False

    async with aiohttp.ClientSession() as session:
        url = await _image_url(session, mock.base_url)
        with pytest.raises(Superseded):
            await download_image(
                session, url, dest, tmp_dir, timeout=30, max_bytes=1 << 24, keep=keep
            )
    assert asked == [True]  # asked once, after the download and its checks
    assert dest.read_bytes() == b"the newer generation's image"  # not overwritten
    assert not list(tmp_dir.iterdir())  # and no temp file left behind


async def test_a_cut_download_leaves_no_file(tmp_path: Path) -> None:
    from wanbatch._errors import IntegrityError

    tmp_dir = tmp_path / ".tmp"
    tmp_dir.mkdir()
    config = MockConfig(image_size=(64, 48), seed=3, truncate_rate=1.0)
    with serve_in_thread(config) as cutting:
        async with aiohttp.ClientSession() as session:
            url = await _image_url(session, cutting.base_url)
            with pytest.raises(IntegrityError):
                await download_image(
                    session, url, tmp_path / "a-0.png", tmp_dir, timeout=30, max_bytes=1 << 24
                )
    assert not (tmp_path / "a-0.png").exists() and not list(tmp_dir.iterdir())


async def test_a_download_cancelled_during_its_fsync_waits_for_it_and_leaves_no_temp_file(
    mock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_dir, dest = tmp_path / ".tmp", tmp_path / "a-0.png"
    tmp_dir.mkdir()
    entered, release = threading.Event(), threading.Event()
    synced: list[int] = []
    real_fsync = os.fsync

    def held_fsync(fd: int) -> None:  # the disk is slow: the fsync waits until released
        entered.set()
        release.wait(10)
        real_fsync(fd)
        synced.append(fd)

    monkeypatch.setattr(os, "fsync", held_fsync)
    async with aiohttp.ClientSession() as session:
        url = await _image_url(session, mock.base_url)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    functools.partial(
                        download_image, session, url, dest, tmp_dir, timeout=30, max_bytes=1 << 24
                    )
                )
                await anyio.to_thread.run_sync(entered.wait, 10)
                threading.Timer(0.2, release.set).start()  # after the cancellation below
                scope.cancel()
    assert synced  # the cancelled download waited for its fsync, never closing the file under it
    assert not list(tmp_dir.iterdir())  # no temp file left behind
    if dest.exists():  # finished before the cancellation reached it: then it is whole
        assert dest.read_bytes().endswith(b"IEND\xaeB`\x82")
