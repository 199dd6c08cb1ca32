"""Benchmark: validate a 1,000,000-row CSV job file; report rows/s and peak RSS.

Run by hand (not collected by pytest)::

    .venv/bin/python benchmarks/bench_csv.py [--rows 1000000] [--keep DIR] [--format csv|tsv]

It writes a CSV with a header (``id``, a ``caption`` column mapped onto ``prompt`` as
``--map prompt=caption`` does, ``seed``, ``size``, ``images``, ``n`` and two extra columns that
go to ``meta``; captions with quoted commas and quotes, editing rows sharing one local PNG,
rows without an id), then runs :func:`wanbatch._validate.validate_file` on it in a fresh
subprocess, so the peak RSS measured (``ru_maxrss`` of that child) is the validator's alone.

On a busy machine wall-clock rates say little, so it also reports the child's CPU time, and
(``--rounds N``, default 2) validates the same jobs written as JSONL (each row's JSONL line)
in alternating rounds: the ratio of the two is what reading a table costs over JSONL.

Targets (2-core machine): >= 50,000 rows/s and peak RSS < 100 MB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
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
t1, c1 = time.perf_counter(), time.process_time()
fmt = sys.argv[2]
spec = JobInput(fmt, {"prompt": "caption"} if fmt != "jsonl" else {})
report = validate_file(sys.argv[1], GenerationDefaults(), spec=spec)
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({
    "import_s": t1 - t0, "validate_s": t2 - t1, "cpu_s": c2 - c1,
    "rows": report.jobs, "valid": report.valid_jobs,
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


def write_jsonl(table: Path, fmt: str) -> Path:
    """The same jobs as JSONL: each row's line as wanbatch reads it."""
    from wanbatch._jobinput import JobInput
    from wanbatch._jobsource import open_jobs

    path = table.with_suffix(".jsonl")
    source = open_jobs(table, JobInput(fmt, {"prompt": "caption"}))  # type: ignore[arg-type]
    assert not isinstance(source, Exception)
    with source, path.open("w", encoding="utf-8") as out:
        for _row, text in source.items():
            out.write(f"{text}\n")
    return path


def validate(path: Path, fmt: str) -> tuple[dict[str, float], float]:
    """Validate in a fresh child; its figures and peak RSS (MB)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), fmt],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    if status != 0:
        raise SystemExit(f"validation child failed:\n{err}")
    result = json.loads(out)
    result["wall"] = wall
    rss_mb = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 1024**2
    return result, rss_mb


def main(argv: list[str] | None = None) -> int:
    """Generate, validate in a subprocess, print the figures; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("csv", "tsv"), default="csv")
    parser.add_argument("--keep", type=Path, help="write the job file here and keep it")
    parser.add_argument("--rounds", type=int, default=2, help="alternating CSV/JSONL rounds")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        t0 = time.perf_counter()
        path = write_rows(folder, args.rows, args.format)
        gen_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({size_mb:.0f} MB) in {gen_s:.1f} s: {path}")
        jsonl = write_jsonl(path, args.format) if args.rounds else None
        best: dict[str, tuple[dict[str, float], float]] = {}
        for _ in range(max(1, args.rounds)):
            for fmt, file in ((args.format, path), ("jsonl", jsonl)):
                if file is None:
                    continue
                result, rss = validate(file, fmt)
                print(
                    f"  {fmt}: {result['rows'] / result['wall']:,.0f} rows/s wall, "
                    f"{result['rows'] / result['cpu_s']:,.0f} rows per CPU s, {rss:.1f} MB"
                )
                if fmt not in best or result["cpu_s"] < best[fmt][0]["cpu_s"]:
                    best[fmt] = (result, rss)

    result, rss_mb = best[args.format]
    rate_wall = result["rows"] / result["wall"]
    rate_cpu = result["rows"] / result["cpu_s"]
    print(
        f"validated {result['rows']:,} rows: {result['valid']:,} valid, {result['errors']} "
        f"errors, {result['warnings']} warnings, {result['images']:,} images at most"
    )
    for err in result["first_errors"]:
        print("  ", err)
    print(
        f"best round: wall {result['wall']:.2f} s (imports {result['import_s']:.2f} s, "
        f"validation {result['validate_s']:.2f} s, {result['cpu_s']:.2f} s CPU)"
    )
    print(f"throughput {rate_wall:,.0f} rows/s (wall), {rate_cpu:,.0f} rows per CPU second")
    if "jsonl" in best:
        same = best["jsonl"][0]
        print(
            f"the same jobs as JSONL: {same['rows'] / same['cpu_s']:,.0f} lines per CPU second; "
            f"{args.format} costs {result['cpu_s'] / same['cpu_s']:.2f}x its CPU"
        )
    print(f"peak RSS {rss_mb:.1f} MB")
    ok = rate_wall >= TARGET_ROWS_PER_S and rss_mb < TARGET_RSS_MB and result["errors"] == 0
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict}: targets >= {TARGET_ROWS_PER_S:,} rows/s, < {TARGET_RSS_MB:.0f} MB")
    print(
        f"| validate {args.format}: {result['rows']:,} rows | best round "
        f"| **{rate_wall:,.0f} rows/s** ({rate_cpu:,.0f} per CPU s), peak RSS **{rss_mb:.0f} MB** "
        f"| >= {TARGET_ROWS_PER_S:,} rows/s, < {TARGET_RSS_MB:.0f} MB | {'ok' if ok else 'MISS'} |"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
