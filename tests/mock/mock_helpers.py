"""Helpers for the mock's tests: input images, request bodies, raw HTTP against a mock."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from PIL import Image

from wanbatch.mock import MockConfig, MockServer

SYNC_PATH = "services/aigc/multimodal-generation/generation"
ASYNC_PATH = "services/aigc/image-generation/generation"
AUTH = {"Authorization": "Bearer test-key"}
SSE = {**AUTH, "X-DashScope-Sse": "enable"}


def image_bytes(width: int = 320, height: int = 320, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    """A real image file made by Pillow (an implementation independent of the mock)."""
    buffer = io.BytesIO()
    Image.new(mode, (width, height), (200, 120, 40, 255)[: len(mode)]).save(buffer, fmt)
    return buffer.getvalue()


def data_uri(width: int = 320, height: int = 320, fmt: str = "PNG", mode: str = "RGB") -> str:
    mime = {"PNG": "png", "JPEG": "jpeg", "BMP": "bmp", "WEBP": "webp"}[fmt]
    encoded = base64.b64encode(image_bytes(width, height, fmt, mode)).decode()
    return f"data:image/{mime};base64,{encoded}"


def body(
    prompt: str = "a red fox", images: list[str] | None = None, **parameters: Any
) -> dict[str, Any]:
    """A request body in the SDK's key order; ``images`` default to one 320x320 PNG."""
    images = [data_uri()] if images is None else images
    content = [{"text": prompt}, *({"image": image} for image in images)]
    return {
        "model": "wan2.6-image",
        "parameters": parameters,
        "input": {"messages": [{"role": "user", "content": content}]},
    }


def interleave_body(prompt: str = "a short story", **parameters: Any) -> dict[str, Any]:
    return body(prompt, images=[], enable_interleave=True, **parameters)


async def post(
    session: aiohttp.ClientSession,
    url: str,
    payload: object,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, dict[str, Any] | str]:
    """POST and return (status, content type, JSON body or text)."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    async with session.post(url, data=data, headers=AUTH if headers is None else headers) as r:
        text = await r.text()
        if r.content_type == "application/json":
            return r.status, r.content_type, json.loads(text)
        return r.status, r.content_type, text


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Split an SSE body into events of their field lines (``data`` parsed as JSON)."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event: dict[str, Any] = {"comments": []}
        for line in block.split("\n"):
            if line.startswith(":"):
                event["comments"].append(line)
            else:
                name, _, value = line.partition(":")
                event[name] = json.loads(value) if name == "data" else value
        events.append(event)
    return events


@asynccontextmanager
async def running(
    config: MockConfig | None = None,
) -> AsyncIterator[tuple[MockServer, aiohttp.ClientSession]]:
    """A mock plus a client session on it; bounded by a 30 s total timeout per request."""
    async with MockServer(config) as mock:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(mock.base_url + "/", timeout=timeout) as session:
            yield mock, session
