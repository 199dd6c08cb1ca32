"""The test-control routes outside ``/api/v1``: counters, knobs, the clock.

``GET /mock/counters``, ``GET``/``POST /mock/config`` (a JSON object of knobs; the API key is
masked and a rejected value is never echoed), ``POST /mock/clock`` (``{"advance": seconds}``)
and ``POST /mock/reset-counters``.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from wanbatch.mock._http import STATE, json_response, read_json

__all__ = ["add_control_routes"]


def add_control_routes(app: web.Application) -> None:
    """Register the ``/mock/...`` routes on ``app``."""
    app.router.add_get("/mock/counters", _get_counters)
    app.router.add_get("/mock/config", _get_config)
    app.router.add_post("/mock/config", _post_config)
    app.router.add_post("/mock/clock", _post_clock)
    app.router.add_post("/mock/reset-counters", _post_reset_counters)


async def _get_counters(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].counters.snapshot().to_dict())


async def _get_config(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].config.public_dict())


async def _post_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    knobs = await read_json(request)
    if not isinstance(knobs, dict):
        return json_response({"error": "send a JSON object of knobs"}, 400)
    try:
        config = state.configure(**knobs)
    except ValidationError as exc:
        # Built from loc/msg only: the input (maybe an API key) is never echoed.
        problems = [
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        return json_response({"error": "; ".join(problems)}, 400)
    return json_response(config.public_dict())


async def _post_clock(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await read_json(request)
    advance = body.get("advance") if isinstance(body, dict) else None
    if isinstance(advance, bool) or not isinstance(advance, int | float):
        return json_response({"error": 'send {"advance": seconds}'}, 400)
    offset = state.advance_clock(float(advance))
    return json_response({"clock_offset": offset, "now": state.now()})


async def _post_reset_counters(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.counters.reset()
    return json_response(state.counters.snapshot().to_dict())
