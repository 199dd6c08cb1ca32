"""The mock speaks wan2.7-image and wan2.7-image-pro over HTTP (docs/mock.md, Models)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mock_helpers import ASYNC_PATH, AUTH, SSE, SYNC_PATH, data_uri, post, running

from wanbatch.mock import MockConfig

pytestmark = pytest.mark.anyio


def body27(
    prompt: str = "a red fox",
    images: list[str] | None = None,
    model: str = "wan2.7-image",
    **parameters: Any,
) -> dict[str, Any]:
    content = [{"text": prompt}, *({"image": image} for image in images or [])]
    return {
        "model": model,
        "input": {"messages": [{"role": "user", "content": content}]},
        "parameters": parameters,
    }


def urls_of(answer: dict[str, Any]) -> list[str]:
    return [
        item["image"]
        for choice in answer["output"]["choices"]
        for item in choice["message"]["content"]
        if item.get("type") == "image"
    ]


async def test_text_to_image_is_plain_json_square_2k_one_image_by_default() -> None:
    async with running(MockConfig(image_size=(32, 32))) as (mock, session):
        status, ctype, answer = await post(session, SYNC_PATH, body27())
        assert (status, ctype) == (200, "application/json"), answer
        assert isinstance(answer, dict)
        assert answer["usage"]["image_count"] == 1 and answer["usage"]["size"] == "2048*2048"
        assert len(urls_of(answer)) == 1
        # Even asked to stream, the answer is a complete JSON body's content.
        status, ctype, _ = await post(session, SYNC_PATH, body27(n=2), headers=SSE)
        assert status == 200
        assert mock.counters().images_generated == 3


async def test_a_set_makes_at_most_n_the_same_count_for_the_same_request() -> None:
    async with running(MockConfig(image_size=(32, 32))) as (mock, session):
        counts = []
        for seed in range(8):
            request = body27(enable_sequential=True, n=6, seed=seed)
            first = await post(session, SYNC_PATH, request)
            again = await post(session, SYNC_PATH, request)
            assert isinstance(first[2], dict) and isinstance(again[2], dict)
            made = first[2]["usage"]["image_count"]
            assert made == len(urls_of(first[2])) == again[2]["usage"]["image_count"]
            counts.append(made)
        assert set(counts) == {4, 5, 6}
        assert mock.counters().images_generated == 2 * sum(counts)


async def test_a_set_defaults_to_at_most_twelve() -> None:
    async with running(MockConfig(image_size=(32, 32))) as (_mock, session):
        _status, _ctype, answer = await post(session, SYNC_PATH, body27(enable_sequential=True))
        assert isinstance(answer, dict)
        assert 10 <= answer["usage"]["image_count"] <= 12


@pytest.mark.parametrize(
    ("request_body", "fragment"),
    [
        (body27(size="4K"), "only supported by wan2.7-image-pro"),
        (body27(model="wan2.7-image-pro", size="4K", images=[data_uri()]), "only supported"),
        (body27(model="wan2.7-image-pro", size="4K", enable_sequential=True), "only supported"),
        (body27(enable_interleave=False), "enable_interleave is not supported"),
        (body27(max_images=2), "max_images is not supported"),
        (body27(negative_prompt="x"), "negative_prompt is not supported"),
        (body27(n=5), "between 1 and 4"),
        (body27(n=13, enable_sequential=True), "between 1 and 12"),
        (body27(size="4096*256"), "1:8 to 8:1"),
        (body27(images=[data_uri()] * 10), "0 to 9 input images"),
        (body27(images=[data_uri(2000, 240)]), "1:8 to 8:1"),
        (body27(bbox_list=[[[0, 0, 4, 4]]]), "one list of boxes per input image (0)"),
        (body27(images=[data_uri()], bbox_list=[[[0, 0, 4, 4]] * 3]), "at most 2 boxes"),
        (body27(color_palette=[{"hex": "#FFFFFF", "ratio": "50.00%"}] * 3), "sum to 100.00%"),
        (
            body27(enable_sequential=True, color_palette=[{"hex": "#FFFFFF", "ratio": "50%"}]),
            "not supported when enable_sequential",
        ),
        (body27(thinking_mode="yes"), "thinking_mode must be a boolean"),
    ],
)
async def test_wan27_rules_are_enforced(request_body: dict[str, Any], fragment: str) -> None:
    async with running() as (mock, session):
        status, _ctype, answer = await post(session, SYNC_PATH, request_body)
        assert status == 400 and isinstance(answer, dict), answer
        assert answer["code"] == "InvalidParameter"
        assert fragment in answer["message"]
        assert mock.counters().images_generated == 0


async def test_pro_4k_text_to_image_and_box_editing_and_palette() -> None:
    async with running(MockConfig(image_size=(32, 32))) as (_mock, session):
        pro = body27(model="wan2.7-image-pro", size="4K")
        _s, _c, answer = await post(session, SYNC_PATH, pro)
        assert isinstance(answer, dict) and answer["usage"]["size"] == "4096*4096"
        boxes = body27(images=[data_uri(), data_uri(480, 240)], bbox_list=[[], [[0, 0, 9, 9]]])
        _s, _c, answer = await post(session, SYNC_PATH, boxes)
        # 2K follows the last image's 2:1 ratio.
        assert isinstance(answer, dict) and answer["usage"]["size"] == "2896*1456"
        palette = [{"hex": "#112233", "ratio": "33.34%"}] + [
            {"hex": "#445566", "ratio": "33.33%"}
        ] * 2
        _s, _c, answer = await post(session, SYNC_PATH, body27(color_palette=palette))
        assert isinstance(answer, dict) and answer["usage"]["image_count"] == 1


async def test_async_task_of_a_set() -> None:
    async with running(MockConfig(image_size=(32, 32))) as (_mock, session):
        headers = {**AUTH, "X-DashScope-Async": "enable"}
        request = body27(enable_sequential=True, n=3, seed=1)
        status, _c, answer = await post(session, ASYNC_PATH, request, headers=headers)
        assert status == 200 and isinstance(answer, dict)
        task = answer["output"]["task_id"]
        for _ in range(200):
            async with session.get(f"tasks/{task}", headers=AUTH) as r:
                polled = await r.json()
            if polled["output"]["task_status"] == "SUCCEEDED":
                break
            await anyio.sleep(0.01)
        assert polled["output"]["task_status"] == "SUCCEEDED"
        assert 1 <= polled["usage"]["image_count"] <= 3
