"""The wire protocol, sans-I/O: request headers, response bodies -> results or errors, SSE.

Pure (the h11 model): stdlib only. No aiohttp/anyio/tqdm import, no socket, no file,
no sleep, no clock read. ``_client`` feeds this module bytes and gets values or exceptions back:

* :func:`parse_json_response` turns ``(status, body, content type)`` into a
  :class:`GenerationResult`, or raises the :class:`~wanbatch._errors.ApiError` subclass that
  :func:`~wanbatch._errors.api_error` picks (docs/service.md, Synchronous answers, Error answers);
* :class:`SSEDecoder` turns stream bytes, in chunks of any size, into :class:`SSEEvent` values
  (the WHATWG "event stream" rules; DashScope frames are ``id:``,
  ``event:result``, ``:HTTP_STATUS/200``, ``data:{json}`` and a blank line);
* :class:`InterleaveAccumulator` folds the events of one interleaved call into one result.

What this module never decides: whether a lost or cut connection was billed. That is transport,
and ``_client`` maps it to :class:`~wanbatch._errors.ResponseLost`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wanbatch._errors import ApiError, api_error
from wanbatch._policy import parse_retry_after
from wanbatch._version import __version__

__all__ = [
    "GENERATION_PATH",
    "GenerationResult",
    "InterleaveAccumulator",
    "SSEDecoder",
    "SSEEvent",
    "build_headers",
    "error_from_body",
    "parse_json_response",
]

#: The synchronous generation endpoint, relative to the ``.../api/v1`` base.
GENERATION_PATH = "/services/aigc/multimodal-generation/generation"

#: How much of a non-JSON error body goes into the error message.
_SNIPPET_CHARS = 200
_WHITESPACE = re.compile(r"\s+")
_HTTP_STATUS_COMMENT = re.compile(r"HTTP_STATUS/(\d{3})")


def build_headers(api_key: str, *, stream: bool) -> dict[str, str]:
    """The headers of one generation request.

    ``stream=True`` (interleaved mode) asks for the event stream: ``Accept: text/event-stream``
    and ``X-DashScope-Sse: enable`` (plus ``X-Accel-Buffering: no``, as the official SDK sends,
    so proxies do not hold the stream back).
    """
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
        "User-Agent": f"wanbatch/{__version__}",
    }
    if stream:
        headers["X-DashScope-Sse"] = "enable"
        headers["X-Accel-Buffering"] = "no"
    return headers


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """What one successful call produced.

    ``image_urls`` flattens every image item of every choice, in order (the service may answer
    one choice per image or one choice with several items: undocumented). ``texts`` holds the
    text of interleaved mode, one entry per paragraph between images (empty in editing mode).
    ``usage`` is the top-level ``usage`` object as sent (``image_count`` is the billed count).
    """

    request_id: str | None
    image_urls: tuple[str, ...]
    texts: tuple[str, ...] = ()
    usage: dict[str, Any] = field(default_factory=dict)
    finished: bool = True

    @property
    def image_count(self) -> int:
        """Images billed (``usage.image_count``), or the URLs received when usage says nothing."""
        count = self.usage.get("image_count")
        return count if isinstance(count, int) and count >= 0 else len(self.image_urls)

    @property
    def size(self) -> str | None:
        """The produced size ``"W*H"`` (``usage.size``), if the service reported it."""
        size = self.usage.get("size")
        return size if isinstance(size, str) else None


# --------------------------------------------------------------------------------------------
# JSON bodies (editing mode, and every error)
# --------------------------------------------------------------------------------------------


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
        raise api_error(status, "EmptyOutput", f"not a JSON object: {_snippet(body)!r}")
    request_id = _str_or_none(payload.get("request_id"))
    output = payload.get("output")
    nested_code = output.get("code") if isinstance(output, dict) else None
    if (payload.get("code") or nested_code) and not _has_images(output):
        raise error_from_body(status, payload, body, retry_after=wait)
    if not isinstance(output, dict):
        raise api_error(status, "EmptyOutput", "the answer has no output", request_id)
    items = list(_content_items(output))
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
        finished=_is_finished(output),
    )


def error_from_body(
    status: int, payload: object, body: bytes = b"", *, retry_after: float | None = None
) -> ApiError:
    """The :class:`ApiError` for an error answer (docs/service.md, Error answers).

    A JSON body gives ``code``, ``message`` (or ``msg``) and ``request_id``; the task shape with
    ``code``/``message`` inside ``output`` is read too (older task docs). A body that is not JSON
    (a gateway's HTML page) gives code ``HTTP<status>`` and the first 200 characters of its text,
    whitespace collapsed, as the message.
    """
    if isinstance(payload, dict):
        inner = payload.get("output")
        nested = inner if isinstance(inner, dict) else {}
        code = _str_or_none(payload.get("code")) or _str_or_none(nested.get("code"))
        message = (
            _str_or_none(payload.get("message"))
            or _str_or_none(payload.get("msg"))
            or _str_or_none(nested.get("message"))
            or ""
        )
        request_id = _str_or_none(payload.get("request_id"))
        return api_error(status, code or f"HTTP{status}", message, request_id, retry_after)
    return api_error(status, f"HTTP{status}", _snippet(body), None, retry_after)


def _parse_stream_body(status: int, body: bytes, retry_after: float | None) -> GenerationResult:
    # A whole event-stream body (the SDK parses a non-200 one by its first data line).
    decoder = SSEDecoder()
    accumulator = InterleaveAccumulator(default_status=status if status >= 400 else 400)
    for event in [*decoder.feed(body), *decoder.close()]:
        accumulator.add(event)
    if not 200 <= status < 300:
        raise api_error(status, f"HTTP{status}", _snippet(body), None, retry_after)
    return accumulator.result()


def _header(source: str | Mapping[str, str] | None, name: str) -> str | None:
    if source is None or isinstance(source, str):
        return source
    wanted = name.lower()
    for key, value in source.items():
        if key.lower() == wanted:
            return value
    return None


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    return _WHITESPACE.sub(" ", text).strip()[:_SNIPPET_CHARS]


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _content_items(output: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every ``("image", url)`` / ``("text", text)`` item of every choice, in order."""
    items: list[tuple[str, str]] = []
    choices = output.get("choices")
    if not isinstance(choices, list):
        return items
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):  # a bare string content is text
            items.append(("text", content))
            continue
        if not isinstance(content, list):
            continue
        for item in content:
            if not isinstance(item, dict):
                continue
            image, text = item.get("image"), item.get("text")
            if isinstance(image, str) and image and item.get("type") in (None, "image"):
                items.append(("image", image))
            elif isinstance(text, str) and item.get("type") in (None, "text"):
                items.append(("text", text))
    return items


def _has_images(output: object) -> bool:
    return isinstance(output, dict) and any(k == "image" for k, _ in _content_items(output))


def _is_finished(output: Mapping[str, Any]) -> bool:
    # ``finish_reason`` is "stop" when done and null (or, elsewhere in DashScope, the *string*
    # "null") while streaming; ``output.finished`` is true on the last event.
    if output.get("finished") is True:
        return True
    choices = output.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") == "stop" for c in choices)


# --------------------------------------------------------------------------------------------
# Server-sent events (interleaved mode; docs/service.md, Event stream)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched server-sent event.

    ``event`` is the ``event:`` field (``"message"`` when absent, as the WHATWG rules say);
    ``data`` joins the event's ``data:`` lines with ``"\\n"``; ``id`` is this event's ``id:``
    field, if it had one. ``status`` is the HTTP status the stream announced for this event, from
    a ``status:`` field (read by the official SDK) or DashScope's
    ``:HTTP_STATUS/NNN`` comment; ``None`` if neither was seen.
    """

    event: str
    data: str
    id: str | None = None
    status: int | None = None


class SSEDecoder:
    """Bytes in, :class:`SSEEvent` values out; chunk boundaries never matter.

    Lines end with ``\\r\\n``, ``\\n`` or ``\\r`` (a ``\\r\\n`` split across two chunks is one
    line end). Lines are split as bytes and decoded afterwards, so a UTF-8 character split across
    chunks is reassembled (no line-end byte occurs inside a UTF-8 sequence). Fields: ``event``,
    ``data`` (several lines join with ``\\n``), ``id``, ``status``; a line without a colon is a
    field with an empty value; one space after the colon is dropped; ``retry`` and unknown fields
    are ignored; a ``:`` line is a comment, except that ``:HTTP_STATUS/NNN`` sets the status.
    An event is dispatched at a blank line, and only if it had data.

    Unlike a browser, :meth:`close` also dispatches a last event whose blank line never came: the
    official SDK acts on each ``data:`` line as it arrives, so a server may rely on that.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip_lf = False  # the previous chunk ended with "\r": a leading "\n" is its pair
        self._started = False  # the BOM check is done
        self._closed = False
        self._reset_event()

    def _reset_event(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._status: int | None = None

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Take the next chunk of the stream; return the events it completed (maybe none).

        Raises:
            RuntimeError: the decoder was closed.
        """
        if self._closed:
            raise RuntimeError("SSEDecoder.feed() after close()")
        if self._skip_lf and data[:1] == b"\n":
            data = data[1:]
        if data:
            self._skip_lf = False
        self._buffer += data
        events: list[SSEEvent] = []
        start = 0
        buffer = self._buffer
        while True:
            cr = buffer.find(b"\r", start)
            lf = buffer.find(b"\n", start)
            if cr < 0 and lf < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                end, nxt = cr, cr + 1
                if nxt < len(buffer):
                    if buffer[nxt] == 0x0A:  # "\r\n"
                        nxt += 1
                else:
                    self._skip_lf = True  # "\r" is the last byte: its "\n" may come next
            else:
                end, nxt = lf, lf + 1
            self._line(bytes(buffer[start:end]), events)
            start = nxt
        del buffer[:start]
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: process a last unterminated line, return a pending event if any."""
        if self._closed:
            return []
        self._closed = True
        events: list[SSEEvent] = []
        if self._buffer:
            self._line(bytes(self._buffer), events)
            self._buffer.clear()
        self._line(b"", events)  # dispatch what is pending (a no-op when nothing is)
        return events

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        if not self._started:
            self._started = True
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM may open the stream
        line = raw.decode("utf-8", errors="replace")
        if not line:
            if self._data:
                events.append(
                    SSEEvent(
                        self._event or "message", "\n".join(self._data), self._id, self._status
                    )
                )
            self._reset_event()
            return
        if line.startswith(":"):
            found = _HTTP_STATUS_COMMENT.match(line, 1)
            if found:
                self._status = int(found.group(1))
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:  # WHATWG: an id with NUL is ignored
                self._id = value
        elif name == "status":
            if value.strip().isdigit():
                self._status = int(value.strip())
        # "retry" and unknown fields: ignored.


class InterleaveAccumulator:
    """Folds the events of one interleaved call into one :class:`GenerationResult`.

    Each event's ``data`` is JSON in the shape of a JSON answer with partial ``content``.
    Whether content is *incremental* (each event carries new pieces) or *cumulative* (each event
    repeats everything so far) is undocumented, so both are accepted: an event whose items start
    with everything accumulated so far (the last text may have grown) is cumulative and replaces
    it; otherwise its items are appended, text pieces joining the paragraph they continue. The
    first event that tells the two apart decides for the rest of the stream. Image URLs are never
    taken twice.

    Raises :class:`~wanbatch._errors.ApiError` (via :func:`~wanbatch._errors.api_error`) on an
    ``event:error`` event or a data object with a ``code`` and no ``output``; its status is the
    event's ``status`` (``status:`` field or ``:HTTP_STATUS/NNN``) when that is an error status,
    else ``default_status`` (400, as the official SDK assumes).
    """

    def __init__(self, *, default_status: int = 400) -> None:
        self._default_status = default_status
        self._parts: list[list[str]] = []  # [kind, value]; a text part grows in place
        self._seen_urls: set[str] = set()
        self._cumulative: bool | None = None  # None until an event tells
        self._request_id: str | None = None
        self._usage: dict[str, Any] = {}
        self._finished = False
        self._events = 0

    def add(self, event: SSEEvent) -> None:
        """Take one event.

        Raises:
            ApiError: the event reports an error, or its data is not a JSON object (then a
                ``RetryableApiError`` with code ``MalformedEvent``).
        """
        if event.event == "done" or event.data.strip() in ("", "[DONE]"):
            return
        try:
            payload: object = json.loads(event.data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise api_error(200, "MalformedEvent", f"event data is not JSON: {event.data[:200]!r}")
        request_id = _str_or_none(payload.get("request_id"))
        self._request_id = request_id or self._request_id
        output = payload.get("output")
        if event.event == "error" or (payload.get("code") and not isinstance(output, dict)):
            status = event.status if event.status and event.status >= 400 else None
            raise error_from_body(status or self._default_status, payload)
        self._events += 1
        usage = payload.get("usage")
        if isinstance(usage, dict) and usage:
            self._usage = dict(usage)
        if not isinstance(output, dict):
            return
        self._merge(_content_items(output))
        if _is_finished(output):
            self._finished = True

    def _merge(self, items: list[tuple[str, str]]) -> None:
        if not items:
            return
        if self._parts and self._cumulative is None:
            self._cumulative = self._repeats_all(items)
        if self._cumulative and self._repeats_all(items):
            self._parts = [[kind, value] for kind, value in items]
            self._seen_urls = {value for kind, value in items if kind == "image"}
            return
        for kind, value in items:
            if kind == "image":
                if value not in self._seen_urls:
                    self._seen_urls.add(value)
                    self._parts.append(["image", value])
            elif self._parts and self._parts[-1][0] == "text":
                self._parts[-1][1] += value
            else:
                self._parts.append(["text", value])

    def _repeats_all(self, items: list[tuple[str, str]]) -> bool:
        """True if ``items`` start with every part so far (the last text part may have grown).

        Ambiguity remains in one corner: an incremental stream whose second text piece happens
        to start with the whole first piece ("The", then "Then ...") reads as cumulative. Real
        pieces are model tokens appended to a paragraph, so this needs a one-word first event.
        """
        parts = self._parts
        if len(items) < len(parts):
            return False
        for i, (kind, value) in enumerate(parts):
            new_kind, new_value = items[i]
            if new_kind != kind:
                return False
            last = i == len(parts) - 1
            if kind == "text" and last:
                if not new_value.startswith(value):
                    return False
            elif new_value != value:
                return False
        return True

    def result(self) -> GenerationResult:
        """The result so far.

        ``finished`` is False when the stream ended without its last event (``finish_reason``
        ``"stop"`` / ``output.finished``); the images received are still returned, since they
        are valid URLs the call may have paid for. Whether the transport cut the stream is the
        client's knowledge, not ours.

        Raises:
            RetryableApiError: code ``EmptyOutput`` when the stream held no image at all
                (``IncompleteStream`` if it also never finished).
        """
        urls = tuple(value for kind, value in self._parts if kind == "image")
        if not urls:
            code = "EmptyOutput" if self._finished else "IncompleteStream"
            what = "ended" if self._finished else "ended before its last event"
            raise api_error(200, code, f"the stream {what} without an image", self._request_id)
        return GenerationResult(
            request_id=self._request_id,
            image_urls=urls,
            texts=tuple(value for kind, value in self._parts if kind == "text" and value),
            usage=dict(self._usage),
            finished=self._finished,
        )
