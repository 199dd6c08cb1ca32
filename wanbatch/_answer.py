"""The parsed answer: what one call produced, or the error its body carries.

Pure (the h11 model): stdlib only. No aiohttp/anyio/tqdm import, no socket, no file, no sleep,
no clock read. :class:`GenerationResult` is a successful answer; :func:`error_from_body` reads an
error answer's body (docs/service.md, Error answers); the small readers below pick the pieces of
an answer's ``output`` (image and text items, whether it is finished) that both the JSON answer
(``_response``) and the event stream (``_sse``) are made of.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wanbatch._errors import ApiError, api_error

__all__ = [
    "GenerationResult",
    "content_items",
    "error_from_body",
    "has_images",
    "is_finished",
    "snippet",
    "str_or_none",
]

#: How much of a non-JSON error body goes into the error message.
_SNIPPET_CHARS = 200
_WHITESPACE = re.compile(r"\s+")


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
        code = str_or_none(payload.get("code")) or str_or_none(nested.get("code"))
        message = (
            str_or_none(payload.get("message"))
            or str_or_none(payload.get("msg"))
            or str_or_none(nested.get("message"))
            or ""
        )
        request_id = str_or_none(payload.get("request_id"))
        return api_error(status, code or f"HTTP{status}", message, request_id, retry_after)
    return api_error(status, f"HTTP{status}", snippet(body), None, retry_after)


def snippet(body: bytes) -> str:
    """The start of a body that is not JSON (a gateway's page) as text, whitespace collapsed."""
    text = body.decode("utf-8", errors="replace")
    return _WHITESPACE.sub(" ", text).strip()[:_SNIPPET_CHARS]


def str_or_none(value: object) -> str | None:
    """``value`` if it is a non-empty string, else None (a body's fields may be anything)."""
    return value if isinstance(value, str) and value else None


def content_items(output: Mapping[str, Any]) -> list[tuple[str, str]]:
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


def has_images(output: object) -> bool:
    """Whether ``output`` is an object with at least one image item."""
    return isinstance(output, dict) and any(k == "image" for k, _ in content_items(output))


def is_finished(output: Mapping[str, Any]) -> bool:
    """Whether ``output`` is the last of an answer (always so for a JSON answer's own).

    ``finish_reason`` is "stop" when done and null (or, elsewhere in DashScope, the *string*
    "null") while streaming; ``output.finished`` is true on the last event.
    """
    if output.get("finished") is True:
        return True
    choices = output.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") == "stop" for c in choices)
