"""The aiohttp application: DashScope routes, image serving and the ``/mock`` control routes.

Routes (docs/service.md, Endpoints, hosts and regions):
  POST /api/v1/services/aigc/multimodal-generation/generation   sync edit (JSON) / interleave (SSE)
  POST /api/v1/services/aigc/image-generation/generation        async submit (X-DashScope-Async)
  GET  /api/v1/tasks/{task_id}, POST /api/v1/tasks/{task_id}/cancel
  GET  /dashscope-result-mock/...                               signed PNG downloads
  GET  /mock/counters, GET|POST /mock/config, POST /mock/clock, POST /mock/reset-counters

A generation call is checked in this order: API key (401), the ``force_error`` knob, account
(free quota 429, budget Arrearage), throttling (concurrency cap, then rate; both 429
``Throttling.RateQuota``), the request itself, content inspection; then it is in flight:
latency, injected faults, answer. Only successful answers bill images.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import struct
import uuid
from email.utils import formatdate
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from wanbatch.mock._bodies import (
    edit_choices,
    error_body,
    interleave_items,
    oss_error_xml,
    sse_frame,
    stream_event,
    usage,
)
from wanbatch.mock._config import MockConfig
from wanbatch.mock._errors import (
    ARREARAGE,
    FREE_QUOTA,
    INSPECTION,
    INTERNAL,
    INVALID_API_KEY,
    NO_SYNC_CALLS,
    RATE_QUOTA,
    Rejection,
)
from wanbatch.mock._sizing import output_size
from wanbatch.mock._state import BUCKET, MockState
from wanbatch.mock._tasks import Task, poll_body, run_task
from wanbatch.mock._validate import GenerationRequest, prompt_of, validate_generation

__all__ = ["STATE", "create_app"]

STATE = web.AppKey("wanbatch_mock_state", MockState)
_TASKS: web.AppKey[dict[str, Task]] = web.AppKey("wanbatch_mock_tasks", dict[str, Task])
_RUNNERS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("wanbatch_mock_runners", set)

_API = "/api/v1"
_SYNC_PATH = f"{_API}/services/aigc/multimodal-generation/generation"
_ASYNC_PATH = f"{_API}/services/aigc/image-generation/generation"
_JSON = "application/json"
_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def create_app(config: MockConfig | None = None) -> web.Application:
    """A fresh mock application with its own state, secret and counters."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = MockState(config or MockConfig())
    app[_TASKS] = {}
    app[_RUNNERS] = set()
    app.router.add_post(_SYNC_PATH, _generation)
    app.router.add_post(_ASYNC_PATH, _submit)
    app.router.add_get(f"{_API}/tasks/{{task_id}}", _poll)
    app.router.add_post(f"{_API}/tasks/{{task_id}}/cancel", _cancel)
    app.router.add_get(f"/{BUCKET}/{{tail:.*}}", _download)
    app.router.add_get("/mock/counters", _get_counters)
    app.router.add_get("/mock/config", _get_config)
    app.router.add_post("/mock/config", _post_config)
    app.router.add_post("/mock/clock", _post_clock)
    app.router.add_post("/mock/reset-counters", _post_reset_counters)
    # Anything else under /api/v1 answers JSON too, not aiohttp's text/plain 404/405.
    app.router.add_route("*", f"{_API}/{{tail:.*}}", _not_found)
    app.on_cleanup.append(_stop_tasks)
    app.on_response_prepare.append(_date_header)
    return app


async def _date_header(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer's ``Date`` is on the mock's clock (clients learn the service's time from it)."""
    response.headers["Date"] = formatdate(request.app[STATE].now(), usegmt=True)


# --- helpers ---------------------------------------------------------------------------------


def _json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    # JSON bodies always say application/json (the SDK's aiohttp path needs it).
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return web.Response(text=text, status=status, content_type=_JSON, headers=headers)


def _reject(state: MockState, rejection: Rejection, request_id: str) -> web.Response:
    state.counters.outcome(f"{rejection.status}:{rejection.code}")
    headers = None
    if rejection.status == 429 and state.config.retry_after is not None:
        headers = {"Retry-After": str(state.config.retry_after)}
    return _json(
        error_body(request_id, rejection.code, rejection.message), rejection.status, headers
    )


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _header_enabled(request: web.Request, name: str) -> bool:
    return request.headers.get(name, "").strip().lower() == "enable"


def _check_key(request: web.Request, state: MockState) -> None:
    """``Authorization: Bearer <key>``; the key never appears in any answer."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Rejection(401, "InvalidApiKey", INVALID_API_KEY)
    wanted = state.config.api_key
    if wanted is not None and not hmac.compare_digest(key.encode(), wanted.encode()):
        raise Rejection(401, "InvalidApiKey", INVALID_API_KEY)


def _check_forced(state: MockState) -> None:
    """The ``force_error`` knob: any documented (or made-up) error answer, on demand."""
    forced = state.forced_error()
    if forced is not None:
        raise forced


def _check_account(state: MockState) -> None:
    """Free quota and budget are account states: every call fails once they are used up."""
    generated = state.counters.images_generated
    if state.config.free_quota is not None and generated >= state.config.free_quota:
        raise Rejection(429, "Throttling.AllocationQuota", FREE_QUOTA)
    if state.config.budget is not None and generated >= state.config.budget:
        raise Rejection(400, "Arrearage", ARREARAGE)


def _check_rate(state: MockState, *, cap: bool) -> None:
    """429 over the concurrency cap (sync calls only) or over the rate; refusals use no quota."""
    if cap and not state.has_free_slot():
        raise Rejection(429, "Throttling.RateQuota", RATE_QUOTA)
    if not state.behaviour.admit_rate(state.now()):
        raise Rejection(429, "Throttling.RateQuota", RATE_QUOTA)


def _inspection(state: MockState, request: GenerationRequest) -> Rejection | None:
    for trigger in state.config.inspection_triggers:
        if trigger and trigger in request.prompt:
            return Rejection(400, "DataInspectionFailed", INSPECTION, deferred=True)
    return None


async def _read_json(request: web.Request) -> object:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _abort_connection(request: web.Request) -> None:
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


async def _injected_fault(
    request: web.Request, state: MockState, request_id: str
) -> web.Response | None:
    """Roll the fault dice for a call in flight; a reset answers nothing and is not billed."""
    fault = state.behaviour.fault()
    if fault == "reset":
        state.counters.outcome("reset")
        _abort_connection(request)
        # aiohttp writes nothing on an aborted transport; this response is never sent.
        return web.Response(status=500)
    if fault == "gateway":
        return _gateway(state)
    if fault == "error":
        return _reject(state, Rejection(500, "InternalError", INTERNAL), request_id)
    return None


# --- generation ------------------------------------------------------------------------------


async def _generation(request: web.Request) -> web.StreamResponse:
    arrived = asyncio.get_running_loop().time()
    state = request.app[STATE]
    request_id = str(uuid.uuid4())
    body = await _read_json(request)
    state.counters.call(prompt_of(body))
    try:
        _check_key(request, state)
        if _header_enabled(request, "X-DashScope-Async"):
            # Async calls go to the image-generation path.
            raise Rejection(
                403, "AccessDenied", "current user api does not support asynchronous calls"
            )
        _check_forced(state)
        _check_account(state)
        _check_rate(state, cap=True)
        if body is None:
            raise Rejection.invalid("The request body is not valid JSON.")
        generation = validate_generation(body)
        sse = _header_enabled(request, "X-DashScope-Sse")
        if generation.interleave and not sse:
            # Sync interleave must stream (header X-DashScope-Sse: enable, stream=true).
            raise Rejection.invalid(
                "enable_interleave=true on the synchronous API requires streaming output: "
                "send header X-DashScope-Sse: enable and parameters.stream=true"
            )
        problem = _inspection(state, generation)
        if problem is not None:
            raise problem
    except Rejection as rejection:
        return _reject(state, rejection, request_id)

    state.enter()
    try:
        # ``latency`` is the whole time the service takes, counted from the request's arrival:
        # reading and checking it (a reference image is decoded) is part of it, not extra.
        spent = asyncio.get_running_loop().time() - arrived
        latency = max(0.0, state.behaviour.latency() - spent)
        if not sse:
            await asyncio.sleep(latency)
        faulty = await _injected_fault(request, state, request_id)
        if faulty is not None:
            return faulty
        size = output_size(
            generation.size, interleave=generation.interleave, last_image=generation.last_image_size
        )
        if sse:
            return await _stream(request, state, generation, size, latency, request_id)
        count = generation.images_to_make
        urls = state.issue_urls(_origin(request), size, count)
        state.counters.billed(generation.prompt, count)
        state.succeeded()
        answer = {
            "output": {"choices": edit_choices(urls), "finished": True},
            "usage": usage(count, size),
            "request_id": request_id,
        }
        return _json(answer)
    finally:
        state.leave()


async def _stream(
    request: web.Request,
    state: MockState,
    generation: GenerationRequest,
    size: tuple[int, int],
    latency: float,
    request_id: str,
) -> web.StreamResponse:
    """Answer as SSE: incremental items, ``finish_reason`` null until the last event."""
    count = generation.images_to_make
    urls = state.issue_urls(_origin(request), size, count)
    input_tokens = output_tokens = 0  # token semantics of interleave are undocumented
    if generation.interleave:
        # One item per event; the last event carries the closing text.
        items = interleave_items(generation.prompt, urls)
        chunks = [[item] for item in items]
        input_tokens = len(generation.prompt)
        output_tokens = sum(len(item.get("text", "")) for item in items)
    else:  # edit mode asked to stream: everything in one final event
        chunks = [[item for choice in edit_choices(urls) for item in choice["message"]["content"]]]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream;charset=UTF-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    pause = latency / len(chunks)
    billed = 0
    try:
        for number, chunk in enumerate(chunks, start=1):
            if pause:
                await asyncio.sleep(pause)
            images = sum(1 for item in chunk if "image" in item)
            if images:
                # Images are billed as they are produced, whether or not the client stays.
                state.counters.billed(generation.prompt, images)
                billed += images
            last = number == len(chunks)
            final = usage(billed, size, input_tokens, output_tokens) if last else None
            await response.write(
                sse_frame(number, stream_event(request_id, chunk, last=last, final_usage=final))
            )
            cut = state.config.cut_stream_after_image
            if images and cut is not None and not last:
                state.counters.outcome(f"cut_{cut}")
                if cut == "reset":
                    _abort_connection(request)
                    return response
                await _stall(request)
                return response
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        state.counters.outcome("client_disconnected")
        return response
    state.succeeded()
    return response


async def _stall(request: web.Request, limit: float = 600.0) -> None:
    """Send nothing more until the client closes the connection (or ``limit`` seconds pass)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while loop.time() < end:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(0.05)


# --- async task API --------------------------------------------------------------------------


async def _submit(request: web.Request) -> web.Response:
    state = request.app[STATE]
    request_id = str(uuid.uuid4())
    body = await _read_json(request)
    state.counters.call(prompt_of(body))
    failure: Rejection | None = None
    generation: GenerationRequest | None = None
    try:
        _check_key(request, state)
        if not _header_enabled(request, "X-DashScope-Async"):
            raise Rejection(403, "AccessDenied", NO_SYNC_CALLS)
        _check_forced(state)
        _check_account(state)
        # Over-concurrency tasks queue as PENDING instead, so only the rate applies here.
        _check_rate(state, cap=False)
        if body is None:
            raise Rejection.invalid("The request body is not valid JSON.")
        try:
            generation = validate_generation(body)
            failure = _inspection(state, generation)
        except Rejection as rejection:
            if not rejection.deferred:
                raise
            failure = rejection
    except Rejection as rejection:
        return _reject(state, rejection, request_id)
    faulty = await _injected_fault(request, state, request_id)
    if faulty is not None:
        return faulty
    task = Task(
        task_id=str(uuid.uuid4()),
        origin=_origin(request),
        request=generation,
        failure=failure,
        submit_time=state.now(),
    )
    request.app[_TASKS][task.task_id] = task
    runner = asyncio.get_running_loop().create_task(run_task(state, task))
    runners = request.app[_RUNNERS]
    runners.add(runner)
    runner.add_done_callback(runners.discard)
    state.succeeded()
    return _json(
        {"output": {"task_status": "PENDING", "task_id": task.task_id}, "request_id": request_id}
    )


async def _poll(request: web.Request) -> web.Response:
    state = request.app[STATE]
    request_id = str(uuid.uuid4())
    try:
        _check_key(request, state)
    except Rejection as rejection:
        return _json(error_body(request_id, rejection.code, rejection.message), rejection.status)
    state.counters.task_polls += 1
    task_id = request.match_info["task_id"]
    task = request.app[_TASKS].get(task_id)
    return _json(
        poll_body(
            task,
            task_id,
            request_id,
            state.now(),
            error_in_output=state.config.task_error_in_output,
        )
    )


async def _cancel(request: web.Request) -> web.Response:
    state = request.app[STATE]
    request_id = str(uuid.uuid4())
    try:
        _check_key(request, state)
    except Rejection as rejection:
        return _json(error_body(request_id, rejection.code, rejection.message), rejection.status)
    task = request.app[_TASKS].get(request.match_info["task_id"])
    if task is None or task.status != "PENDING":
        # SDK docstring: only PENDING tasks can be canceled.
        message = "Failed to cancel the task, please confirm if the task is in PENDING status."
        return _json(error_body(request_id, "UnsupportedOperation", message), 400)
    task.status = "CANCELED"
    task.end_time = state.now()
    return _json({"request_id": request_id})


async def _stop_tasks(app: web.Application) -> None:
    pending = app[_RUNNERS]
    runners = list(pending)
    for runner in runners:
        runner.cancel()
    await asyncio.gather(*runners, return_exceptions=True)


# --- image downloads -------------------------------------------------------------------------


def _oss_error(
    request: web.Request, status: int, code: str, message: str, extra: dict[str, str] | None = None
) -> web.Response:
    request_id = uuid.uuid4().hex[:24].upper()
    body = oss_error_xml(code, message, request_id, extra)
    return web.Response(
        text=body,
        status=status,
        content_type="application/xml",
        headers={"x-oss-request-id": request_id},
    )


async def _download(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    path = request.path
    stored = state.objects.get(path)
    if stored is None:
        state.counters.download("not_found")
        return _oss_error(
            request, 404, "NoSuchKey", "The specified key does not exist.", {"Key": path}
        )
    query = request.query
    expires = query.get("Expires", "")
    signature = query.get("Signature", "")
    if not expires or not signature:
        state.counters.download("bad_signature")
        return _oss_error(
            request,
            403,
            "AccessDenied",
            "You have no right to access this object because of bucket acl.",
        )
    if expires.isdigit() and int(expires) < state.now():
        state.counters.download("expired")
        return _oss_error(
            request, 403, "AccessDenied", "Request has expired.", {"Expires": expires}
        )
    if not state.signer.verify(path, expires, signature):
        state.counters.download("bad_signature")
        return _oss_error(
            request,
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
    data = state.pngs.get(stored.width, stored.height, stored.variant)
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


async def _not_found(request: web.Request) -> web.Response:
    message = f"{request.method} {request.path} is not an API of this service."
    return _json(error_body(str(uuid.uuid4()), "NotFound", message), 404)


# --- control routes (outside /api/v1) ----------------------------------------------------------


async def _get_counters(request: web.Request) -> web.Response:
    return _json(request.app[STATE].counters.snapshot().to_dict())


async def _get_config(request: web.Request) -> web.Response:
    return _json(request.app[STATE].config.public_dict())


async def _post_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    knobs = await _read_json(request)
    if not isinstance(knobs, dict):
        return _json({"error": "send a JSON object of knobs"}, 400)
    try:
        config = state.configure(**knobs)
    except ValidationError as exc:
        # Built from loc/msg only: the input (maybe an API key) is never echoed.
        problems = [
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        return _json({"error": "; ".join(problems)}, 400)
    return _json(config.public_dict())


async def _post_clock(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await _read_json(request)
    advance = body.get("advance") if isinstance(body, dict) else None
    if isinstance(advance, bool) or not isinstance(advance, int | float):
        return _json({"error": 'send {"advance": seconds}'}, 400)
    offset = state.advance_clock(float(advance))
    return _json({"clock_offset": offset, "now": state.now()})


async def _post_reset_counters(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.counters.reset()
    return _json(state.counters.snapshot().to_dict())
