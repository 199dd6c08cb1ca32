"""The task API's wire protocol, sans-I/O: submit, poll and cancel requests and their answers.

Pure (stdlib only, like :mod:`wanbatch._protocol`; it reuses the answer and error parsing of
:mod:`wanbatch._response` and :mod:`wanbatch._answer`).
A task is submitted to the image-generation path with ``X-DashScope-Async: enable`` and the
same body as a synchronous call; the answer carries only its id (``output.task_id``, status
``PENDING``). ``GET /tasks/{id}`` then reads its status (docs/service.md, Task mode)::

    PENDING -> RUNNING -> SUCCEEDED | FAILED       (CANCELED: cancelled while PENDING)
    UNKNOWN: an id the service never issued, or past its retention (24 h)

A SUCCEEDED answer has the synchronous answer's shape (``output.choices``, ``usage``); a FAILED
one carries ``code``/``message`` at the top level or inside ``output`` (both are read).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from wanbatch._answer import GenerationResult, error_from_body
from wanbatch._errors import ApiError, api_error
from wanbatch._policy import parse_retry_after
from wanbatch._protocol import build_headers
from wanbatch._response import parse_json_response

__all__ = [
    "ENDED",
    "GONE",
    "TASK_SUBMIT_PATH",
    "TaskPoll",
    "cancel_path",
    "parse_poll",
    "parse_submit",
    "poll_delay",
    "task_body",
    "task_headers",
    "task_path",
]

#: Where tasks are submitted, relative to the ``.../api/v1`` base (not the synchronous path).
TASK_SUBMIT_PATH = "/services/aigc/image-generation/generation"
#: Statuses after which a task never changes again.
ENDED = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"})
#: Statuses that leave no result and no error: the job must be generated again.
GONE = frozenset({"CANCELED", "UNKNOWN"})


def task_path(task_id: str) -> str:
    """``/tasks/{id}``, the id quoted (it is read from a journal: never trusted as a path)."""
    return f"/tasks/{quote(task_id, safe='')}"


def cancel_path(task_id: str) -> str:
    """``/tasks/{id}/cancel`` (the service cancels only a PENDING task)."""
    return task_path(task_id) + "/cancel"


def task_headers(api_key: str) -> dict[str, str]:
    """The headers of a submission: JSON in and out, ``X-DashScope-Async: enable``."""
    headers = build_headers(api_key, stream=False)
    headers["X-DashScope-Async"] = "enable"
    return headers


def task_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The synchronous request body as a task: the same, without ``parameters.stream``.

    Interleaved output needs the event stream only on the synchronous path; a task returns
    its text and images in its final result.
    """
    params = body.get("parameters")
    if not isinstance(params, Mapping) or "stream" not in params:
        return dict(body)
    return {**body, "parameters": {k: v for k, v in params.items() if k != "stream"}}


def poll_delay(low: float, rand: float) -> float:
    """Seconds to the next poll: between ``low`` and twice it (jitter spreads the polls)."""
    return low * (1.0 + rand)


@dataclass(frozen=True, slots=True)
class TaskPoll:
    """One ``GET /tasks/{id}`` answer: the status, and the result or error once it ended."""

    status: str
    request_id: str | None = None
    result: GenerationResult | None = None
    #: The error of a FAILED task (classified like a synchronous error answer).
    error: ApiError | None = None


def _payload(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None


def _request_id(payload: Mapping[str, Any]) -> str | None:
    value = payload.get("request_id")
    return value if isinstance(value, str) and value else None


def parse_submit(
    status: int,
    body: bytes,
    retry_after: str | None = None,
    *,
    now: float | None = None,
) -> tuple[str, str | None]:
    """The task id (and request id) of a submission's answer.

    Raises:
        ApiError: the error answer, classified as a synchronous one would be; or code
            ``EmptyOutput`` (retried) for a 2xx answer without a task id.
    """
    payload = _payload(body)
    if not 200 <= status < 300:
        raise error_from_body(
            status, payload, body, retry_after=parse_retry_after(retry_after, now)
        )
    if isinstance(payload, dict):
        output = payload.get("output")
        task_id = output.get("task_id") if isinstance(output, dict) else None
        if isinstance(task_id, str) and task_id:
            return task_id, _request_id(payload)
        if payload.get("code"):
            raise error_from_body(status, payload, body)
    raise api_error(status, "EmptyOutput", "the submission's answer holds no task id")


def parse_poll(status: int, body: bytes, content_type: str = "") -> TaskPoll:
    """What one poll says about the task.

    Raises:
        ApiError: the poll itself failed (a non-2xx answer, or one without a task status):
            that is no news about the task, which the caller polls again unless it is fatal.
    """
    payload = _payload(body)
    if not 200 <= status < 300:
        raise error_from_body(status, payload, body)
    output = payload.get("output") if isinstance(payload, dict) else None
    task_status = output.get("task_status") if isinstance(output, dict) else None
    if not isinstance(payload, dict) or not isinstance(task_status, str):
        raise api_error(status, "EmptyOutput", "the poll's answer holds no task status")
    request_id = _request_id(payload)
    if task_status == "SUCCEEDED":
        # The synchronous answer's shape; no image at all is a fault, retried like one.
        try:
            result = parse_json_response(status, body, content_type or "application/json")
        except ApiError as exc:
            return TaskPoll("FAILED", request_id, error=exc)
        return TaskPoll(task_status, request_id, result=result)
    if task_status == "FAILED":
        error = error_from_body(status, payload, body)
        if error.code == f"HTTP{status}":  # no code anywhere: a failure of the task itself
            error = api_error(status, "TaskFailed", error.message or "the task failed", request_id)
        return TaskPoll(task_status, request_id, error=error)
    return TaskPoll(task_status, request_id)
