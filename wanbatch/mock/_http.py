"""What every route shares: the application's state key and the JSON and XML answer shapes.

DashScope answers JSON (``application/json``, also for errors); the object store answers XML
errors the way OSS does. Nothing here decides an outcome: the routes do.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from wanbatch.mock._bodies import error_body, oss_error_xml
from wanbatch.mock._errors import Rejection
from wanbatch.mock._state import MockState

__all__ = [
    "STATE",
    "header_enabled",
    "json_response",
    "origin",
    "oss_error",
    "read_json",
    "reject",
]

STATE = web.AppKey("wanbatch_mock_state", MockState)
_JSON = "application/json"


def json_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """``body`` as compact JSON; always ``application/json`` (the SDK's aiohttp path needs it)."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return web.Response(text=text, status=status, content_type=_JSON, headers=headers)


def reject(state: MockState, rejection: Rejection, request_id: str) -> web.Response:
    """Count ``rejection`` as the outcome and answer it (a 429 with ``Retry-After`` if set)."""
    state.counters.outcome(f"{rejection.status}:{rejection.code}")
    headers = None
    if rejection.status == 429 and state.config.retry_after is not None:
        headers = {"Retry-After": str(state.config.retry_after)}
    return json_response(
        error_body(request_id, rejection.code, rejection.message), rejection.status, headers
    )


def oss_error(
    status: int, code: str, message: str, extra: dict[str, str] | None = None
) -> web.Response:
    """An object-store error: the OSS XML body and its ``x-oss-request-id`` header."""
    request_id = uuid.uuid4().hex[:24].upper()
    body = oss_error_xml(code, message, request_id, extra)
    return web.Response(
        text=body,
        status=status,
        content_type="application/xml",
        headers={"x-oss-request-id": request_id},
    )


def origin(request: web.Request) -> str:
    """``scheme://host[:port]`` as the client reached us: result URLs point back here."""
    return f"{request.scheme}://{request.host}"


def header_enabled(request: web.Request, name: str) -> bool:
    """Whether header ``name`` says ``enable`` (the ``X-DashScope-*`` switches)."""
    return request.headers.get(name, "").strip().lower() == "enable"


async def read_json(request: web.Request) -> object:
    """The request body parsed as JSON, or ``None`` if it is not JSON."""
    raw = await request.read()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
