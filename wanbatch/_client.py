"""One generation call on the run's aiohttp session: JSON (editing) or event stream (interleaved).

The ONLY place where aiohttp's and the OS's errors become wanbatch errors (:func:`_mapped_errors`):
a failure before the request was sent is :class:`ConnectFailed` (never billed); one after it is
:class:`ResponseLost` (possibly billed: the service may have generated and charged the images).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from wanbatch._answer import GenerationResult
from wanbatch._clock import SYSTEM_CLOCK, Clock
from wanbatch._config import Secret
from wanbatch._errors import ApiError, ConnectFailed, ResponseLost
from wanbatch._protocol import build_headers, encode_body, generation_url
from wanbatch._response import parse_json_response
from wanbatch._sse import InterleaveAccumulator, SSEDecoder

__all__ = ["ApiClient", "CallResult"]


@dataclass(frozen=True, slots=True)
class CallResult:
    """A successful call: the parsed result and how long it took."""

    result: GenerationResult
    duration: float
    #: The service's clock minus ours (seconds), from the answer's ``Date`` header; None if absent.
    clock_offset: float | None = None
    #: Why an event stream ended early although it had delivered images (a timeout, a cut
    #: connection): those images are paid for and kept; ``None`` for a whole answer.
    cut: str | None = None


def _clock_offset(date: str | None, now: float) -> float | None:
    """Seconds the clock behind an HTTP ``Date`` header is ahead of ``now`` (None: unusable)."""
    try:
        when = parsedate_to_datetime(date) if date else None
        if when is None:
            return None
        if when.tzinfo is None:  # "-0000": UTC (RFC 5322), not this computer's zone
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


#: aiohttp errors raised before a byte of the request left: the connection was never made
#: (refused, DNS, TLS handshake, connect timeout: ``ClientConnectorError`` and its DNS/SSL/
#: certificate/proxy subclasses, ``ConnectionTimeoutError``), a pinned certificate did not
#: match (``ServerFingerprintMismatch``), or the URL cannot be requested at all (``InvalidURL``,
#: ``NonHttpUrlClientError``: a missing scheme, a port over 65535). None of them can be billed.
_NEVER_SENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerFingerprintMismatch,
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
)


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """Translate aiohttp/OS/timeout errors into the wanbatch tree.

    Only a failure to connect (or a URL that cannot be requested) proves the request never left;
    anything later (a reset after the body was written, a server that closed the connection
    without answering, a read timeout, a cut stream) may have been billed (urllib3's connect vs
    read split).
    """
    try:
        yield
    except ApiError:
        raise
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        raise ConnectFailed(f"not a usable http(s) URL: {exc}") from exc
    except _NEVER_SENT as exc:
        raise ConnectFailed(str(exc) or type(exc).__name__) from exc
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise ResponseLost("the call timed out after the request was sent") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise ResponseLost(f"the answer was lost ({type(exc).__name__}: {exc})") from exc


class ApiClient:
    """Calls the synchronous generation endpoint. Holds no state besides the session.

    ``clock``: where the call's duration, and the "now" a ``Date`` or ``Retry-After`` header is
    compared with, are read.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: Secret,
        *,
        timeout: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._session = session
        self._clock = clock
        self._url = generation_url(base_url)
        self._api_key = api_key
        # The connect timeout stays below the total one, so that a call which never connected
        # ends as ConnectionTimeoutError (never sent), not as the total timeout (maybe billed).
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(30.0, timeout / 2))

    async def generate(
        self, body: dict[str, Any], *, interleave: bool, job_id: str | None = None
    ) -> CallResult:
        """Send one request; return its result or raise an ApiError / TransportError.

        ``job_id`` names the job (task mode journals its task by it; see ``_taskcalls``).
        """
        headers = build_headers(self._api_key.reveal(), stream=interleave)
        started = self._clock.monotonic()
        cut: str | None = None
        with _mapped_errors():
            async with self._session.post(
                self._url, data=encode_body(body), headers=headers, timeout=self._timeout
            ) as resp:
                offset = _clock_offset(resp.headers.get("Date"), self._clock.now())
                content_type = resp.headers.get("Content-Type", "")
                if resp.status == 200 and "text/event-stream" in content_type:
                    result, cut = await self._read_stream(resp)
                else:
                    raw = self.scrub(await resp.read())
                    result = parse_json_response(
                        resp.status,
                        raw,
                        content_type,
                        resp.headers.get("Retry-After"),
                        now=self._clock.now(),  # so an HTTP-date Retry-After works too
                    )
        return CallResult(result, self._clock.monotonic() - started, clock_offset=offset, cut=cut)

    def scrub(self, body: bytes) -> bytes:
        """The body without the API key in it: a wrong host that echoes the request's headers
        into its error page must not put the key into a message or the journal."""
        key = self._api_key.reveal().encode()
        return body.replace(key, b"<API key>") if key and key in body else body

    @staticmethod
    async def _read_stream(resp: aiohttp.ClientResponse) -> tuple[GenerationResult, str | None]:
        """The stream's result, and why it was cut if it was cut after delivering images.

        An image event is a paid, valid URL: when the call times out or the connection breaks
        after one arrived, the images received are the result (``finished`` False), to be
        journaled and downloaded, not bought again. A cut before any image is a lost answer.
        """
        decoder = SSEDecoder()
        acc = InterleaveAccumulator()
        try:
            async for chunk in resp.content.iter_any():
                for event in decoder.feed(chunk):
                    acc.add(event)
        except (TimeoutError, asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
            try:
                partial = acc.result()
            except ApiError:
                raise exc from None  # no image yet: a lost answer (mapped by the caller)
            what = "timed out" if isinstance(exc, TimeoutError) else f"broke ({type(exc).__name__})"
            return partial, f"the event stream {what} after {len(partial.image_urls)} image(s)"
        for event in decoder.close():
            acc.add(event)
        return acc.result(), None
