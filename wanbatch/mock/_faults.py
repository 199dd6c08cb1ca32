"""Injected faults of a call in flight: connection resets, gateway pages, 500s, stalls.

The ``reset_rate``, ``gateway_error_rate`` and ``error_rate`` knobs roll here (one roll per
call, from the seeded dice); a cut stream (``cut_stream_after_image``) resets or stalls here.
"""

from __future__ import annotations

import asyncio
import socket
import struct

from aiohttp import web

from wanbatch.mock._errors import INTERNAL, Rejection
from wanbatch.mock._http import reject
from wanbatch.mock._state import MockState

__all__ = ["abort_connection", "injected_fault", "stall"]

_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def abort_connection(request: web.Request) -> None:
    """Drop the connection with a TCP reset: the client gets no answer at all."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _gateway(state: MockState) -> web.Response:
    status = state.behaviour.gateway_status()
    reason = "Bad Gateway" if status == 502 else "Service Temporarily Unavailable"
    state.counters.outcome(f"{status}:gateway")
    page = _GATEWAY_PAGE.format(status=status, reason=reason)
    return web.Response(text=page, status=status, content_type="text/html")


async def injected_fault(
    request: web.Request, state: MockState, request_id: str
) -> web.Response | None:
    """Roll the fault dice for a call in flight; a reset answers nothing and is not billed."""
    fault = state.behaviour.fault()
    if fault == "reset":
        state.counters.outcome("reset")
        abort_connection(request)
        # aiohttp writes nothing on an aborted transport; this response is never sent.
        return web.Response(status=500)
    if fault == "gateway":
        return _gateway(state)
    if fault == "error":
        return reject(state, Rejection(500, "InternalError", INTERNAL), request_id)
    return None


async def stall(request: web.Request, limit: float = 600.0) -> None:
    """Send nothing more until the client closes the connection (or ``limit`` seconds pass)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while loop.time() < end:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(0.05)
