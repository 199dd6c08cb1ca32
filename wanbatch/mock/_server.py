"""Running the mock: :class:`MockServer` (in the caller's loop) and :func:`serve_in_thread`.

``MockServer`` is an async context manager for async tests. ``serve_in_thread`` runs one on its
own event loop in a daemon thread, for sync code (the official SDK's blocking calls) and for
tests that run wanbatch as a subprocess; its handle marshals every call onto that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from wanbatch.mock._app import STATE, create_app
from wanbatch.mock._config import MockConfig
from wanbatch.mock._counters import CountersSnapshot
from wanbatch.mock._state import MockState

__all__ = ["MockServer", "ThreadedMock", "serve_in_thread"]

_T = TypeVar("_T")
_THREAD_CALL_TIMEOUT_S = 30.0


class MockServer:
    """The mock on ``host:port`` (``port=0``: a free port) for the life of an ``async with``.

    Example::

        async with MockServer(MockConfig(max_concurrency=3)) as mock:
            dashscope.base_http_api_url = mock.base_url
            ...
            assert mock.counters().peak_in_flight <= 3
    """

    def __init__(
        self, config: MockConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._config = config or MockConfig()
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._state: MockState | None = None
        self._used = False

    async def __aenter__(self) -> MockServer:
        if self._used:
            raise RuntimeError("a MockServer can be started only once; create a new one")
        self._used = True
        app = create_app(self._config)
        self._state = app[STATE]
        # No access log: it costs throughput and would print request lines.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, backlog=1024)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        self._live()
        return self._port

    @property
    def origin(self) -> str:
        """``http://HOST:PORT`` (image URLs live here)."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/api/v1``: what ``dashscope.base_http_api_url`` should be."""
        return f"{self.origin}/api/v1"

    @property
    def config(self) -> MockConfig:
        """The knobs in force."""
        return self._live().config

    def counters(self) -> CountersSnapshot:
        """A snapshot of the counters."""
        return self._live().counters.snapshot()

    def reset_counters(self) -> None:
        """Zero the counters (calls in flight stay counted in ``in_flight``)."""
        self._live().counters.reset()

    def configure(self, **knobs: Any) -> MockConfig:
        """Change knobs now, e.g. ``configure(max_concurrency=2)``; returns the new config.

        Raises:
            pydantic.ValidationError: an unknown knob or a bad value.
        """
        return self._live().configure(**knobs)

    def advance_clock(self, seconds: float) -> float:
        """Move the mock's clock by ``seconds`` (issued URLs expire by it); returns the offset."""
        return self._live().advance_clock(seconds)

    def _live(self) -> MockState:
        if self._state is None or self._runner is None:
            raise RuntimeError("the MockServer is not running; use it inside 'async with'")
        return self._state


class ThreadedMock:
    """Thread-safe handle on a :class:`MockServer` running in its own thread (same methods)."""

    def __init__(self, server: MockServer, loop: asyncio.AbstractEventLoop) -> None:
        self._server = server
        self._loop = loop
        self.base_url = server.base_url
        self.origin = server.origin
        self.port = server.port

    @property
    def config(self) -> MockConfig:
        """The knobs in force."""
        return self._call(lambda: self._server.config)

    def counters(self) -> CountersSnapshot:
        """A snapshot of the counters."""
        return self._call(self._server.counters)

    def reset_counters(self) -> None:
        """Zero the counters."""
        self._call(self._server.reset_counters)

    def configure(self, **knobs: Any) -> MockConfig:
        """Change knobs now; returns the new config (raises ``pydantic.ValidationError``)."""
        return self._call(lambda: self._server.configure(**knobs))

    def advance_clock(self, seconds: float) -> float:
        """Move the mock's clock by ``seconds``; returns the offset."""
        return self._call(lambda: self._server.advance_clock(seconds))

    def _call(self, function: Callable[[], _T]) -> _T:
        async def run() -> _T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(_THREAD_CALL_TIMEOUT_S)


@contextmanager
def serve_in_thread(
    config: MockConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[ThreadedMock]:
    """Run a mock in a daemon thread for the ``with`` block and yield a :class:`ThreadedMock`.

    Raises:
        OSError: the address could not be bound.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="wanbatch-mock", daemon=True)
    thread.start()
    server = MockServer(config, host, port)
    try:
        asyncio.run_coroutine_threadsafe(server.__aenter__(), loop).result(_THREAD_CALL_TIMEOUT_S)
        try:
            yield ThreadedMock(server, loop)
        finally:
            stop = server.__aexit__(None, None, None)
            asyncio.run_coroutine_threadsafe(stop, loop).result(_THREAD_CALL_TIMEOUT_S)
    finally:
        # Finish async generators on the mock's own thread: the caller's thread may be running
        # an event loop of its own (an anyio test), where run_until_complete() is not allowed.
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(
                _THREAD_CALL_TIMEOUT_S
            )
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_THREAD_CALL_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()
