"""The sans-I/O protocol: request framing, complete answers and errors (docs/service.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wanbatch._answer import GenerationResult
from wanbatch._errors import (
    ApiError,
    BatchFatal,
    JobRejected,
    RetryableApiError,
    Throttled,
)
from wanbatch._protocol import GENERATION_PATH, build_headers, encode_body, generation_url
from wanbatch._response import parse_json_response

JSON = "application/json"

# The documented editing-mode answer, verbatim.
EDIT_OK = b"""{"output":{"choices":[{"finish_reason":"stop",
   "message":{"role":"assistant","content":[{"image":"https://dashscope-result-intl.oss-cn-singapore.aliyuncs.com/xxx.png?Expires=xxx","type":"image"}]}}],
  "finished":true},
 "usage":{"image_count":1,"input_tokens":0,"output_tokens":0,"size":"1376*768","total_tokens":0},
 "request_id":"a3f4befe-cacd-49c9-8298-xxxxxx"}"""

# The documented error answer, verbatim.
ERROR_400 = b"""{"request_id":"a4d78a5f-655f-9639-8437-xxxxxx","code":"InvalidParameter","message":"num_images_per_prompt must be 1"}"""  # noqa: E501


def _choice(*content: dict[str, Any], stop: bool = True) -> dict[str, Any]:
    return {
        "finish_reason": "stop" if stop else None,
        "message": {"role": "assistant", "content": list(content)},
    }


def _body(*choices: dict[str, Any], **top: Any) -> bytes:
    return json.dumps({"output": {"choices": list(choices), "finished": True}, **top}).encode()


def test_generation_path_and_headers() -> None:
    assert GENERATION_PATH == "/services/aigc/multimodal-generation/generation"
    plain = build_headers("sk-1", stream=False)
    assert plain["Authorization"] == "Bearer sk-1"
    assert plain["Content-Type"] == "application/json"
    assert plain["Accept"] == "application/json"
    assert plain["User-Agent"].startswith("wanbatch/")
    assert "X-DashScope-Sse" not in plain
    stream = build_headers("sk-1", stream=True)
    assert stream["Accept"] == "text/event-stream"
    assert stream["X-DashScope-Sse"] == "enable"


@pytest.mark.parametrize("base", ["http://127.0.0.1:1/api/v1", "http://127.0.0.1:1/api/v1/"])
def test_generation_url_joins_the_path_to_the_api_root(base: str) -> None:
    assert generation_url(base) == "http://127.0.0.1:1/api/v1" + GENERATION_PATH


def test_the_body_is_json_in_utf8_with_non_ascii_escaped() -> None:
    body = {"model": "wan2.6-image", "input": {"messages": [{"content": [{"text": "猫 é"}]}]}}
    raw = encode_body(body)
    assert json.loads(raw) == body
    assert raw.isascii() and b"\\u732b" in raw
    assert raw.startswith(b'{"model": "wan2.6-image", "input": ')


def test_the_documented_edit_answer() -> None:
    result = parse_json_response(200, EDIT_OK, JSON)
    assert result == GenerationResult(
        request_id="a3f4befe-cacd-49c9-8298-xxxxxx",
        image_urls=(
            "https://dashscope-result-intl.oss-cn-singapore.aliyuncs.com/xxx.png?Expires=xxx",
        ),
        texts=(),
        usage={
            "image_count": 1,
            "input_tokens": 0,
            "output_tokens": 0,
            "size": "1376*768",
            "total_tokens": 0,
        },
        finished=True,
    )
    assert result.image_count == 1
    assert result.size == "1376*768"


def test_images_are_flattened_across_choices_and_items_in_order() -> None:
    body = _body(
        _choice({"type": "image", "image": "u1"}, {"image": "u2"}),  # the "type" may be absent
        _choice({"type": "image", "image": "u3"}),
        _choice({"type": "text", "text": "a caption"}, {"type": "image", "image": "u4"}),
        usage={"image_count": 4},
    )
    result = parse_json_response(200, body, JSON)
    assert result.image_urls == ("u1", "u2", "u3", "u4")
    assert result.texts == ("a caption",)
    assert result.image_count == 4


def test_image_count_falls_back_to_the_urls() -> None:
    result = parse_json_response(200, _body(_choice({"image": "u1"}, {"image": "u2"})), JSON)
    assert result.usage == {}
    assert result.image_count == 2
    assert result.size is None


def test_finished_comes_from_output_or_finish_reason() -> None:
    body = json.dumps({"output": {"choices": [_choice({"image": "u"}, stop=False)]}}).encode()
    assert parse_json_response(200, body, JSON).finished is False
    body = json.dumps({"output": {"choices": [_choice({"image": "u"})]}}).encode()
    assert parse_json_response(200, body, JSON).finished is True


def test_the_documented_error_answer() -> None:
    with pytest.raises(JobRejected) as info:
        parse_json_response(400, ERROR_400, JSON)
    err = info.value
    assert (err.status, err.code, err.message, err.request_id) == (
        400,
        "InvalidParameter",
        "num_images_per_prompt must be 1",
        "a4d78a5f-655f-9639-8437-xxxxxx",
    )


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (
            429,
            b'{"code":"Throttling.RateQuota","message":"slow"}',
            Throttled,
            "Throttling.RateQuota",
        ),
        (401, b'{"code":"InvalidApiKey","message":"bad"}', BatchFatal, "InvalidApiKey"),
        (500, b'{"code":"InternalError","message":"x"}', RetryableApiError, "InternalError"),
        (400, b'{"code":"Arrearage","msg":"overdue"}', BatchFatal, "Arrearage"),
        (500, b'{"message":"no code"}', RetryableApiError, "HTTP500"),
        (418, b"[1, 2]", JobRejected, "HTTP418"),
    ],
)
def test_error_bodies(status: int, body: bytes, cls: type[ApiError], code: str) -> None:
    with pytest.raises(cls) as info:
        parse_json_response(status, body, JSON)
    assert info.value.code == code


def test_msg_is_a_fallback_for_message() -> None:
    with pytest.raises(BatchFatal, match="overdue"):
        parse_json_response(400, b'{"code":"Arrearage","msg":"overdue"}', JSON)


def test_a_non_json_gateway_page() -> None:
    page = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\n<body>" + b"x" * 500
    with pytest.raises(RetryableApiError) as info:
        parse_json_response(502, page, "text/html", "3")
    err = info.value
    assert err.code == "HTTP502"
    assert err.message.startswith("<html> <head><title>502 Bad Gateway</title></head> <body>x")
    assert len(err.message) == 200
    assert err.retry_after == 3.0


def test_undecodable_bytes_do_not_crash() -> None:
    with pytest.raises(RetryableApiError) as info:
        parse_json_response(503, b"\xff\xfe\x00oops", "")
    assert info.value.code == "HTTP503"


def test_retry_after_from_headers_mapping_and_http_date() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}
    with pytest.raises(Throttled) as info:
        parse_json_response(429, b'{"code":"Throttling"}', JSON, headers, now=1445412460.0)
    assert info.value.retry_after == 20.0
    with pytest.raises(Throttled) as info:
        parse_json_response(429, b'{"code":"Throttling"}', JSON, {"X": "1"})
    assert info.value.retry_after is None


def test_json_is_parsed_whatever_the_content_type_says() -> None:
    with pytest.raises(JobRejected):
        parse_json_response(400, ERROR_400, "text/plain")
    assert parse_json_response(200, EDIT_OK, "").image_urls


@pytest.mark.parametrize(
    "body",
    [
        b'{"request_id":"r"}',  # no output (the SDK raises TypeError here)
        b'{"output":{"choices":[]},"request_id":"r"}',  # no image
        b'{"output":{"choices":[{"message":{"role":"assistant","content":[{"text":"hi"}]}}]}}',
        b'{"output":"nonsense"}',
        b"null",
        b"not json",
    ],
)
def test_a_200_without_an_image_is_a_retryable_empty_output(body: bytes) -> None:
    with pytest.raises(RetryableApiError) as info:
        parse_json_response(200, body, JSON)
    assert info.value.code == "EmptyOutput"


@pytest.mark.parametrize(
    "body",
    [
        # The FAILED-task shape: code/message top-level or inside output.
        b'{"request_id":"r","output":{"task_id":"t","task_status":"FAILED"},'
        b'"code":"InvalidParameter","message":"num_images_per_prompt must be 1"}',
        b'{"request_id":"r","output":{"task_id":"t","task_status":"FAILED",'
        b'"code":"InvalidParameter","message":"num_images_per_prompt must be 1"}}',
    ],
)
def test_a_200_with_an_error_code_raises_by_the_code(body: bytes) -> None:
    with pytest.raises(JobRejected) as info:
        parse_json_response(200, body, JSON)
    assert (info.value.code, info.value.message, info.value.request_id) == (
        "InvalidParameter",
        "num_images_per_prompt must be 1",
        "r",
    )


def test_an_event_stream_error_body_is_read_by_its_data_line() -> None:
    body = (
        b'event:error\n:HTTP_STATUS/400\ndata:{"code":"InvalidParameter","message":"bad size",'
        b'"request_id":"r"}\n\n'
    )
    with pytest.raises(JobRejected) as info:
        parse_json_response(400, body, "text/event-stream;charset=UTF-8")
    assert (info.value.status, info.value.message, info.value.request_id) == (400, "bad size", "r")


def test_a_whole_event_stream_success_body() -> None:
    data = json.dumps({"output": {"choices": [_choice({"type": "image", "image": "u"})]}})
    result = parse_json_response(200, f"data:{data}\n\n".encode(), "text/event-stream")
    assert result.image_urls == ("u",)
