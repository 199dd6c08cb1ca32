"""A complete (non-streamed) answer, whatever its content type -> a result or an error.

Pure (the h11 model): stdlib only. No aiohttp/anyio/tqdm import, no socket, no file, no sleep,
no clock read. ``_client`` feeds :func:`parse_json_response` ``(status, body, content type)``
and gets a :class:`~wanbatch._answer.GenerationResult` back, or the
:class:`~wanbatch._errors.ApiError` subclass that :func:`~wanbatch._errors.api_error` picks
(docs/service.md, Synchronous answers, Error answers). A JSON body is read here with the readers
of ``_answer``; a whole event-stream body is decoded and folded by ``_sse``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from wanbatch._answer import (
    GenerationResult,
    content_items,
    error_from_body,
    has_images,
    is_finished,
    snippet,
    str_or_none,
)
from wanbatch._errors import api_error
from wanbatch._policy import parse_retry_after
from wanbatch._sse import InterleaveAccumulator, SSEDecoder

__all__ = ["parse_json_response"]


def parse_json_response(
    status: int,
    body: bytes,
    content_type: str,
    retry_after: str | Mapping[str, str] | None = None,
    *,
    now: float | None = None,
) -> GenerationResult:
    """The result of a complete (non-streamed) answer, or the error it carries.

    Args:
        status: the HTTP status.
        body: the whole body.
        content_type: the ``Content-Type`` header ("" if absent). JSON is tried whatever it
            says (gateways mislabel); an event-stream body is decoded as a stream.
        retry_after: the ``Retry-After`` header value, or the response headers to take it from.
        now: the current Unix time, needed only for an HTTP-date ``Retry-After``.

    Returns:
        The result of a 2xx answer that holds at least one image.

    Raises:
        ApiError: the subclass chosen by :func:`~wanbatch._errors.api_error`: for any non-2xx
            answer; for a 2xx answer with an error ``code`` (the shape of a FAILED async
            task); and as ``RetryableApiError`` code ``EmptyOutput`` for a 2xx answer without an
            image or not JSON at all (the service failed to deliver what it charges for).
    """
    header = _header(retry_after, "Retry-After")
    wait = parse_retry_after(header, now)
    if "text/event-stream" in content_type.lower():
        return _parse_stream_body(status, body, wait)
    try:
        payload: object = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        payload = None
    if not 200 <= status < 300:
        raise error_from_body(status, payload, body, retry_after=wait)
    if not isinstance(payload, dict):
        raise api_error(status, "EmptyOutput", f"not a JSON object: {snippet(body)!r}")
    request_id = str_or_none(payload.get("request_id"))
    output = payload.get("output")
    nested_code = output.get("code") if isinstance(output, dict) else None
    if (payload.get("code") or nested_code) and not has_images(output):
        raise error_from_body(status, payload, body, retry_after=wait)
    if not isinstance(output, dict):
        raise api_error(status, "EmptyOutput", "the answer has no output", request_id)
    items = list(content_items(output))
    urls = tuple(value for kind, value in items if kind == "image")
    if not urls:
        raise api_error(status, "EmptyOutput", "the answer holds no image", request_id)
    texts = tuple(value for kind, value in items if kind == "text" and value)
    usage = payload.get("usage")
    return GenerationResult(
        request_id=request_id,
        image_urls=urls,
        texts=texts,
        usage=dict(usage) if isinstance(usage, dict) else {},
        finished=is_finished(output),
    )


def _parse_stream_body(status: int, body: bytes, retry_after: float | None) -> GenerationResult:
    # A whole event-stream body (the SDK parses a non-200 one by its first data line).
    decoder = SSEDecoder()
    accumulator = InterleaveAccumulator(default_status=status if status >= 400 else 400)
    for event in [*decoder.feed(body), *decoder.close()]:
        accumulator.add(event)
    if not 200 <= status < 300:
        raise api_error(status, f"HTTP{status}", snippet(body), None, retry_after)
    return accumulator.result()


def _header(source: str | Mapping[str, str] | None, name: str) -> str | None:
    if source is None or isinstance(source, str):
        return source
    wanted = name.lower()
    for key, value in source.items():
        if key.lower() == wanted:
            return value
    return None
