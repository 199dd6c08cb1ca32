"""The pure core imports no I/O library (docs/architecture.md "Layers").

Each module is imported in a fresh interpreter (``sys.modules`` of this test process is already
full of everything), through the package front door as a user would, and the interpreter reports
which forbidden top-level packages got loaded.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

PURE_MODULES = [
    "wanbatch._config",
    "wanbatch._errors",
    "wanbatch._protocol",
    "wanbatch._policy",
    "wanbatch._urls",
    "wanbatch._jobs",
    "wanbatch._state",
    "wanbatch._events",
    "wanbatch._columns",
]
FORBIDDEN = ("aiohttp", "anyio", "aiofiles", "tqdm")

_PROBE = """
import importlib, json, sys
importlib.import_module({module!r})
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({forbidden!r}))
print(json.dumps(loaded))
"""


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_loads_no_io_library(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} does not exist yet (written in parallel by another engineer)")
    code = _PROBE.format(module=module, forbidden=FORBIDDEN)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing {module} loaded {loaded}"


def test_pacing_is_the_io_side() -> None:
    # The contrast that makes the test above meaningful: the probe does see anyio when it's there.
    code = _PROBE.format(module="wanbatch._pacing", forbidden=FORBIDDEN)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "anyio" in json.loads(proc.stdout.strip().splitlines()[-1])
