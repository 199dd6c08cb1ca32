"""download_image against the mock: what lands under the final name, and what never does."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
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


async def test_with_a_hasher_the_helper_process_gives_the_sha256(mock: Any, tmp_path: Path) -> None:
    from wanbatch._hasher import FileHasher

    tmp_dir = tmp_path / ".tmp"
    tmp_dir.mkdir()
    hasher = FileHasher(min_bytes=1)  # every image to the helper, small ones too
    try:
        async with aiohttp.ClientSession() as session:
            url = await _image_url(session, mock.base_url)
            for k in range(3):
                dest = tmp_path / f"a-{k}.png"
                saved = await download_image(
                    session, url, dest, tmp_dir, timeout=30, max_bytes=1 << 24, hasher=hasher
                )
                assert hashlib.sha256(dest.read_bytes()).hexdigest() == saved.sha256
        assert (hasher.answered, hasher.fallbacks) == (3, 0)  # all three from the helper
    finally:
        await hasher.aclose()
    assert not list(tmp_dir.iterdir())


async def test_a_cut_download_with_a_hasher_leaves_no_file_and_the_helper_usable(
    tmp_path: Path,
) -> None:
    from wanbatch._errors import IntegrityError
    from wanbatch._hasher import FileHasher

    tmp_dir = tmp_path / ".tmp"
    tmp_dir.mkdir()
    hasher = FileHasher(min_bytes=1)
    config = MockConfig(image_size=(64, 48), seed=3, truncate_rate=1.0)
    try:
        with serve_in_thread(config) as cutting:
            async with aiohttp.ClientSession() as session:
                url = await _image_url(session, cutting.base_url)
                with pytest.raises(IntegrityError):
                    await download_image(
                        session,
                        url,
                        tmp_path / "a-0.png",
                        tmp_dir,
                        timeout=30,
                        max_bytes=1 << 24,
                        hasher=hasher,
                    )
        assert not (tmp_path / "a-0.png").exists() and not list(tmp_dir.iterdir())
        assert hasher.usable and not hasher._pending
        assert (hasher.answered, hasher.fallbacks) == (0, 0)  # abandoned, never answered
    finally:
        await hasher.aclose()
