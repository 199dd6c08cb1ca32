"""The task API's wire protocol (pure) and the journal fold of ``submitted`` records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wanbatch._errors import BatchFatal, JobRejected, RetryableApiError, Throttled
from wanbatch._snapshot import state_from_header, state_header
from wanbatch._state import replay
from wanbatch._tasks import (
    cancel_path,
    parse_poll,
    parse_submit,
    poll_delay,
    task_body,
    task_headers,
    task_path,
)

URL = "https://bucket.example/x.png?Expires=1700000000"


def dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def test_submit_headers_and_body() -> None:
    headers = task_headers("sk-x")
    assert headers["X-DashScope-Async"] == "enable" and "X-DashScope-Sse" not in headers
    body = {"model": "m", "input": {}, "parameters": {"enable_interleave": True, "stream": True}}
    assert task_body(body)["parameters"] == {"enable_interleave": True}
    assert body["parameters"]["stream"] is True  # the job's own body is not changed
    assert task_body({"model": "m"}) == {"model": "m"}
    assert task_path("a/b?c") == "/tasks/a%2Fb%3Fc" and cancel_path("t") == "/tasks/t/cancel"


def test_poll_delay_is_jittered_between_one_and_two_intervals() -> None:
    assert poll_delay(5.0, 0.0) == 5.0 and poll_delay(5.0, 0.999) < 10.0


def test_parse_submit() -> None:
    answer = {"output": {"task_status": "PENDING", "task_id": "t-1"}, "request_id": "r-1"}
    assert parse_submit(200, dumps(answer)) == ("t-1", "r-1")
    with pytest.raises(Throttled) as throttled:
        parse_submit(429, dumps({"code": "Throttling.RateQuota", "message": "x"}), "3")
    assert throttled.value.retry_after == 3.0
    with pytest.raises(BatchFatal):
        parse_submit(401, dumps({"code": "InvalidApiKey", "message": "bad key"}))
    with pytest.raises(RetryableApiError) as empty:
        parse_submit(200, dumps({"output": {}}))
    assert empty.value.code == "EmptyOutput"


@pytest.mark.parametrize("status", ["PENDING", "RUNNING", "CANCELED", "UNKNOWN"])
def test_poll_of_a_task_without_an_outcome(status: str) -> None:
    poll = parse_poll(200, dumps({"request_id": "r", "output": {"task_status": status}}))
    assert (poll.status, poll.result, poll.error, poll.request_id) == (status, None, None, "r")


def test_poll_of_a_succeeded_task_reads_the_result() -> None:
    body = {
        "request_id": "r",
        "output": {
            "task_id": "t",
            "task_status": "SUCCEEDED",
            "finished": True,
            "choices": [
                {
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": [
                            {"type": "text", "text": "once"},
                            {"type": "image", "image": URL},
                        ],
                    },
                }
            ],
        },
        "usage": {"image_count": 1, "size": "1024*1024"},
    }
    poll = parse_poll(200, dumps(body))
    assert poll.status == "SUCCEEDED" and poll.result is not None
    assert poll.result.image_urls == (URL,) and poll.result.texts == ("once",)
    assert poll.result.size == "1024*1024"


@pytest.mark.parametrize(
    ("body", "kind", "code"),
    [
        # The documented FAILED example: code and message at the top level.
        (
            {
                "output": {"task_status": "FAILED"},
                "code": "InvalidParameter",
                "message": "num_images_per_prompt must be 1",
            },
            JobRejected,
            "InvalidParameter",
        ),
        # Older task docs: inside output.
        (
            {"output": {"task_status": "FAILED", "code": "DataInspectionFailed", "message": "x"}},
            JobRejected,
            "DataInspectionFailed",
        ),
        (
            {"output": {"task_status": "FAILED", "code": "InternalError"}},
            RetryableApiError,
            "InternalError",
        ),
        ({"output": {"task_status": "FAILED", "code": "Arrearage"}}, BatchFatal, "Arrearage"),
        # No code anywhere: the task's own failure, retried (a failed task is not billed).
        ({"output": {"task_status": "FAILED"}}, RetryableApiError, "TaskFailed"),
        # SUCCEEDED without an image: a fault of the service, retried.
        ({"output": {"task_status": "SUCCEEDED", "choices": []}}, RetryableApiError, "EmptyOutput"),
    ],
)
def test_poll_of_a_failed_task_is_classified(body: dict[str, Any], kind: type, code: str) -> None:
    poll = parse_poll(200, dumps({"request_id": "r", **body}))
    assert poll.status == "FAILED" and isinstance(poll.error, kind) and poll.error.code == code


def test_a_failed_poll_raises() -> None:
    with pytest.raises(BatchFatal):
        parse_poll(401, dumps({"code": "InvalidApiKey", "message": "x"}))
    with pytest.raises(RetryableApiError):
        parse_poll(502, b"<html>bad gateway</html>")
    with pytest.raises(RetryableApiError):
        parse_poll(200, dumps({"output": {}}))


def line(event: str, **fields: Any) -> str:
    return json.dumps({"v": 1, "event": event, **fields})


def test_the_fold_keeps_open_tasks_until_the_job_is_answered() -> None:
    state = replay(
        [
            line("submitted", id="a", task="t-a"),
            line("submitted", id="b", task="t-b"),
            line("submitted", id="c", task="t-c"),
            line("submitted", id="d", task="t-d"),
            line("generated", id="a", fp="f", images=[{"url": URL, "expires": None}]),
            line("attempt", id="b", code="TaskUnknown", possibly_billed=True),
            line("failed", id="c", code="DataInspectionFailed"),
            # A cut answer is not the task's end: the task is polled again for its result.
            line("attempt", id="d", code="JournalCut", possibly_billed=True),
            line("submitted", id="b", task="t-b2"),
            line("submitted", id="e", task=""),  # damaged
        ]
    )
    assert state.tasks == {"b": "t-b2", "d": "t-d"}
    assert state.damaged == [10]
    again = state_from_header(json.loads(json.dumps(state_header(state))), state.done)
    assert again.tasks == state.tasks
    older = state_header(state)
    del older["tasks"]  # a snapshot written before task mode
    assert state_from_header(older, state.done).tasks == {}
