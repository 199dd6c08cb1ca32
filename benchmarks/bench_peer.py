"""Peer: the same batch with ``wanbatch run`` and with a thread pool over the official SDK.

Run by hand (not part of pytest)::

    .venv/bin/python benchmarks/bench_peer.py [--quick] [--jobs 1000] [--faults]

The mock (own process) behaves like the documented service: 5 calls in flight and 5 accepted
calls per second, latency 1 s, 64x64 stand-in PNGs. The jobs are editing-mode jobs (one
240x240 reference PNG, n=1). Clients, one after the other, counters reset in between:

- ``wanbatch run JOBS --out DIR --base-url URL --no-progress`` (the CLI, default pacing:
  concurrency 5, rps 5);
- ``benchmarks/naive_sdk.py``: 20 threads calling ``dashscope.MultiModalConversation.call``,
  sleeping 1 s on a 429, downloading with ``urllib`` to the final file name.

Reported: wall time, calls and 429s (the mock's counters), images bought (billed), and what each
left on disk (files, valid PNGs). The default is the issue's 1,000 jobs: over 3 minutes per
client at 5 calls/s (``--jobs 300`` for a shorter run). ``--faults`` adds 2 % truncated
downloads and 2 % 500s, to show what each leaves on disk when things go wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    HERE,
    KEY,
    PY,
    MockProcess,
    count_pngs,
    machine,
    run_measured,
    table,
    write_jobs,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 jobs")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--faults", action="store_true")
    args = parser.parse_args()
    n = args.jobs or (60 if args.quick else 1000)
    faults = {"truncate_rate": 0.02, "error_rate": 0.02, "seed": 7} if args.faults else {}
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="wb-peer-") as name:
        tmp = Path(name)
        jobs = write_jobs(tmp / "jobs.jsonl", n)
        with MockProcess(
            max_concurrency=5, rps=5, latency=1.0, image_size=(64, 64), **faults
        ) as mock:
            sdk_out = str(tmp / "out-sdk")
            env = {**os.environ, "DASHSCOPE_API_KEY": KEY}
            clients = [
                (
                    "wanbatch run (defaults: c=5, rps 5)",
                    [
                        PY,
                        "-m",
                        "wanbatch",
                        "run",
                        str(jobs),
                        "--out",
                        str(tmp / "out-wb"),
                        "--base-url",
                        mock.base_url,
                        "--no-progress",
                    ],
                    tmp / "out-wb" / "images",
                ),
                (
                    "sdk pool (20 threads, sleep 1 s on 429, urllib)",
                    [PY, str(HERE / "naive_sdk.py"), str(jobs), sdk_out, mock.base_url],
                    tmp / "out-sdk" / "images",
                ),
            ]
            for label, argv, images in clients:
                mock.reset_counters()
                m = run_measured(argv, env=env, timeout=1800)
                c = mock.counters()
                files, valid = count_pngs(images)
                rows.append(
                    [
                        f"peer: {label}",
                        f"{n} jobs, cap 5/5 per s, L=1 s" + (", faults" if faults else ""),
                        f"wall {m.wall:.1f} s (ideal {n / 5:.0f} s); exit {m.returncode}; "
                        f"{c['calls']} calls, 429s {c['throttled']} "
                        f"({c['throttled'] / max(1, c['calls']):.0%}); "
                        f"{c['images_generated']} images bought; on disk {files} files, "
                        f"{valid} valid PNGs; client CPU {m.cpu:.1f} s",
                        "",
                        "",
                    ]
                )
    print(f"<!-- {machine()} -->")
    print(table(["benchmark", "size", "result", "target", ""], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
