"""A local mock of the DashScope ``wan2.6-image`` HTTP API, for tests, CI and benchmarks.

It speaks the API as ``docs/service.md`` describes it (validation, error bodies, sync
JSON and SSE answers, the async task API, signed expiring result URLs it serves itself) and has
behaviour knobs (latency, 429s, faults, budget, ...) that are all off by default. It imports
nothing from the rest of ``wanbatch``: it is an independent reading of the service's docs, so a
client's misreading is not mirrored here.

Start it with ``async with MockServer(config) as mock``, ``with serve_in_thread(config) as mock``,
the ``dashscope_mock`` pytest fixture (``wanbatch.testing``) or ``wanbatch mock`` on the command
line, then point a client at ``mock.base_url``.
"""

from __future__ import annotations

from wanbatch.mock._app import create_app as create_app
from wanbatch.mock._cli import cli_main as cli_main
from wanbatch.mock._config import ForcedError as ForcedError
from wanbatch.mock._config import MockConfig as MockConfig
from wanbatch.mock._counters import CountersSnapshot as CountersSnapshot
from wanbatch.mock._server import MockServer as MockServer
from wanbatch.mock._server import ThreadedMock as ThreadedMock
from wanbatch.mock._server import serve_in_thread as serve_in_thread

__all__ = [
    "CountersSnapshot",
    "ForcedError",
    "MockConfig",
    "MockServer",
    "ThreadedMock",
    "cli_main",
    "create_app",
    "serve_in_thread",
]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
