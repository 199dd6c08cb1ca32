"""Shared test helpers: job files on disk, the CLI as a subprocess, PNG checks."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from wanbatch._records import Record

REPO = Path(__file__).resolve().parents[1]
CANARY_KEY = "sk-canary-5f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def record(event: str, **fields: Any) -> Record:
    """A journal record with any fields, also ones no builder of ``wanbatch._records`` makes:
    partial, odd and damaged records are what the fold and the views must survive."""
    return Record({"event": event, **fields})


def write_jobs(path: Path, jobs: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(job) + "\n" for job in jobs), encoding="utf-8")
    return path


def png_info(path: Path) -> tuple[int, int]:
    """Width and height of a whole PNG file; fails the test on a partial or invalid one."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82", f"{path} is cut short"
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{path}: bad CRC in {kind!r}"
        pos += 12 + length
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 90, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "wanbatch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or REPO,
    )


def run_args(jobs: Path, out: Path, *extra: str) -> list[str]:
    """``python -m wanbatch run JOBS --out OUT --no-progress --rps 0 EXTRA...`` for Popen."""
    return [
        sys.executable,
        "-m",
        "wanbatch",
        "run",
        str(jobs),
        "--out",
        str(out),
        "--no-progress",
        "--rps",
        "0",
        *extra,
    ]


def journal_records(out: Path) -> list[dict[str, Any]]:
    records = []
    for line in (out / "journal.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records
