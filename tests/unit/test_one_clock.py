"""One clock: no module of the client reads the time or sleeps except through ``_clock``.

The engine and its parts take a :class:`wanbatch._clock.Clock` (``clock=``), so that a test
with a simulated clock runs backoffs and expiries without waiting; a direct ``time.time()`` or
``anyio.sleep()`` somewhere would quietly wait for real again.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wanbatch

PACKAGE = Path(wanbatch.__file__).parent
#: Reading the time or sleeping, as ``module.function``.
FORBIDDEN = {
    "time.time",
    "time.monotonic",
    "time.perf_counter",
    "time.sleep",
    "anyio.sleep",
    "anyio.sleep_until",
    "asyncio.sleep",
}
#: Where a direct call is right, and why.
ALLOWED = {
    ("_clock.py", "time.time"): "the system clock itself",
    ("_clock.py", "time.monotonic"): "the system clock itself",
    ("_clock.py", "anyio.sleep"): "the system clock itself",
    ("_journal.py", "time.time"): "each record's ts: a stamp for people, never compared",
}
CLIENT_MODULES = sorted(p for p in PACKAGE.glob("*.py"))


def calls_of_the_clock(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            name = f"{node.value.id}.{node.attr}"
            if name in FORBIDDEN:
                found.add(name)
        elif isinstance(node, ast.ImportFrom) and node.module in ("time", "anyio", "asyncio"):
            for alias in node.names:
                if f"{node.module}.{alias.name}" in FORBIDDEN:
                    found.add(f"{node.module}.{alias.name}")
    return found


def test_the_scan_sees_a_direct_call() -> None:
    assert calls_of_the_clock(PACKAGE / "_clock.py") == {
        "time.time",
        "time.monotonic",
        "anyio.sleep",
    }


@pytest.mark.parametrize("path", CLIENT_MODULES, ids=lambda p: p.name)
def test_no_module_reads_the_time_or_sleeps_but_through_the_clock(path: Path) -> None:
    direct = {name for name in calls_of_the_clock(path) if (path.name, name) not in ALLOWED}
    assert not direct, f"{path.name} calls {sorted(direct)}: take a Clock (clock=) instead"
