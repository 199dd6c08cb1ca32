"""The pure core imports no I/O library (docs/architecture.md "Layers").

The pure core is the last layer of the import-linter layers contract in pyproject.toml, so one
list serves both checks: import-linter checks what each module imports from wanbatch, this test
what loading it pulls in from anywhere. Each module is imported in a fresh interpreter
(``sys.modules`` of this test process is already full of everything), through the package front
door as a user would, and the interpreter reports which forbidden top-level packages got loaded.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import pytest
from importlinter.api import read_configuration

from tests.conftest import REPO


def _pure_modules() -> list[str]:
    contracts = read_configuration(str(REPO / "pyproject.toml"))["contracts_options"]
    (layers,) = [contract["layers"] for contract in contracts if contract["type"] == "layers"]
    return [f"wanbatch.{name.strip()}" for name in re.split(r"[:|]", layers[-1])]


PURE_MODULES = _pure_modules()
FORBIDDEN = ("aiohttp", "anyio", "aiofiles", "tqdm")

_PROBE = """
import importlib, json, sys
importlib.import_module({module!r})
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({forbidden!r}))
print(json.dumps(loaded))
"""


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_loads_no_io_library(module: str) -> None:
    # A module named as pure that is gone (renamed, deleted) is a mistake in the list, not a pass.
    assert importlib.util.find_spec(module) is not None, f"{module} does not exist"
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


def test_the_pure_layer_is_the_core() -> None:
    # The list above is read from the contract: it must be the core, not some other layer.
    core = {"wanbatch._errors", "wanbatch._verdicts", "wanbatch._state", "wanbatch._protocol"}
    assert core | {"wanbatch._answer", "wanbatch._sse", "wanbatch._response"} <= set(PURE_MODULES)
    assert "wanbatch._engine" not in PURE_MODULES and "wanbatch._pacing" not in PURE_MODULES
