"""Server-sent events, sans-I/O: stream bytes -> events -> one interleaved result.

Pure (the h11 model): stdlib only. No aiohttp/anyio/tqdm import, no socket, no file, no sleep,
no clock read (docs/service.md, Event stream):

* :class:`SSEDecoder` turns stream bytes, in chunks of any size, into :class:`SSEEvent` values
  (the WHATWG "event stream" rules; DashScope frames are ``id:``, ``event:result``,
  ``:HTTP_STATUS/200``, ``data:{json}`` and a blank line);
* :class:`InterleaveAccumulator` folds the events of one interleaved call into one
  :class:`~wanbatch._answer.GenerationResult`.

What this module never decides: whether a cut stream was billed. That is transport, and
``_client`` maps it to :class:`~wanbatch._errors.ResponseLost`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from wanbatch._answer import (
    GenerationResult,
    content_items,
    error_from_body,
    is_finished,
    str_or_none,
)
from wanbatch._errors import api_error

__all__ = ["InterleaveAccumulator", "SSEDecoder", "SSEEvent"]

_HTTP_STATUS_COMMENT = re.compile(r"HTTP_STATUS/(\d{3})")


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
        request_id = str_or_none(payload.get("request_id"))
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
        self._merge(content_items(output))
        if is_finished(output):
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
