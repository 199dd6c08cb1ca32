"""The package's front door: one table of public names, the imports for type checkers agree
with it, and every name resolves to the object its module defines."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import wanbatch

INIT = Path(wanbatch.__file__)


def type_checking_imports() -> dict[str, str]:
    """``name -> module`` of the imports under ``if TYPE_CHECKING:`` in ``__init__.py``."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1, "expected one `if TYPE_CHECKING:` block"
    found: dict[str, str] = {}
    for stmt in blocks[0].body:
        assert isinstance(stmt, ast.ImportFrom), ast.dump(stmt)
        for alias in stmt.names:
            # "X as X": an explicit re-export for type checkers (mypy --strict, pyright).
            assert alias.asname == alias.name, f"{alias.name}: import it as itself"
            assert alias.name not in found, f"{alias.name} imported twice"
            assert stmt.module is not None
            found[alias.name] = stmt.module
    return found


def test_the_type_checking_imports_and_the_table_agree() -> None:
    assert type_checking_imports() == wanbatch._PUBLIC


def test_all_is_the_table() -> None:
    assert sorted(wanbatch.__all__) == sorted(wanbatch._PUBLIC)
    assert len(set(wanbatch.__all__)) == len(wanbatch.__all__)


@pytest.mark.parametrize("name", sorted(wanbatch._PUBLIC))
def test_every_public_name_resolves_to_its_module_object(name: str) -> None:
    value = getattr(wanbatch, name)
    assert value is getattr(importlib.import_module(wanbatch._PUBLIC[name]), name)
    assert name in dir(wanbatch)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        wanbatch.NoSuchThing  # noqa: B018


def test_star_import_gives_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from wanbatch import *", namespace)
    assert set(wanbatch._PUBLIC) <= set(namespace)


def test_importing_the_package_loads_no_module_behind_the_table() -> None:
    """Lazy: ``import wanbatch`` alone loads none of the modules the names come from."""
    modules = sorted(set(wanbatch._PUBLIC.values()))
    code = f"import sys, wanbatch; print([m for m in {modules!r} if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
