"""Request framing, sans-I/O: the endpoint's URL, the headers and the body bytes of one call.

Pure (the h11 model): stdlib only. No aiohttp/anyio/tqdm import, no socket, no file, no sleep,
no clock read. ``_client`` posts :func:`encode_body` of the request body (built by
``_requests``) to :func:`generation_url` with :func:`build_headers`; reading the answer is
``_response``'s job (a complete answer) and ``_sse``'s (an event stream).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from wanbatch._version import __version__

__all__ = ["GENERATION_PATH", "build_headers", "encode_body", "generation_url"]

#: The synchronous generation endpoint, relative to the ``.../api/v1`` base.
GENERATION_PATH = "/services/aigc/multimodal-generation/generation"


def generation_url(base_url: str) -> str:
    """The generation endpoint under ``base_url`` (the API root, ending in ``/api/v1``)."""
    return base_url.rstrip("/") + GENERATION_PATH


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The request body as sent: JSON, UTF-8, non-ASCII characters escaped (``json.dumps``)."""
    return json.dumps(body).encode("utf-8")


def build_headers(api_key: str, *, stream: bool) -> dict[str, str]:
    """The headers of one generation request.

    ``stream=True`` (interleaved mode) asks for the event stream: ``Accept: text/event-stream``
    and ``X-DashScope-Sse: enable`` (plus ``X-Accel-Buffering: no``, as the official SDK sends,
    so proxies do not hold the stream back).
    """
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
        "User-Agent": f"wanbatch/{__version__}",
    }
    if stream:
        headers["X-DashScope-Sse"] = "enable"
        headers["X-Accel-Buffering"] = "no"
    return headers
