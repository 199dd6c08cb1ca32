"""The aiohttp application: which route serves what, and what every answer carries.

Routes (docs/service.md, Endpoints, hosts and regions):
  POST /api/v1/services/aigc/multimodal-generation/generation   sync edit (JSON) / interleave (SSE)
                                                                 -> ``_generation``
  POST /api/v1/services/aigc/image-generation/generation        async submit -> ``_taskapi``
  GET  /api/v1/tasks/{task_id}, POST /api/v1/tasks/{task_id}/cancel          -> ``_taskapi``
  GET  /dashscope-result-mock/...                               signed PNG downloads -> ``_oss``
  GET  /mock/counters, GET|POST /mock/config, POST /mock/clock, POST /mock/reset-counters
                                                                 test control -> ``_control``

A generation call is checked in this order (``_gate``): API key (401), the ``force_error``
knob, account (free quota 429, budget Arrearage), throttling (concurrency cap, then rate; both
429 ``Throttling.RateQuota``), the request itself, content inspection; then it is in flight:
latency, injected faults (``_faults``), answer. Only successful answers bill images.
"""

from __future__ import annotations

import uuid
from email.utils import formatdate

from aiohttp import web

from wanbatch.mock._bodies import error_body
from wanbatch.mock._config import MockConfig
from wanbatch.mock._control import add_control_routes
from wanbatch.mock._generation import SYNC_PATH, generate
from wanbatch.mock._http import STATE, json_response
from wanbatch.mock._oss import download
from wanbatch.mock._state import BUCKET, MockState
from wanbatch.mock._taskapi import ASYNC_PATH, RUNNERS, TASKS, cancel, poll, stop_tasks, submit

__all__ = ["STATE", "create_app"]

_API = "/api/v1"


def create_app(config: MockConfig | None = None) -> web.Application:
    """A fresh mock application with its own state, secret and counters."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = MockState(config or MockConfig())
    app[TASKS] = {}
    app[RUNNERS] = set()
    app.router.add_post(SYNC_PATH, generate)
    app.router.add_post(ASYNC_PATH, submit)
    app.router.add_get(f"{_API}/tasks/{{task_id}}", poll)
    app.router.add_post(f"{_API}/tasks/{{task_id}}/cancel", cancel)
    app.router.add_get(f"/{BUCKET}/{{tail:.*}}", download)
    add_control_routes(app)
    # Anything else under /api/v1 answers JSON too, not aiohttp's text/plain 404/405.
    app.router.add_route("*", f"{_API}/{{tail:.*}}", _not_found)
    app.on_cleanup.append(stop_tasks)
    app.on_response_prepare.append(_date_header)
    return app


async def _date_header(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer's ``Date`` is on the mock's clock (clients learn the service's time from it)."""
    response.headers["Date"] = formatdate(request.app[STATE].now(), usegmt=True)


async def _not_found(request: web.Request) -> web.Response:
    message = f"{request.method} {request.path} is not an API of this service."
    return json_response(error_body(str(uuid.uuid4()), "NotFound", message), 404)
