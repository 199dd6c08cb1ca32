"""Benchmark: validate a 1,000,000-line job file; report wall time, lines/s and peak RSS.

Run by hand (not collected by pytest)::

    .venv/bin/python benchmarks/bench_validate.py [--lines 1000000] [--keep DIR]

It writes a mixed job file into a temp folder (text-to-image jobs with and without ids, editing
jobs sharing one local PNG, URL and inline data-URI references, meta objects), then runs
:func:`wanbatch._validate.validate_file` in a fresh subprocess, so the peak RSS measured
(``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``) is the validator's alone.

Targets (2-core machine): >= 50,000 lines/s and peak RSS < 100 MB.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

TARGET_LINES_PER_S = 50_000
TARGET_RSS_MB = 100.0

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from wanbatch._config import GenerationDefaults
from wanbatch._validate import validate_file
t1 = time.perf_counter()
report = validate_file(sys.argv[1], GenerationDefaults())
t2 = time.perf_counter()
print(json.dumps({
    "import_s": t1 - t0, "validate_s": t2 - t1, "lines": report.lines, "jobs": report.jobs,
    "valid": report.valid_jobs, "errors": report.error_count, "warnings": report.warning_count,
    "images": report.images, "image_reads": report.image_reads,
    "first_errors": [str(e) for e in report.errors[:3]],
}))
"""


def png_rgb(width: int, height: int) -> bytes:
    """A tiny valid RGB PNG (no alpha) of the given size, built with zlib only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\x80\x90\xa0" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def write_jobs(folder: Path, lines: int) -> Path:
    """Write the mixed job file; return its path."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    png = png_rgb(256, 256)
    (folder / "images" / "ref.png").write_bytes(png)
    inline = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    path = folder / "jobs.jsonl"
    dumps = json.dumps
    with path.open("w", encoding="utf-8") as fh:
        for i in range(lines):
            kind = i % 20
            meta = {"row": i, "batch": i // 1000}
            if kind < 11:  # text-to-image with an id (interleaved)
                job: dict[str, object] = {
                    "id": f"t2i-{i}",
                    "prompt": f"A watercolor landscape number {i} with hills and a river",
                    "seed": i,
                    "meta": meta,
                }
            elif kind < 14:  # no id: derived from the request
                job = {"prompt": f"Studio product photo of item {i}", "size": "1280*1280"}
            elif kind < 18:  # editing with a shared local image
                job = {
                    "id": f"edit-{i}",
                    "prompt": f"Repaint image 1 in style {i}",
                    "images": ["images/ref.png"],
                    "size": "1K",
                    "n": 2,
                    "meta": meta,
                }
            elif kind < 19:  # URL reference
                job = {
                    "id": f"url-{i}",
                    "prompt": f"Sketch of photo {i}",
                    "images": ["https://example.com/ref.png"],
                }
            elif i % 1000 == 19:  # an inline data URI now and then
                job = {"id": f"inline-{i}", "prompt": f"Inline {i}", "images": [inline]}
            else:  # raw messages
                job = {
                    "id": f"raw-{i}",
                    "messages": [{"role": "user", "content": [{"text": f"raw prompt {i}"}]}],
                }
            fh.write(dumps(job) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """Generate, validate in a subprocess, print the figures; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="write the job file here and keep it")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        t0 = time.perf_counter()
        path = write_jobs(folder, args.lines)
        gen_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        print(f"generated {args.lines:,} lines ({size_mb:.0f} MB) in {gen_s:.1f} s: {path}")

        env = {**os.environ, "PYTHONHASHSEED": "0"}
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        result = json.loads(proc.stdout)
        # ru_maxrss is in KiB on Linux (bytes on macOS).
        rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        rss_mb = rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 1024 / 1024

    rate = result["lines"] / result["validate_s"]
    rate_wall = result["lines"] / wall
    print(
        f"validated {result['lines']:,} lines: {result['valid']:,} valid, "
        f"{result['errors']} errors, {result['warnings']} warnings, "
        f"{result['images']:,} images at most, {result['image_reads']} image file read(s)"
    )
    for err in result["first_errors"]:
        print("  ", err)
    print(
        f"wall {wall:.2f} s (imports {result['import_s']:.2f} s, validation "
        f"{result['validate_s']:.2f} s)"
    )
    print(f"throughput {rate:,.0f} lines/s (validation), {rate_wall:,.0f} lines/s (wall)")
    print(f"peak RSS {rss_mb:.1f} MB")
    ok = rate_wall >= TARGET_LINES_PER_S and rss_mb < TARGET_RSS_MB and result["errors"] == 0
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict}: targets >= {TARGET_LINES_PER_S:,} lines/s, < {TARGET_RSS_MB:.0f} MB")
    print(
        f"| validate: {result['lines']:,} lines | {args.lines:,} lines "
        f"| **{rate_wall:,.0f} lines/s**, peak RSS **{rss_mb:.0f} MB** "
        f"| >= {TARGET_LINES_PER_S:,} lines/s, < {TARGET_RSS_MB:.0f} MB "
        f"| {'ok' if ok else 'MISS'} |"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
