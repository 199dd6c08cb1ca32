"""The async task API: submit, poll and cancel tasks (their lifecycle lives in ``_tasks``).

``POST /api/v1/services/aigc/image-generation/generation`` (header ``X-DashScope-Async:
enable``) answers PENDING and a ``task_id`` at once; a runner per task drives it to its end.
Over-concurrency tasks wait PENDING instead of answering 429, so only the rate gates a submit,
and what the model worker would find (inspection, interleave ``n``) fails the task, not the call.
"""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web

from wanbatch.mock._bodies import error_body
from wanbatch.mock._errors import NO_SYNC_CALLS, Rejection
from wanbatch.mock._faults import injected_fault
from wanbatch.mock._gate import check_account, check_forced, check_key, check_rate, inspection
from wanbatch.mock._http import STATE, header_enabled, json_response, origin, read_json, reject
from wanbatch.mock._tasks import Task, poll_body, run_task
from wanbatch.mock._validate import GenerationRequest, prompt_of, validate_generation

__all__ = ["ASYNC_PATH", "RUNNERS", "TASKS", "cancel", "poll", "stop_tasks", "submit"]

ASYNC_PATH = "/api/v1/services/aigc/image-generation/generation"
TASKS: web.AppKey[dict[str, Task]] = web.AppKey("wanbatch_mock_tasks", dict[str, Task])
RUNNERS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("wanbatch_mock_runners", set)


async def submit(request: web.Request) -> web.Response:
    """Accept a task (PENDING) or refuse the call."""
    state = request.app[STATE]
    request_id = str(uuid.uuid4())
    body = await read_json(request)
    state.counters.call(prompt_of(body))
    failure: Rejection | None = None
    generation: GenerationRequest | None = None
    try:
        key = check_key(request, state)
        if not header_enabled(request, "X-DashScope-Async"):
            raise Rejection(403, "AccessDenied", NO_SYNC_CALLS)
        check_forced(state)
        check_account(state)
        # Over-concurrency tasks queue as PENDING instead, so only the rate applies here.
        check_rate(state, cap=False)
        # A key of several: its budget and rate (its tasks queue like every other's).
        state.accounts.check(state.config, key, state.now(), cap=False)
        if body is None:
            raise Rejection.invalid("The request body is not valid JSON.")
        try:
            generation = validate_generation(body)
            failure = inspection(state, generation)
        except Rejection as rejection:
            if not rejection.deferred:
                raise
            failure = rejection
    except Rejection as rejection:
        return reject(state, rejection, request_id)
    faulty = await injected_fault(request, state, request_id)
    if faulty is not None:
        return faulty
    task = Task(
        task_id=str(uuid.uuid4()),
        origin=origin(request),
        request=generation,
        failure=failure,
        submit_time=state.now(),
    )
    request.app[TASKS][task.task_id] = task
    if generation is not None and failure is None:  # a key of several: its budget counts it
        state.accounts.bill(state.config, key, generation.images_to_make)
    runner = asyncio.get_running_loop().create_task(run_task(state, task))
    runners = request.app[RUNNERS]
    runners.add(runner)
    runner.add_done_callback(runners.discard)
    state.succeeded()
    return json_response(
        {"output": {"task_status": "PENDING", "task_id": task.task_id}, "request_id": request_id}
    )


async def poll(request: web.Request) -> web.Response:
    """``GET /api/v1/tasks/{task_id}``: the task's status (UNKNOWN if unknown or expired)."""
    state = request.app[STATE]
    request_id = str(uuid.uuid4())
    try:
        check_key(request, state)
    except Rejection as rejection:
        return json_response(
            error_body(request_id, rejection.code, rejection.message), rejection.status
        )
    state.counters.task_polls += 1
    task_id = request.match_info["task_id"]
    task = request.app[TASKS].get(task_id)
    return json_response(
        poll_body(
            task,
            task_id,
            request_id,
            state.now(),
            error_in_output=state.config.task_error_in_output,
        )
    )


async def cancel(request: web.Request) -> web.Response:
    """``POST /api/v1/tasks/{task_id}/cancel``: only a PENDING task can be canceled."""
    state = request.app[STATE]
    request_id = str(uuid.uuid4())
    try:
        check_key(request, state)
    except Rejection as rejection:
        return json_response(
            error_body(request_id, rejection.code, rejection.message), rejection.status
        )
    task = request.app[TASKS].get(request.match_info["task_id"])
    if task is None or task.status != "PENDING":
        # SDK docstring: only PENDING tasks can be canceled.
        message = "Failed to cancel the task, please confirm if the task is in PENDING status."
        return json_response(error_body(request_id, "UnsupportedOperation", message), 400)
    task.status = "CANCELED"
    task.end_time = state.now()
    return json_response({"request_id": request_id})


async def stop_tasks(app: web.Application) -> None:
    """On shutdown: cancel every task runner and wait for them."""
    pending = app[RUNNERS]
    runners = list(pending)
    for runner in runners:
        runner.cancel()
    await asyncio.gather(*runners, return_exceptions=True)
