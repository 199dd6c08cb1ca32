"""The async task API's tasks: records, their lifecycle and their poll bodies.

A task goes PENDING -> RUNNING -> SUCCEEDED | FAILED (or CANCELED while PENDING). It waits
PENDING while ``max_concurrency`` generations are in flight (assumed: other Wan models queue),
spends a tenth of its latency queued and the rest RUNNING, and bills its images when it succeeds.
Tasks older than 24 h on the mock's clock read as UNKNOWN.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from wanbatch.mock._bodies import edit_choices, interleave_items, task_time, usage
from wanbatch.mock._errors import Rejection
from wanbatch.mock._sizing import output_size
from wanbatch.mock._state import MockState
from wanbatch.mock._validate import GenerationRequest

__all__ = ["Task", "poll_body", "run_task"]

#: task_id (and result) stay queryable for 24 h.
TASK_TTL_S = 86400.0
_QUEUED_SHARE = 0.1


@dataclass
class Task:
    """One submitted task; mutated only by :func:`run_task` and cancel."""

    task_id: str
    origin: str
    request: GenerationRequest | None
    failure: Rejection | None
    submit_time: float
    status: str = "PENDING"
    scheduled_time: float | None = None
    end_time: float | None = None
    result: dict[str, Any] = field(default_factory=dict)


async def run_task(state: MockState, task: Task) -> None:
    """Drive ``task`` to its end state."""
    duration = state.behaviour.latency()
    await asyncio.sleep(duration * _QUEUED_SHARE)
    while not state.has_free_slot():
        state.slot_freed.clear()
        await state.slot_freed.wait()
    if task.status != "PENDING":  # canceled while queued
        return
    task.status = "RUNNING"
    task.scheduled_time = state.now()
    state.enter()
    try:
        await asyncio.sleep(duration * (1 - _QUEUED_SHARE))
        if task.failure is not None or task.request is None:
            task.status = "FAILED"
            return
        request = task.request
        size = output_size(
            request.size, interleave=request.interleave, last_image=request.last_image_size
        )
        count = request.images_to_make
        urls = state.issue_urls(task.origin, size, count, prompt=request.prompt, seed=request.seed)
        if request.interleave:
            # Async interleave: one choice holding the text and image items.
            content = interleave_items(request.prompt, urls)
            choices = [
                {"finish_reason": "stop", "message": {"role": "assistant", "content": content}}
            ]
        else:
            choices = edit_choices(urls)
        task.result = {"choices": choices, "usage": usage(count, size)}
        state.counters.billed(request.prompt, count)
        task.status = "SUCCEEDED"
    finally:
        task.end_time = state.now()
        state.leave()


def poll_body(
    task: Task | None, task_id: str, request_id: str, now: float, *, error_in_output: bool = False
) -> dict[str, Any]:
    """The ``GET /tasks/{id}`` body: times as they exist, choices/usage only when SUCCEEDED.

    A FAILED task's ``code``/``message`` sit at the top level (the documented example), or
    inside ``output`` with ``error_in_output`` (the older task docs' shape).
    """
    if task is None or now - task.submit_time > TASK_TTL_S:
        return {"request_id": request_id, "output": {"task_id": task_id, "task_status": "UNKNOWN"}}
    output: dict[str, Any] = {
        "task_id": task.task_id,
        "task_status": task.status,
        "submit_time": task_time(task.submit_time),
    }
    if task.scheduled_time is not None:
        output["scheduled_time"] = task_time(task.scheduled_time)
    if task.end_time is not None:
        output["end_time"] = task_time(task.end_time)
    body: dict[str, Any] = {"request_id": request_id, "output": output}
    if task.status == "SUCCEEDED":
        output["finished"] = True
        output["choices"] = task.result["choices"]
        body["usage"] = task.result["usage"]
    elif task.status == "FAILED" and task.failure is not None:
        where = output if error_in_output else body
        where["code"] = task.failure.code
        where["message"] = task.failure.message
    return body
