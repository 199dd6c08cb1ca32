"""Benchmark: validate a 1,000,000-row CSV job file; report rows/s and peak RSS.

Run by hand (not collected by pytest)::

    .venv/bin/python benchmarks/bench_csv.py [--rows 1000000] [--keep DIR] [--format csv|tsv]

It writes a CSV with a header (``id``, a ``caption`` column mapped onto ``prompt`` as
``--map prompt=caption`` does, ``seed``, ``size``, ``images``, ``n`` and two extra columns that
go to ``meta``; captions with quoted commas and quotes, editing rows sharing one local PNG,
rows without an id), then runs :func:`wanbatch._validate.validate_file` on it in a fresh
subprocess, so the peak RSS measured (``ru_maxrss`` of that child) is the validator's alone.

Targets (2-core machine): >= 50,000 rows/s and peak RSS < 100 MB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_validate import png_rgb

TARGET_ROWS_PER_S = 50_000
TARGET_RSS_MB = 100.0

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from wanbatch._config import GenerationDefaults
from wanbatch._jobinput import JobInput
from wanbatch._validate import validate_file
t1 = time.perf_counter()
spec = JobInput(sys.argv[2], {"prompt": "caption"})
report = validate_file(sys.argv[1], GenerationDefaults(), spec=spec)
t2 = time.perf_counter()
print(json.dumps({
    "import_s": t1 - t0, "validate_s": t2 - t1, "rows": report.jobs, "valid": report.valid_jobs,
    "errors": report.error_count, "warnings": report.warning_count, "images": report.images,
    "first_errors": [str(e) for e in report.errors[:3]],
}))
"""


def write_rows(folder: Path, rows: int, fmt: str) -> Path:
    """Write the CSV (or TSV) job file; return its path."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "images" / "ref.png").write_bytes(png_rgb(256, 256))
    path = folder / f"jobs.{fmt}"
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, delimiter="\t" if fmt == "tsv" else ",")
        out.writerow(["id", "caption", "seed", "size", "images", "n", "source", "score"])
        for i in range(rows):
            kind = i % 10
            if kind < 6:  # text-to-image with an id
                out.writerow(
                    [
                        f"t2i-{i}",
                        f"A watercolor landscape {i}, hills and a river",
                        i,
                        "",
                        "",
                        "",
                        "web",
                        f"{i % 97 / 97:.3f}",
                    ]
                )
            elif kind < 8:  # editing, a shared local image
                out.writerow(
                    [
                        f"edit-{i}",
                        f'Repaint image 1 in "style {i}"',
                        "",
                        "1K",
                        "images/ref.png",
                        2,
                        "photo",
                        "",
                    ]
                )
            else:  # no id: derived from the request
                out.writerow(
                    ["", f"Studio product photo of item {i}", "", "1280*1280", "", "", "", ""]
                )
    return path


def main(argv: list[str] | None = None) -> int:
    """Generate, validate in a subprocess, print the figures; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("csv", "tsv"), default="csv")
    parser.add_argument("--keep", type=Path, help="write the job file here and keep it")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        t0 = time.perf_counter()
        path = write_rows(folder, args.rows, args.format)
        gen_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({size_mb:.0f} MB) in {gen_s:.1f} s: {path}")
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), args.format],
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
        rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        rss_mb = rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 1024 / 1024

    rate = result["rows"] / result["validate_s"]
    rate_wall = result["rows"] / wall
    print(
        f"validated {result['rows']:,} rows: {result['valid']:,} valid, {result['errors']} "
        f"errors, {result['warnings']} warnings, {result['images']:,} images at most"
    )
    for err in result["first_errors"]:
        print("  ", err)
    print(
        f"wall {wall:.2f} s (imports {result['import_s']:.2f} s, validation "
        f"{result['validate_s']:.2f} s)"
    )
    print(f"throughput {rate:,.0f} rows/s (validation), {rate_wall:,.0f} rows/s (wall)")
    print(f"peak RSS {rss_mb:.1f} MB")
    ok = rate_wall >= TARGET_ROWS_PER_S and rss_mb < TARGET_RSS_MB and result["errors"] == 0
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict}: targets >= {TARGET_ROWS_PER_S:,} rows/s, < {TARGET_RSS_MB:.0f} MB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
