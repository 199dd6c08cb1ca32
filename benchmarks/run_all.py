"""Run every benchmark and print one Markdown table (machine, Python, date on top).

Run by hand (not part of pytest)::

    .venv/bin/python benchmarks/run_all.py [--quick] [--only pacing,overhead,...] [--skip peer]

Each benchmark runs as its own subprocess (``benchmarks/bench_<name>.py [--quick]``) one after the
other, so they never share the machine with each other; their table rows are collected into one
table, and anything they print below their table (the overhead benchmark's cProfile) follows it.
Order: pacing, overhead, scheduler, download, resume, memory, peer (the issues' priorities).
Exit 1 if any row says MISS.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, PY, REPO, machine

BENCHES = [
    "pacing",
    "overhead",
    "scheduler",
    "download",
    "resume",
    "memory",
    "peer",
    "validate",
    "csv",
    "report",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--only", default=None, help="comma-separated names")
    parser.add_argument("--skip", default="", help="comma-separated names")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else BENCHES
    names = [n for n in names if n not in args.skip.split(",")]
    rows: list[str] = []
    extras: list[str] = []
    started = time.monotonic()
    for name in names:
        argv = [PY, str(HERE / f"bench_{name}.py")] + (["--quick"] if args.quick else [])
        t = time.monotonic()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
        seconds = time.monotonic() - t
        lines = proc.stdout.splitlines()
        table_rows = [
            line for line in lines if line.startswith("| ") and not line.startswith("| benchmark |")
        ]
        if not table_rows:
            rows.append(
                f"| {name}: FAILED (exit {proc.returncode}) | | "
                f"{(proc.stderr.strip().splitlines() or ['?'])[-1]} | | MISS |"
            )
        rows += table_rows
        rest = [ln for ln in lines if not ln.startswith(("|", "<!--"))]
        if any(ln.strip() for ln in rest):
            extras.append(f"### {name}\n" + "\n".join(rest).strip())
        print(f"  {name}: {seconds:.0f} s, exit {proc.returncode}", file=sys.stderr, flush=True)
    print(
        f"**Machine:** {machine()}; total {time.monotonic() - started:.0f} s"
        + (" (--quick sizes)" if args.quick else "")
    )
    print()
    print("| benchmark | size | result | target | |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    for extra in extras:
        print()
        print(extra)
    return 1 if any(row.rstrip().endswith("| MISS |") for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
