"""The object store: signed, expiring image URLs and the PNGs behind them.

``GET /dashscope-result-mock/...png?Expires=&OSSAccessKeyId=&Signature=`` answers the PNG of
an issued object, or the store's XML errors: 404 ``NoSuchKey``, 403 ``AccessDenied`` (no
signature, or expired on the mock's clock) and 403 ``SignatureDoesNotMatch``. The
``truncate_rate`` knob cuts a body short here.
"""

from __future__ import annotations

from aiohttp import web

from wanbatch.mock._http import STATE, oss_error
from wanbatch.mock._state import MockState

__all__ = ["download"]


async def download(request: web.Request) -> web.StreamResponse:
    """Serve one issued image if its URL is signed and not expired."""
    state = request.app[STATE]
    path = request.path
    stored = state.objects.get(path)
    if stored is None:
        state.counters.download("not_found")
        return oss_error(404, "NoSuchKey", "The specified key does not exist.", {"Key": path})
    query = request.query
    expires = query.get("Expires", "")
    signature = query.get("Signature", "")
    if not expires or not signature:
        state.counters.download("bad_signature")
        return oss_error(
            403, "AccessDenied", "You have no right to access this object because of bucket acl."
        )
    if expires.isdigit() and int(expires) < state.now():
        state.counters.download("expired")
        return oss_error(403, "AccessDenied", "Request has expired.", {"Expires": expires})
    if not state.signer.verify(path, expires, signature):
        state.counters.download("bad_signature")
        return oss_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
    data = state.png(stored)
    head = request.method == "HEAD"
    if not head and state.behaviour.truncate():
        return await _truncated(request, state, data)
    state.counters.download("ok", 0 if head else len(data))
    return web.Response(body=data, content_type="image/png", headers={"Accept-Ranges": "none"})


async def _truncated(request: web.Request, state: MockState, data: bytes) -> web.StreamResponse:
    """Promise the full Content-Length, send part of the body, then close the connection."""
    part = data[: max(1, len(data) // 2)]
    response = web.StreamResponse(headers={"Content-Type": "image/png"})
    response.content_length = len(data)
    await response.prepare(request)
    try:
        await response.write(part)
    except (ConnectionError, RuntimeError):
        pass
    state.counters.download("truncated", len(part))
    if request.transport is not None:
        request.transport.close()
    return response
