"""The official ``dashscope`` SDK, unchanged, calls the mock with the wan2.7 models."""

from __future__ import annotations

from collections.abc import Iterator

import dashscope
import pytest
from dashscope import MultiModalConversation
from dashscope.aigc.image_generation import ImageGeneration
from mock_helpers import data_uri
from test_mock_sdk import download, image_urls

from wanbatch.mock import MockConfig, ThreadedMock, serve_in_thread

KEY = "sk-test-0123456789"


@pytest.fixture
def mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedMock]:
    with serve_in_thread(MockConfig(api_key=KEY)) as server:
        monkeypatch.setattr(dashscope, "base_http_api_url", server.base_url)
        yield server


def test_wan27_editing_with_two_references_returns_images(mock: ThreadedMock) -> None:
    content = [
        {"text": "put the fox of image 1 into the room of image 2"},
        {"image": data_uri(320, 320)},
        {"image": data_uri(640, 320)},
    ]
    response = MultiModalConversation.call(
        api_key=KEY,
        model="wan2.7-image",
        messages=[{"role": "user", "content": content}],
        n=2,
        size="1K",
        seed=5,
    )
    assert response.status_code == 200, response
    assert response.usage["image_count"] == 2
    # 1K is 1024*1024 pixels in the last image's 2:1 ratio.
    assert response.usage["size"] == "1456*720"
    urls = image_urls(response)
    assert len(urls) == 2 and len(set(urls)) == 2
    image = download(urls[1])
    assert (image.format, image.size) == ("PNG", (1456, 720))
    assert mock.counters().images_generated == 2


def test_wan27_text_to_image_returns_a_square_2k_image_by_default(mock: ThreadedMock) -> None:
    response = ImageGeneration.call(
        api_key=KEY,
        model="wan2.7-image",
        messages=[{"role": "user", "content": [{"text": "a lighthouse at dusk"}]}],
        n=1,
        thinking_mode=True,
    )
    assert response.status_code == 200, response
    assert response.usage["image_count"] == 1
    assert response.usage["size"] == "2048*2048"
    (url,) = image_urls(response)
    assert download(url).size == (2048, 2048)


def test_wan27_rules_reach_the_sdk_as_errors(mock: ThreadedMock) -> None:
    response = MultiModalConversation.call(
        api_key=KEY,
        model="wan2.7-image",
        messages=[{"role": "user", "content": [{"text": "a lighthouse"}]}],
        size="4K",
    )
    assert response.status_code == 400
    assert response.code == "InvalidParameter"
    assert "wan2.7-image-pro" in response.message
    assert mock.counters().images_generated == 0
