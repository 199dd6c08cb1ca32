"""The official ``dashscope`` SDK, unchanged, against the mock.

What the SDK does is summed up in docs/service.md, The official Python SDK.
"""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterator

import dashscope
import pytest
from dashscope import AioMultiModalConversation, MultiModalConversation
from dashscope.aigc.image_generation import ImageGeneration
from dashscope.api_entities.aio_session import close_shared_aio_session
from mock_helpers import data_uri
from PIL import Image

from wanbatch.mock import MockConfig, MockServer, ThreadedMock, serve_in_thread

KEY = "sk-test-0123456789"
MODEL = "wan2.6-image"


def messages(prompt: str = "turn the fox blue", images: int = 1) -> list[dict[str, object]]:
    content: list[dict[str, str]] = [{"text": prompt}]
    content += [{"image": data_uri(320, 320)} for _ in range(images)]
    return [{"role": "user", "content": content}]


def image_urls(response: object) -> list[str]:
    return [
        item["image"]
        for choice in response.output.choices  # type: ignore[attr-defined]
        for item in choice.message.content
        if "image" in item
    ]


def download(url: str) -> Image.Image:
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.headers["Content-Type"] == "image/png"
        data = answer.read()
        assert len(data) == int(answer.headers["Content-Length"])
    image = Image.open(io.BytesIO(data))
    image.load()  # decodes every IDAT byte and checks the PNG's CRCs
    return image


@pytest.fixture
def mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedMock]:
    with serve_in_thread(MockConfig(api_key=KEY)) as server:
        monkeypatch.setattr(dashscope, "base_http_api_url", server.base_url)
        yield server


def test_edit_call_returns_downloadable_pngs_of_the_reported_size(mock: ThreadedMock) -> None:
    response = MultiModalConversation.call(
        api_key=KEY, model=MODEL, messages=messages(), n=2, size="1K", seed=7, watermark=False
    )
    assert response.status_code == 200, response
    assert response.usage["image_count"] == 2
    # 1K with a square reference image: 1280*1280 (1K is about 1280*1280 pixels, in its ratio).
    assert response.usage["size"] == "1280*1280"
    urls = image_urls(response)
    assert len(urls) == 2 and len(set(urls)) == 2
    image = download(urls[0])
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (1280, 1280))
    counters = mock.counters()
    assert counters.images_generated == 2
    assert counters.images_by_prompt == {"turn the fox blue": 2}
    assert counters.downloads_by_outcome["ok"] == 1


def test_edit_call_defaults_to_four_images(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve_in_thread(MockConfig(image_size=(64, 64))) as server:
        monkeypatch.setattr(dashscope, "base_http_api_url", server.base_url)
        response = ImageGeneration.call(api_key=KEY, model=MODEL, messages=messages())
    assert response.status_code == 200
    assert response.usage["image_count"] == 4 and len(image_urls(response)) == 4


@pytest.mark.anyio
async def test_aio_call(monkeypatch: pytest.MonkeyPatch) -> None:
    async with MockServer(MockConfig(api_key=KEY)) as server:
        monkeypatch.setattr(dashscope, "base_http_api_url", server.base_url)
        try:
            response = await AioMultiModalConversation.call(
                api_key=KEY, model=MODEL, messages=messages(), n=1, size="800*1200"
            )
        finally:
            await close_shared_aio_session()  # the SDK keeps one session per loop
        assert response.status_code == 200, response
        assert response.usage["size"] == "800*1200"
        (url,) = image_urls(response)
        assert server.counters().images_generated == 1
    assert url.split("?")[0].endswith(".png")


def test_interleaved_stream_yields_text_and_images(mock: ThreadedMock) -> None:
    events = list(
        ImageGeneration.call(
            api_key=KEY,
            model=MODEL,
            messages=messages("tell a story about a fox", images=0),
            stream=True,
            enable_interleave=True,
            max_images=2,
            size="1024*1024",
        )
    )
    assert all(event.status_code == 200 for event in events)
    reasons = [event.output.choices[0].finish_reason for event in events]
    assert reasons[:-1] == [None] * (len(events) - 1) and reasons[-1] == "stop"
    items = [item for event in events for item in event.output.choices[0].message.content]
    texts = [item["text"] for item in items if item.get("type") == "text"]
    urls = [item["image"] for item in items if item.get("type") == "image"]
    assert texts and len(urls) == 2
    assert events[-1].usage["image_count"] == 2
    assert events[-1].usage["size"] == "1024*1024"
    assert download(urls[1]).size == (1024, 1024)
    assert mock.counters().images_by_prompt == {"tell a story about a fox": 2}


def test_async_call_and_wait(mock: ThreadedMock) -> None:
    task = ImageGeneration.async_call(api_key=KEY, model=MODEL, messages=messages(), n=2)
    assert task.status_code == 200
    assert task.output.task_status == "PENDING"
    result = ImageGeneration.wait(task, api_key=KEY)
    assert result.status_code == 200
    assert result.output.task_status == "SUCCEEDED"
    assert result.usage["image_count"] == 2
    assert len(image_urls(result)) == 2
    assert mock.counters().images_generated == 2


def test_async_cancel_pending_task(mock: ThreadedMock) -> None:
    mock.configure(latency=30.0)  # queued for 3 s: time enough to cancel
    task = ImageGeneration.async_call(api_key=KEY, model=MODEL, messages=messages(), n=1)
    canceled = ImageGeneration.cancel(task, api_key=KEY)
    assert canceled.status_code == 200
    fetched = ImageGeneration.fetch(task, api_key=KEY)
    assert fetched.output.task_status == "CANCELED"
    assert mock.counters().images_generated == 0


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "message"),
    [
        pytest.param({"n": 5}, 400, "InvalidParameter", "n", id="n-out-of-range"),
        pytest.param({"size": "100*100"}, 400, "InvalidParameter", "size", id="bad-size"),
        pytest.param({"size": "4096*1040"}, 400, "InvalidParameter", "size", id="too-many-px"),
        pytest.param({"seed": -1}, 400, "InvalidParameter", "seed", id="negative-seed"),
        pytest.param({"seed": 2**31}, 400, "InvalidParameter", "seed", id="seed-too-big"),
        pytest.param({"model": "wan2.5-image"}, 404, "ModelNotFound", "", id="wrong-model"),
        pytest.param({"api_key": "sk-wrong"}, 401, "InvalidApiKey", "", id="wrong-key"),
    ],
)
def test_invalid_requests_come_back_with_documented_codes(
    mock: ThreadedMock, kwargs: dict[str, object], status: int, code: str, message: str
) -> None:
    call = {"api_key": KEY, "model": MODEL, "messages": messages(), "n": 1, **kwargs}
    response = MultiModalConversation.call(**call)
    assert (response.status_code, response.code) == (status, code)
    assert message in response.message
    assert "sk-wrong" not in str(response)
    assert mock.counters().images_generated == 0


def test_five_reference_images_are_rejected(mock: ThreadedMock) -> None:
    response = MultiModalConversation.call(api_key=KEY, model=MODEL, messages=messages(images=5))
    assert (response.status_code, response.code) == (400, "InvalidParameter")


def test_n_must_be_one_in_interleave_mode(mock: ThreadedMock) -> None:
    (response,) = ImageGeneration.call(
        api_key=KEY,
        model=MODEL,
        messages=messages(images=0),
        stream=True,
        enable_interleave=True,
        n=2,
    )
    assert (response.status_code, response.code) == (400, "InvalidParameter")
    assert response.message == "num_images_per_prompt must be 1"


def test_interleave_without_streaming_is_rejected(mock: ThreadedMock) -> None:
    response = MultiModalConversation.call(
        api_key=KEY, model=MODEL, messages=messages(images=0), enable_interleave=True
    )
    assert (response.status_code, response.code) == (400, "InvalidParameter")
    assert "X-DashScope-Sse" in response.message
