"""The README's exit-code table, read as data, and the CLI run in-process with its output."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.conftest import REPO
from wanbatch._cli import main

COMMANDS = ("run", "validate", "status", "mock")


def readme_exit_codes() -> dict[int, str]:
    """``code -> meaning`` from the README's "Exit codes (all commands)" table."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("Exit codes (all commands):")
    rows: dict[int, str] = {}
    for line in text[start:].splitlines()[1:]:
        if not line.strip():
            if rows:
                break
            continue
        match = re.fullmatch(r"\|\s*(\d+)\s*\|(.*)\|", line.strip())
        if match:
            rows[int(match.group(1))] = match.group(2).strip()
    assert rows, "no exit-code table in README.md"
    return rows


def documented_codes(command: str) -> set[int]:
    """The exit codes the README documents for ``command``: the rows that name it, or that
    name no command at all (they apply to every command)."""
    codes = set()
    for code, meaning in readme_exit_codes().items():
        named = {c for c in COMMANDS if f"`{c}`" in meaning}
        if not named or command in named:
            codes.add(code)
    return codes


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Outcome:
    """``wanbatch ARGV`` in-process: its exit code (argparse's ``SystemExit`` included) and
    output. Any other exception propagates: that is the traceback a user would see."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    captured = capsys.readouterr()
    return Outcome(int(code), captured.out, captured.err)
