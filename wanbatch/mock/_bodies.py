"""Pure: the JSON bodies and SSE frames the mock answers with (docs/service.md).

Success bodies always carry ``output``, ``choices[].message.role`` and a top-level ``usage``
(not inside ``output``); errors are ``{"request_id","code","message"}``. The OSS error XML of
image downloads lives here too.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any
from xml.sax.saxutils import escape

__all__ = [
    "edit_choices",
    "error_body",
    "interleave_items",
    "oss_error_xml",
    "sse_frame",
    "stream_event",
    "task_time",
    "usage",
]

# Task times are "YYYY-MM-DD HH:mm:ss.SSS" in UTC+8 (docs/service.md, Asynchronous tasks).
_UTC8 = timezone(timedelta(hours=8))


def error_body(request_id: str, code: str, message: str) -> dict[str, Any]:
    """The service's error body: ``{"request_id", "code", "message"}``."""
    return {"request_id": request_id, "code": code, "message": message}


def usage(
    images: int, size: tuple[int, int], input_tokens: int = 0, output_tokens: int = 0
) -> dict[str, Any]:
    """Top-level ``usage``; ``image_count`` is the billed count."""
    return {
        "image_count": images,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "size": f"{size[0]}*{size[1]}",
        "total_tokens": input_tokens + output_tokens,
    }


def edit_choices(urls: list[str]) -> list[dict[str, Any]]:
    """One choice per image, each with one image item (as the documented async example)."""
    return [
        {
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": [{"image": url, "type": "image"}]},
        }
        for url in urls
    ]


def interleave_items(prompt: str, urls: list[str]) -> list[dict[str, str]]:
    """The interleaved reply as incremental items: text chunks, then text + image per image."""
    topic = " ".join(prompt.split()[:8])
    items: list[dict[str, str]] = [
        {"type": "text", "text": "Here is an illustrated answer"},
        {"type": "text", "text": f" for: {topic}\n"},
    ]
    for number, url in enumerate(urls, start=1):
        items.append({"type": "text", "text": f"Step {number}. A picture of this step follows.\n"})
        items.append({"type": "image", "image": url})
    items.append({"type": "text", "text": "That is all."})
    return items


def stream_event(
    request_id: str,
    content: list[dict[str, str]],
    *,
    last: bool,
    final_usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One SSE ``data:`` payload: incremental ``content``, ``finish_reason`` null until the last."""
    body: dict[str, Any] = {
        "output": {
            "choices": [
                {
                    "finish_reason": "stop" if last else None,
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "finished": last,
        },
        "request_id": request_id,
    }
    if final_usage is not None:
        body["usage"] = final_usage
    return body


def sse_frame(
    event_id: int, payload: dict[str, Any], *, event: str = "result", status: int = 200
) -> bytes:
    """DashScope's usual SSE framing (undocumented for this model): id, event, comment, data."""
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"id:{event_id}\nevent:{event}\n:HTTP_STATUS/{status}\ndata:{data}\n\n".encode()


def task_time(unix: float) -> str:
    """``YYYY-MM-DD HH:mm:ss.SSS`` in UTC+8."""
    moment = datetime.fromtimestamp(unix, _UTC8)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def oss_error_xml(
    code: str, message: str, request_id: str, extra: dict[str, str] | None = None
) -> str:
    """An OSS-style ``<Error>`` document, as object storage answers failed downloads."""
    fields = {"Code": code, "Message": message, "RequestId": request_id, "HostId": "mock-oss"}
    fields.update(extra or {})
    inner = "".join(f"  <{key}>{escape(value)}</{key}>\n" for key, value in fields.items())
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n{inner}</Error>\n'
