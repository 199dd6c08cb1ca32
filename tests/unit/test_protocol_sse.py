"""SSEDecoder and InterleaveAccumulator (docs/service.md, Event stream): no sockets, any chunks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wanbatch._errors import JobRejected, RetryableApiError, Throttled
from wanbatch._sse import InterleaveAccumulator, SSEDecoder, SSEEvent


def decode(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def _data(*content: dict[str, Any], stop: bool = False, **top: Any) -> str:
    output: dict[str, Any] = {
        "choices": [
            {
                "finish_reason": "stop" if stop else None,
                "message": {"role": "assistant", "content": list(content)},
            }
        ]
    }
    if stop:
        output["finished"] = True
    return json.dumps({"output": output, **top}, ensure_ascii=False)


def text(t: str) -> dict[str, str]:
    return {"type": "text", "text": t}


def image(u: str) -> dict[str, str]:
    return {"type": "image", "image": u}


def frame(n: int, data: str, *, event: str = "result", status: int = 200, eol: str = "\n") -> str:
    # DashScope's usual framing (undocumented for this model).
    lines = [f"id:{n}", f"event:{event}", f":HTTP_STATUS/{status}", f"data:{data}", ""]
    return eol.join(lines) + eol


# A realistic interleaved stream: incremental text, an image, more text, a final event.
STREAM = (
    frame(1, _data(text("Un chat "), request_id="req-1"))
    + frame(2, _data(text("sur un toit 🐈, "), request_id="req-1"))
    + frame(3, _data(image("https://h/a.png?Expires=1&Signature=s"), request_id="req-1"))
    + frame(4, _data(text("puis la nuit."), request_id="req-1"))
    + frame(
        5,
        _data(
            image("https://h/b.png?Expires=1&Signature=t"),
            stop=True,
            request_id="req-1",
            usage={"image_count": 2, "size": "1280*1280"},
        ),
    )
).encode("utf-8")


# -- the decoder ------------------------------------------------------------------------------


def test_dashscope_framing() -> None:
    events = decode(STREAM)
    assert [e.id for e in events] == ["1", "2", "3", "4", "5"]
    assert {e.event for e in events} == {"result"}
    assert {e.status for e in events} == {200}
    assert json.loads(events[1].data)["output"]["choices"][0]["message"]["content"][0] == text(
        "sur un toit 🐈, "
    )


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_every_line_ending(eol: str) -> None:
    stream = (frame(1, '{"a":1}', eol=eol) + frame(2, '{"b":2}', eol=eol)).encode()
    assert decode(stream) == [
        SSEEvent("result", '{"a":1}', "1", 200),
        SSEEvent("result", '{"b":2}', "2", 200),
    ]


def test_field_rules() -> None:
    stream = (
        b"\xef\xbb\xbf: a comment\n"  # BOM, comment
        b"data: one space is dropped\n"
        b"data:  only one\n"
        b"data\n"  # a field without a colon: empty value
        b"retry: 3000\n"
        b"whatever: ignored\n"
        b"\n"
        b"event: only an event\n"  # no data: not dispatched
        b"\n"
        b"status: 429\n"
        b"event:error\n"
        b'data:{"code":"Throttling"}\n'
        b"\n"
    )
    assert decode(stream) == [
        SSEEvent("message", "one space is dropped\n only one\n", None, None),
        SSEEvent("error", '{"code":"Throttling"}', None, 429),
    ]


def test_a_last_event_without_its_blank_line_is_delivered_on_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data:{}\r\ndata:x") == []
    assert decoder.close() == [SSEEvent("message", "{}\nx", None, None)]
    assert decoder.close() == []
    with pytest.raises(RuntimeError):
        decoder.feed(b"data: late\n\n")


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    assert decode(b"data:a\r", b"\ndata:b\r", b"\n\r", b"\n") == [
        SSEEvent("message", "a\nb", None, None)
    ]


def test_utf8_split_inside_a_character() -> None:
    raw = "data:猫🐈\n\n".encode()
    cut = raw.index("🐈".encode()) + 2
    assert decode(raw[:cut], raw[cut:]) == [SSEEvent("message", "猫🐈", None, None)]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert decode(b"data:\xff\n\n") == [SSEEvent("message", "\ufffd", None, None)]


def test_a_split_at_every_offset_gives_the_same_events() -> None:
    whole = decode(STREAM)
    assert len(whole) == 5
    for offset in range(len(STREAM) + 1):
        assert decode(STREAM[:offset], STREAM[offset:]) == whole, offset


EXOTIC = (
    '\ufeffid:1\r\nevent:result\r\n:HTTP_STATUS/200\r\ndata:{"t":"é"}\r\n\r\n'
    "data:a\rdata:b\r\rdata:猫\n\n:c\nstatus:500\nevent:error\ndata:{}\n\n"
).encode()


@given(st.data())
def test_any_chunking_gives_the_same_events(data: st.DataObject) -> None:
    for stream in (STREAM, EXOTIC):
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
        chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert decode(*chunks) == decode(stream)


def test_byte_by_byte() -> None:
    assert decode(*(bytes([b]) for b in EXOTIC)) == decode(EXOTIC)


# -- the accumulator ----------------------------------------------------------------------------


def accumulate(stream: bytes) -> InterleaveAccumulator:
    acc = InterleaveAccumulator()
    for event in decode(stream):
        acc.add(event)
    return acc


def test_incremental_content() -> None:
    result = accumulate(STREAM).result()
    assert result.request_id == "req-1"
    assert result.image_urls == (
        "https://h/a.png?Expires=1&Signature=s",
        "https://h/b.png?Expires=1&Signature=t",
    )
    assert result.texts == ("Un chat sur un toit 🐈, ", "puis la nuit.")
    assert result.usage == {"image_count": 2, "size": "1280*1280"}
    assert result.finished is True


def test_cumulative_content_gives_the_same_result() -> None:
    steps = [
        [text("Un chat ")],
        [text("Un chat sur un toit 🐈, ")],
        [text("Un chat sur un toit 🐈, "), image("https://h/a.png?Expires=1&Signature=s")],
        [
            text("Un chat sur un toit 🐈, "),
            image("https://h/a.png?Expires=1&Signature=s"),
            text("puis la nuit."),
        ],
    ]
    stream = "".join(frame(i, _data(*c, request_id="req-1")) for i, c in enumerate(steps))
    last = [*steps[-1], image("https://h/b.png?Expires=1&Signature=t")]
    usage = {"image_count": 2, "size": "1280*1280"}
    stream += frame(9, _data(*last, stop=True, request_id="req-1", usage=usage))
    assert accumulate(stream.encode()).result() == accumulate(STREAM).result()


def test_a_repeated_image_url_is_taken_once() -> None:
    stream = frame(1, _data(image("u1"))) + frame(2, _data(image("u1"), stop=True))
    assert accumulate(stream.encode()).result().image_urls == ("u1",)


@pytest.mark.parametrize(
    ("stream", "cls", "status", "code"),
    [
        (frame(1, '{"code":"DataInspectionFailed","message":"no"}', event="error", status=400),
         JobRejected, 400, "DataInspectionFailed"),
        (frame(1, '{"code":"Throttling.RateQuota","message":"slow"}', event="error", status=429),
         Throttled, 429, "Throttling.RateQuota"),
        # event:error with a 200 status comment: the SDK's default of 400 applies.
        (frame(1, '{"code":"InvalidParameter","message":"x"}', event="error"),
         JobRejected, 400, "InvalidParameter"),
        # a data object with a code and no output, even without event:error
        ('data:{"code":"InternalError","message":"boom","request_id":"r"}\n\n',
         RetryableApiError, 400, "InternalError"),
    ],
)  # fmt: skip
def test_error_events_raise(stream: str, cls: type[Exception], status: int, code: str) -> None:
    acc = InterleaveAccumulator()
    first = frame(0, _data(text("partial ")))
    with pytest.raises(cls) as info:
        for event in decode((first + stream).encode()):
            acc.add(event)
    assert (info.value.status, info.value.code) == (status, code)  # type: ignore[attr-defined]


def test_done_events_and_empty_data_are_skipped() -> None:
    stream = frame(1, _data(image("u"), stop=True)) + "event:done\ndata:[DONE]\n\n"
    assert accumulate(stream.encode()).result().image_urls == ("u",)


def test_malformed_event_data() -> None:
    with pytest.raises(RetryableApiError) as info:
        accumulate(b"data:{not json\n\n")
    assert info.value.code == "MalformedEvent"


def test_a_stream_cut_before_its_last_event_keeps_its_images() -> None:
    result = accumulate(frame(1, _data(text("t"), image("u1"))).encode()).result()
    assert result.image_urls == ("u1",)
    assert result.finished is False


@pytest.mark.parametrize(
    ("stream", "code"),
    [
        (frame(1, _data(text("no picture today"), stop=True)), "EmptyOutput"),
        (frame(1, _data(text("still thinking"))), "IncompleteStream"),
        ("", "IncompleteStream"),
    ],
)
def test_no_image_at_all_is_retryable(stream: str, code: str) -> None:
    with pytest.raises(RetryableApiError) as info:
        accumulate(stream.encode()).result()
    assert info.value.code == code
