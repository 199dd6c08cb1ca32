"""pytest plugin: a DashScope mock on a free loopback port, for your own CI smoke runs.

Installed with wanbatch and loaded by pytest automatically (entry point ``pytest11: wanbatch``).
Loading it costs nothing: the mock is imported only when a fixture is used.

Fixtures:

``dashscope_mock``
    A fast mock (no latency, 64x64 stand-in PNGs) on ``127.0.0.1:<free port>``, one per test.
    It runs in a background thread, so it serves blocking code, async code and subprocesses.
    Point your client at ``dashscope_mock.base_url`` and assert on ``dashscope_mock.counters()``::

        def test_smoke(dashscope_mock, tmp_path):
            dashscope.base_http_api_url = dashscope_mock.base_url
            response = MultiModalConversation.call(api_key="test", model="wan2.6-image", ...)
            assert response.status_code == 200
            assert dashscope_mock.counters().images_generated == 4

    Change behaviour mid-test with ``dashscope_mock.configure(max_concurrency=2, error_rate=0.1)``
    and expire issued URLs with ``dashscope_mock.advance_clock(86400)``.

``dashscope_mock_factory``
    Starts mocks with your own knobs; each is stopped at the end of the test::

        def test_throttled(dashscope_mock_factory):
            mock = dashscope_mock_factory(max_concurrency=1, latency=0.2, retry_after=1)

    Knobs are the fields of :class:`wanbatch.mock.MockConfig`; unset ones get the fast
    defaults above (``latency=0``, ``image_size=(64, 64)``).

Reference images sent to the mock must be real JPEG/PNG/BMP/WEBP files 240-8000 px a side (the
API's rule), or ``http(s)://`` / ``oss://`` URLs, which it does not fetch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from wanbatch.mock import ThreadedMock

__all__ = ["FAST_KNOBS", "dashscope_mock", "dashscope_mock_factory"]

#: Knobs of the fixtures' mocks unless overridden: instant answers, tiny PNGs.
FAST_KNOBS: dict[str, Any] = {"latency": 0.0, "image_size": (64, 64)}


@pytest.fixture
def dashscope_mock_factory() -> Iterator[Callable[..., ThreadedMock]]:
    """A function ``(**knobs) -> ThreadedMock`` starting mocks stopped after the test."""
    from wanbatch.mock import MockConfig, serve_in_thread

    with ExitStack() as stack:

        def start(**knobs: Any) -> ThreadedMock:
            config = MockConfig(**{**FAST_KNOBS, **knobs})
            return stack.enter_context(serve_in_thread(config))

        yield start


@pytest.fixture
def dashscope_mock(dashscope_mock_factory: Callable[..., ThreadedMock]) -> ThreadedMock:
    """A fast mock DashScope server for this test (see the module docstring)."""
    return dashscope_mock_factory()
