"""Raw HTTP against the mock: the JSON/SSE shapes, async tasks, downloads and control routes.

Each shape is checked against the service's documented examples (docs/service.md).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from mock_helpers import (
    ASYNC_PATH,
    AUTH,
    SSE,
    SYNC_PATH,
    body,
    data_uri,
    interleave_body,
    parse_sse,
    post,
    running,
)

from wanbatch.mock import MockConfig, MockServer

pytestmark = pytest.mark.anyio

TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
ASYNC = {**AUTH, "X-DashScope-Async": "enable"}


def urls_of(answer: dict[str, Any]) -> list[str]:
    return [
        item["image"]
        for choice in answer["output"]["choices"]
        for item in choice["message"]["content"]
        if item.get("type") == "image"
    ]


async def test_edit_answer_has_the_documented_shape() -> None:
    async with running(MockConfig(image_size=(32, 32))) as (_mock, session):
        status, content_type, answer = await post(session, SYNC_PATH, body(n=3, size="1376*768"))
    assert (status, content_type) == (200, "application/json")
    assert isinstance(answer, dict)
    assert set(answer) == {"output", "usage", "request_id"}
    assert answer["output"]["finished"] is True
    choices = answer["output"]["choices"]
    assert len(choices) == 3  # one choice per image
    for choice in choices:
        assert choice["finish_reason"] == "stop"
        assert choice["message"]["role"] == "assistant"
        (item,) = choice["message"]["content"]
        assert set(item) == {"image", "type"} and item["type"] == "image"
    assert answer["usage"] == {
        "image_count": 3,
        "input_tokens": 0,
        "output_tokens": 0,
        "size": "1376*768",
        "total_tokens": 0,
    }
    assert re.fullmatch(r"[0-9a-f-]{36}", answer["request_id"])


@pytest.mark.parametrize(
    ("size", "image", "expected"),
    [
        ("1K", (320, 320), "1280*1280"),
        ("2K", (320, 320), "2048*2048"),
        ("1K", (480, 240), "1808*912"),  # follows the last image's 2:1 ratio
        (None, (240, 480), "912*1808"),  # edit default is 1K
        ("1000*1000", (320, 320), "992*992"),  # rounded down to multiples of 16
    ],
)
async def test_edit_output_size(size: str | None, image: tuple[int, int], expected: str) -> None:
    params = {} if size is None else {"size": size}
    payload = body(images=[data_uri(320, 320), data_uri(*image)], n=1, **params)
    async with running(MockConfig(image_size=(16, 16))) as (_mock, session):
        status, _, answer = await post(session, SYNC_PATH, payload)
    assert status == 200 and isinstance(answer, dict)
    assert answer["usage"]["size"] == expected


async def test_interleave_stream_framing_and_incremental_items() -> None:
    headers = {**AUTH, "x-dashscope-sse": "ENABLE"}  # names and values are case-insensitive
    async with running(MockConfig(image_size=(16, 16))) as (mock, session):
        async with session.post(SYNC_PATH, json=interleave_body(stream=True), headers=headers) as r:
            assert r.status == 200
            assert r.content_type == "text/event-stream"
            events = parse_sse(await r.text())
        counters = mock.counters()
    assert [event["id"] for event in events] == [str(n) for n in range(1, len(events) + 1)]
    assert all(event["event"] == "result" for event in events)
    assert all(event["comments"] == [":HTTP_STATUS/200"] for event in events)
    payloads = [event["data"] for event in events]
    assert [p["output"]["choices"][0]["finish_reason"] for p in payloads[:-1]] == [None] * (
        len(payloads) - 1
    )
    last = payloads[-1]
    assert last["output"]["choices"][0]["finish_reason"] == "stop"
    assert last["output"]["finished"] is True
    assert all(p["output"]["finished"] is False for p in payloads[:-1])
    assert "usage" in last and all("usage" not in p for p in payloads[:-1])
    items = [i for p in payloads for i in p["output"]["choices"][0]["message"]["content"]]
    kinds = [item["type"] for item in items]
    # Incremental: every item appears once; max_images defaults to 5 (the service's default).
    assert kinds.count("image") == 5 == last["usage"]["image_count"]
    assert kinds.count("text") >= 2
    assert len({item.get("image") for item in items if "image" in item}) == 5
    assert last["usage"]["size"] == "1280*1280"  # no image, no size
    assert counters.images_generated == 5 and counters.calls_by_outcome == {"200": 1}


async def test_interleave_follows_the_input_image() -> None:
    async with running() as (_mock, session):
        payload = body("story", images=[data_uri(480, 320)], enable_interleave=True, max_images=1)
        async with session.post(SYNC_PATH, json=payload, headers=SSE) as r:
            events = parse_sse(await r.text())
    assert events[-1]["data"]["usage"]["size"] == "480*320"


@pytest.mark.parametrize("size", ["1K", "2K", "1600*1600"])
async def test_interleave_refuses_edit_only_sizes(size: str) -> None:
    async with running() as (_mock, session):
        async with session.post(SYNC_PATH, json=interleave_body(size=size), headers=SSE) as r:
            assert r.status == 400
            assert (await r.json())["code"] == "InvalidParameter"


async def test_errors_are_json_with_request_id() -> None:
    async with running() as (_mock, session):
        status, content_type, answer = await post(session, SYNC_PATH, b"{not json")
        assert (status, content_type) == (400, "application/json")
        assert isinstance(answer, dict) and set(answer) == {"request_id", "code", "message"}
        assert answer["code"] == "InvalidParameter"
        status, _, answer = await post(session, SYNC_PATH, {"model": "wan2.6-image"})
        assert (status, answer["code"]) == (400, "BadRequest.EmptyInput")  # type: ignore[index]
        status, _, answer = await post(session, SYNC_PATH, body(), headers={})
        assert (status, answer["code"]) == (401, "InvalidApiKey")  # type: ignore[index]
        status, _, answer = await post(session, SYNC_PATH, body(), {"Authorization": "Bearer "})
        assert (status, answer["code"]) == (401, "InvalidApiKey")  # type: ignore[index]
        status, content_type, answer = await post(session, "services/aigc/no-such/api", body())
        assert (status, content_type, answer["code"]) == (404, "application/json", "NotFound")  # type: ignore[index]
        async with session.get(SYNC_PATH, headers=AUTH) as r:
            assert (r.status, r.content_type) == (404, "application/json")


async def test_unknown_parameters_are_accepted_and_prompts_truncated() -> None:
    long_prompt = "x" * 2500
    async with running(MockConfig(image_size=(16, 16))) as (mock, session):
        payload = body(long_prompt, n=1, is_async=False, something_new={"a": 1})
        payload["parameters"]["negative_prompt"] = "y" * 900
        status, _, _ = await post(session, SYNC_PATH, payload)
        assert status == 200
        assert mock.counters().images_by_prompt == {"x" * 2000: 1}


async def test_async_task_lifecycle() -> None:
    async with running(MockConfig(image_size=(16, 16), latency=0.2)) as (mock, session):
        status, _, answer = await post(session, ASYNC_PATH, body(n=2), headers=ASYNC)
        assert status == 200 and isinstance(answer, dict)
        assert set(answer) == {"output", "request_id"}
        assert answer["output"]["task_status"] == "PENDING"
        task_id = answer["output"]["task_id"]
        seen = []
        for _ in range(200):  # bounded polling; no timing asserted
            async with session.get(f"tasks/{task_id}", headers=AUTH) as r:
                assert r.status == 200 and r.content_type == "application/json"
                polled = await r.json()
            status_now = polled["output"]["task_status"]
            if not seen or seen[-1] != status_now:
                seen.append(status_now)
            if status_now == "SUCCEEDED":
                break
            assert "usage" not in polled and "choices" not in polled["output"]
            await asyncio.sleep(0.02)
        assert seen[-1] == "SUCCEEDED"
        assert set(seen) <= {"PENDING", "RUNNING", "SUCCEEDED"}
        output = polled["output"]
        for key in ("submit_time", "scheduled_time", "end_time"):
            assert TIME.match(output[key]), output[key]
        assert output["submit_time"] <= output["scheduled_time"] <= output["end_time"]
        assert output["finished"] is True and len(output["choices"]) == 2
        assert polled["usage"]["image_count"] == 2
        counters = mock.counters()
        assert counters.images_generated == 2 and counters.task_polls >= 1
        # Cancel only works while PENDING.
        async with session.post(f"tasks/{task_id}/cancel", headers=AUTH) as r:
            assert r.status == 400 and (await r.json())["code"] == "UnsupportedOperation"
        # Tasks are queryable for 24 h, then UNKNOWN.
        mock.advance_clock(86401)
        async with session.get(f"tasks/{task_id}", headers=AUTH) as r:
            assert (await r.json())["output"]["task_status"] == "UNKNOWN"


async def test_async_submit_needs_the_async_header() -> None:
    async with running() as (mock, session):
        status, _, answer = await post(session, ASYNC_PATH, body())
        assert status == 403 and isinstance(answer, dict)
        assert answer["code"] == "AccessDenied"
        assert answer["message"] == "current user api does not support synchronous calls"
        async with session.get("tasks/no-such-task", headers=AUTH) as r:
            assert r.status == 200
            assert (await r.json())["output"] == {
                "task_id": "no-such-task",
                "task_status": "UNKNOWN",
            }
        assert mock.counters().images_generated == 0


async def wait_for_end(session: aiohttp.ClientSession, task_id: str) -> dict[str, Any]:
    for _ in range(200):
        async with session.get(f"tasks/{task_id}", headers=AUTH) as r:
            polled: dict[str, Any] = await r.json()
        if polled["output"]["task_status"] in ("SUCCEEDED", "FAILED", "CANCELED"):
            return polled
        await asyncio.sleep(0.02)
    raise AssertionError("task never ended")


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        (interleave_body(n=2), "InvalidParameter", "num_images_per_prompt must be 1"),
        (
            body(images=["https://images.example.invalid/a.png"]),
            "InternalError.Algo.InvalidParameter",
            "Failed to download multimodal content",
        ),
        (body("a forbidden thing"), "DataInspectionFailed", "inappropriate content"),
    ],
)
async def test_async_task_fails_with_top_level_code(
    payload: dict[str, Any], code: str, message: str
) -> None:
    config = MockConfig(inspection_triggers=("forbidden",))
    async with running(config) as (mock, session):
        status, _, answer = await post(session, ASYNC_PATH, payload, headers=ASYNC)
        assert status == 200 and isinstance(answer, dict)
        polled = await wait_for_end(session, answer["output"]["task_id"])
        assert polled["output"]["task_status"] == "FAILED"
        assert polled["code"] == code and message in polled["message"]
        assert "choices" not in polled["output"] and "usage" not in polled
        assert mock.counters().images_generated == 0


async def test_async_cancel_while_pending() -> None:
    async with running(MockConfig(latency=20)) as (mock, session):
        _, _, answer = await post(session, ASYNC_PATH, body(n=1), headers=ASYNC)
        task_id = answer["output"]["task_id"]  # type: ignore[index]
        async with session.post(f"tasks/{task_id}/cancel", headers=AUTH) as r:
            assert r.status == 200
        async with session.get(f"tasks/{task_id}", headers=AUTH) as r:
            polled = await r.json()
        assert polled["output"]["task_status"] == "CANCELED"
        assert TIME.match(polled["output"]["end_time"])
        assert mock.counters().images_generated == 0


async def test_async_tasks_queue_behind_the_concurrency_cap() -> None:
    async with running(MockConfig(max_concurrency=1, latency=0.2)) as (mock, session):
        ids = []
        for _ in range(3):
            _, _, answer = await post(session, ASYNC_PATH, body(n=1), headers=ASYNC)
            ids.append(answer["output"]["task_id"])  # type: ignore[index]
        for task_id in ids:
            assert (await wait_for_end(session, task_id))["output"]["task_status"] == "SUCCEEDED"
        counters = mock.counters()
        assert counters.throttled == 0 and counters.peak_in_flight == 1
        assert counters.images_generated == 3


async def test_image_urls_are_signed_and_served() -> None:
    async with running(MockConfig(image_size=(40, 24))) as (mock, session):
        _, _, answer = await post(session, SYNC_PATH, body(n=1, size="1024*1024"))
        (url,) = urls_of(answer)  # type: ignore[arg-type]
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        assert set(query) == {"Expires", "OSSAccessKeyId", "Signature"}
        assert query["OSSAccessKeyId"][0].startswith("LTAI")
        expires = int(query["Expires"][0])
        assert 86390 < expires - (await _now(session)) <= 86400
        async with session.get(url) as r:
            assert r.status == 200 and r.content_type == "image/png"
            data = await r.read()
            assert int(r.headers["Content-Length"]) == len(data)
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (40, 24)
        async with session.head(url) as r:
            assert r.status == 200
        # Tampered signature / moved expiry / another object: 403 SignatureDoesNotMatch.
        tampered = url.replace("Signature=", "Signature=AAAA")
        moved = url.replace(f"Expires={expires}", f"Expires={expires + 1}")
        for bad in (tampered, moved):
            async with session.get(bad) as r:
                assert r.status == 403 and r.content_type == "application/xml"
                assert "<Code>SignatureDoesNotMatch</Code>" in await r.text()
        async with session.get(url.split("?")[0]) as r:
            assert r.status == 403
        async with session.get(f"{mock.origin}/dashscope-result-mock/nope.png") as r:
            assert r.status == 404 and "<Code>NoSuchKey</Code>" in await r.text()
        mock.advance_clock(86401)
        async with session.get(url) as r:
            assert r.status == 403
            text = await r.text()
            assert "<Code>AccessDenied</Code>" in text
            assert "<Message>Request has expired.</Message>" in text
        downloads = mock.counters().downloads_by_outcome
        assert downloads == {
            "ok": 2,
            "expired": 1,
            "bad_signature": 3,
            "not_found": 1,
            "truncated": 0,
        }
        assert mock.counters().bytes_served == len(data)  # HEAD sends no body


async def _now(session: aiohttp.ClientSession) -> float:
    async with session.post("/mock/clock", json={"advance": 0}) as r:
        return float((await r.json())["now"])


async def test_control_routes() -> None:
    async with running(MockConfig(api_key="sk-very-secret")) as (mock, session):
        async with session.get("/mock/config") as r:
            config = await r.json()
        assert config["api_key"] != "sk-very-secret" and "sk-very-secret" not in json.dumps(config)
        async with session.post("/mock/config", json={"max_concurrency": 2, "rps": 9}) as r:
            assert r.status == 200
        assert (mock.config.max_concurrency, mock.config.rps) == (2, 9)
        async with session.post("/mock/config", json={"no_such_knob": 1}) as r:
            assert r.status == 400
        async with session.post("/mock/config", json={"api_key": 12345}) as r:
            assert r.status == 400 and "12345" not in await r.text()
        async with session.post("/mock/clock", json={"advance": 60}) as r:
            assert (await r.json())["clock_offset"] == 60
        status, _, answer = await post(
            session, SYNC_PATH, body(), {"Authorization": "Bearer sk-guess"}
        )
        assert status == 401 and "sk-guess" not in json.dumps(answer)
        async with session.get("/mock/counters") as r:
            counters = await r.json()
        assert counters["calls"] == 1
        assert counters["calls_by_outcome"] == {"401:InvalidApiKey": 1}
        async with session.post("/mock/reset-counters") as r:
            assert (await r.json())["calls"] == 0
        assert mock.counters().calls == 0


async def test_server_cannot_be_reused() -> None:
    server = MockServer()
    async with server:
        pass
    with pytest.raises(RuntimeError):
        async with server:
            pass
    with pytest.raises(RuntimeError):
        server.counters()


async def test_a_failed_task_can_carry_its_code_inside_output() -> None:
    config = MockConfig(inspection_triggers=("forbidden",), task_error_in_output=True)
    async with running(config) as (_, session):
        _, _, answer = await post(session, ASYNC_PATH, body("a forbidden thing"), headers=ASYNC)
        polled = await wait_for_end(session, answer["output"]["task_id"])  # type: ignore[index]
        assert polled["output"]["task_status"] == "FAILED"
        assert polled["output"]["code"] == "DataInspectionFailed" and polled["output"]["message"]
        assert "code" not in polled and "message" not in polled


async def test_an_interleaved_task_holds_text_and_images_in_one_choice() -> None:
    async with running(MockConfig(image_size=(16, 16))) as (_, session):
        payload = interleave_body(max_images=2)
        payload["parameters"].pop("stream", None)  # a task needs no stream
        status, _, answer = await post(session, ASYNC_PATH, payload, headers=ASYNC)
        assert status == 200
        polled = await wait_for_end(session, answer["output"]["task_id"])  # type: ignore[index]
        assert polled["output"]["task_status"] == "SUCCEEDED"
        (choice,) = polled["output"]["choices"]
        kinds = [item["type"] for item in choice["message"]["content"]]
        assert kinds.count("image") == 2 and "text" in kinds
        assert polled["usage"]["image_count"] == 2
