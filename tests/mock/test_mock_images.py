"""What the mock's images show: small PNGs, distinct per prompt, seed and index, tied to their call.

Images are fetched from a real mock over loopback and decoded with Pillow (an implementation
independent of the mock's encoder).
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import pytest
from mock_helpers import ASYNC_PATH, AUTH, SSE, SYNC_PATH, body, interleave_body, parse_sse, post
from mock_helpers import running as running_mock
from PIL import Image

from wanbatch.mock import MockConfig
from wanbatch.mock._cli import parse_config
from wanbatch.mock._picture import draw_picture

pytestmark = pytest.mark.anyio
ASYNC = {**AUTH, "X-DashScope-Async": "enable"}


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def urls_of(answer: dict[str, Any] | str) -> list[str]:
    assert isinstance(answer, dict), answer
    return [
        item["image"]
        for choice in answer["output"]["choices"]
        for item in choice["message"]["content"]
        if "image" in item
    ]


async def fetch(session: aiohttp.ClientSession, url: str) -> bytes:
    async with session.get(url) as r:
        assert r.status == 200 and r.content_type == "image/png"
        return await r.read()


async def generate(session: aiohttp.ClientSession, **parameters: Any) -> list[bytes]:
    """One sync edit call; the PNG bytes of its images, in answer order."""
    prompt = parameters.pop("prompt", "a red fox")
    status, _, answer = await post(session, SYNC_PATH, body(prompt, **parameters))
    assert status == 200, answer
    return [await fetch(session, url) for url in urls_of(answer)]


async def test_images_are_small_valid_pngs_of_the_requested_size_naming_their_call() -> None:
    async with running_mock() as (_mock, session):
        pngs = await generate(session, prompt="a lighthouse", seed=101, n=2, size="1280*720")
    assert len(pngs) == 2
    for index, data in enumerate(pngs):
        image = decode(data)
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (1280, 720))
        assert image.text["prompt"] == "a lighthouse"  # type: ignore[attr-defined]
        assert (image.text["seed"], image.text["index"]) == ("101", str(index))  # type: ignore[attr-defined]
        # Kilobytes, where a photo-sized image of 1280x720 is megabytes.
        assert len(data) < 50_000, len(data)
    assert decode(pngs[0]).tobytes() != decode(pngs[1]).tobytes()


async def test_images_differ_per_prompt_seed_and_index_and_repeat_for_the_same_request() -> None:
    async with running_mock(MockConfig(image_size=(256, 256))) as (_mock, session):
        fox = await generate(session, prompt="a red fox", seed=7, n=2)
        fox_again = await generate(session, prompt="a red fox", seed=7, n=2)
        cat = await generate(session, prompt="a grey cat", seed=7, n=2)
        fox_seed_8 = await generate(session, prompt="a red fox", seed=8, n=2)
    assert fox_again == fox  # the same request draws the same bytes
    pixels = [decode(data).tobytes() for data in (*fox, *cat, *fox_seed_8)]
    assert len(set(pixels)) == 6, "every prompt, seed and index looks different"
    # The colours come from the prompt (and seed): the images of one call share them.
    corners = [decode(data).getpixel((0, 0)) for data in (*fox, *cat)]
    assert corners[0] == corners[1] != corners[2] == corners[3]


async def test_a_call_without_seed_gets_one_and_says_which() -> None:
    async with running_mock(MockConfig(image_size=(64, 64))) as (_mock, session):
        first = await generate(session, n=1)
        second = await generate(session, n=1)
    seeds = [decode(data).text["seed"] for data in (*first, *second)]  # type: ignore[attr-defined]
    assert all(seed.isdigit() and 0 <= int(seed) <= 2**31 - 1 for seed in seeds)
    assert first != second  # two seedless calls are two different draws


async def test_streamed_and_async_images_are_numbered_in_their_answer() -> None:
    async with running_mock(MockConfig(image_size=(64, 64), latency=0.05)) as (_mock, session):
        payload = interleave_body("a story", max_images=3, seed=5)
        async with session.post(SYNC_PATH, json=payload, headers=SSE) as r:
            events = parse_sse(await r.text())
        streamed = [url for event in events for url in urls_of(event["data"])]
        streamed_pngs = [await fetch(session, url) for url in streamed]

        status, _, answer = await post(session, ASYNC_PATH, body("a task", n=2), headers=ASYNC)
        assert status == 200 and isinstance(answer, dict)
        task_id = answer["output"]["task_id"]
        for _ in range(500):  # bounded polling; no timing asserted
            async with session.get(f"tasks/{task_id}", headers=AUTH) as r:
                polled = await r.json()
            if polled["output"]["task_status"] == "SUCCEEDED":
                break
            await asyncio.sleep(0.01)
        task_pngs = [await fetch(session, url) for url in urls_of(polled)]
    streamed_text = [decode(data).text for data in streamed_pngs]  # type: ignore[attr-defined]
    assert [(t["prompt"], t["seed"], t["index"]) for t in streamed_text] == [
        ("a story", "5", "0"),
        ("a story", "5", "1"),
        ("a story", "5", "2"),
    ]
    task_text = [decode(data).text for data in task_pngs]  # type: ignore[attr-defined]
    assert [(t["prompt"], t["index"]) for t in task_text] == [("a task", "0"), ("a task", "1")]
    assert task_text[0]["seed"] == task_text[1]["seed"]  # one seed per call


async def test_an_image_set_numbers_every_image_of_the_call() -> None:
    payload = body("a set of stickers", images=[], enable_sequential=True, n=12, seed=9)
    payload["model"] = "wan2.7-image"
    async with running_mock(MockConfig(image_size=(96, 96))) as (_mock, session):
        status, _, answer = await post(session, SYNC_PATH, payload)
        assert status == 200, answer
        pngs = [await fetch(session, url) for url in urls_of(answer)]
    texts = [decode(data).text for data in pngs]  # type: ignore[attr-defined]
    assert [t["index"] for t in texts] == [str(k) for k in range(len(pngs))]
    assert {(t["prompt"], t["seed"]) for t in texts} == {("a set of stickers", "9")}
    assert len(pngs) >= 10 and len({decode(data).tobytes() for data in pngs}) == len(pngs)


@pytest.mark.parametrize("size", [(1, 1), (17, 3), (8, 8), (240, 1000), (2048, 512)])
def test_pictures_of_any_size_decode(size: tuple[int, int]) -> None:
    image = decode(draw_picture(*size, prompt="x", seed=0, index=12))
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", size)


def test_a_prompt_beyond_latin_1_is_kept_whole() -> None:
    prompt = "一只红狐狸坐在雪地里 \U0001f98a"
    image = decode(draw_picture(64, 64, prompt=prompt, seed=1, index=0))
    assert image.text["prompt"] == prompt  # type: ignore[attr-defined]


def test_the_index_is_drawn_in_the_middle() -> None:
    # Same prompt and seed: only the digits in the central panel differ.
    zero = decode(draw_picture(320, 320, prompt="p", seed=1, index=0))
    one = decode(draw_picture(320, 320, prompt="p", seed=1, index=1))
    differing = [
        (x, y)
        for y in range(0, 320, 4)
        for x in range(0, 320, 4)
        if zero.getpixel((x, y)) != one.getpixel((x, y))
    ]
    assert differing
    assert all(80 <= x < 240 and 80 <= y < 240 for x, y in differing)


async def test_noise_style_serves_photo_sized_images() -> None:
    config = MockConfig(image_size=(640, 640), image_style="noise")
    async with running_mock(config) as (mock, session):
        (noise,) = await generate(session, n=1, seed=3)
        mock.configure(image_style="picture")
        (picture,) = await generate(session, n=1, seed=3)
    assert decode(noise).size == decode(picture).size == (640, 640)
    assert len(noise) > 640 * 640 * 3  # stored deflate: as big as the pixels
    assert len(picture) < 20_000


def test_the_cli_flag_picks_the_style() -> None:
    parsed = parse_config(["--image-style", "noise"])
    assert not isinstance(parsed, int) and parsed[0].image_style == "noise"
    parsed = parse_config([])
    assert not isinstance(parsed, int) and parsed[0].image_style == "picture"
    with pytest.raises(SystemExit) as exc:
        parse_config(["--image-style", "stripes"])
    assert exc.value.code == 2
