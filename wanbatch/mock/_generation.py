"""The synchronous generation endpoint: edit mode as JSON, interleave (or ``stream``) as SSE.

``POST /api/v1/services/aigc/multimodal-generation/generation``. The call passes the gate
(``_gate``), is validated, then holds a concurrency slot while it is in flight: latency,
injected faults, answer. A streamed answer spreads the latency over its events and bills each
image as its event is produced.
"""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web

from wanbatch.mock._bodies import edit_choices, interleave_items, sse_frame, stream_event, usage
from wanbatch.mock._errors import Rejection
from wanbatch.mock._faults import abort_connection, injected_fault, stall
from wanbatch.mock._gate import check_account, check_forced, check_key, check_rate, inspection
from wanbatch.mock._http import STATE, header_enabled, json_response, origin, read_json, reject
from wanbatch.mock._sizing import output_size
from wanbatch.mock._state import MockState
from wanbatch.mock._validate import GenerationRequest, prompt_of, validate_generation

__all__ = ["SYNC_PATH", "generate"]

SYNC_PATH = "/api/v1/services/aigc/multimodal-generation/generation"


async def generate(request: web.Request) -> web.StreamResponse:
    """Handle one synchronous generation call."""
    arrived = asyncio.get_running_loop().time()
    state = request.app[STATE]
    request_id = str(uuid.uuid4())
    body = await read_json(request)
    state.counters.call(prompt_of(body))
    try:
        key = check_key(request, state)
        if header_enabled(request, "X-DashScope-Async"):
            # Async calls go to the image-generation path.
            raise Rejection(
                403, "AccessDenied", "current user api does not support asynchronous calls"
            )
        check_forced(state)
        check_account(state)
        check_rate(state, cap=True)
        if body is None:
            raise Rejection.invalid("The request body is not valid JSON.")
        generation = validate_generation(body)
        sse = header_enabled(request, "X-DashScope-Sse")
        if generation.interleave and not sse:
            # Sync interleave must stream (header X-DashScope-Sse: enable, stream=true).
            raise Rejection.invalid(
                "enable_interleave=true on the synchronous API requires streaming output: "
                "send header X-DashScope-Sse: enable and parameters.stream=true"
            )
        problem = inspection(state, generation)
        if problem is not None:
            raise problem
        state.accounts.check(state.config, key, state.now(), cap=True)
    except Rejection as rejection:
        return reject(state, rejection, request_id)

    config = state.config
    state.accounts.enter(config, key, generation.images_to_make)
    state.enter()
    try:
        # ``latency`` is the whole time the service takes, counted from the request's arrival:
        # reading and checking it (a reference image is decoded) is part of it, not extra.
        spent = asyncio.get_running_loop().time() - arrived
        latency = max(0.0, state.behaviour.latency() - spent)
        if not sse:
            await asyncio.sleep(latency)
        faulty = await injected_fault(request, state, request_id)
        if faulty is not None:
            return faulty
        size = output_size(
            generation.size, interleave=generation.interleave, last_image=generation.last_image_size
        )
        if sse:
            return await _stream(request, state, generation, size, latency, request_id)
        count = generation.images_to_make
        urls = state.issue_urls(
            origin(request), size, count, prompt=generation.prompt, seed=generation.seed
        )
        state.counters.billed(generation.prompt, count)
        state.succeeded()
        answer = {
            "output": {"choices": edit_choices(urls), "finished": True},
            "usage": usage(count, size),
            "request_id": request_id,
        }
        return json_response(answer)
    finally:
        state.leave()
        state.accounts.leave(config, key)


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
    urls = state.issue_urls(
        origin(request), size, count, prompt=generation.prompt, seed=generation.seed
    )
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
                    abort_connection(request)
                    return response
                await stall(request)
                return response
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        state.counters.outcome("client_disconnected")
        return response
    state.succeeded()
    return response
