"""Peak RSS of a run over 10k, 100k (and 1M) jobs: flat in batch size, < 150 MB at 1M.

Run by hand (not part of pytest)::

    .venv/bin/python benchmarks/bench_memory.py [--quick] [--sizes 10000,100000]
                                               [--max-minutes 10] [--dry-run-size 1000000]

The mock (own process) has no latency, no caps and 8x8 stand-in PNGs. Jobs are text-to-image
(``id`` + ``prompt``: interleaved mode, one SSE call and one image each). Each size runs
``run_batch`` (concurrency 32, no rps) in a fresh subprocess into a new folder; the figure is
that child's peak RSS (``ru_maxrss`` from ``os.wait4``). A size whose estimated time (from the
jobs/s of the largest size measured before it) exceeds ``--max-minutes`` is reported as not run.
Then ``--dry-run`` (validate + plan, no calls) over ``--dry-run-size`` jobs as a memory proxy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MockProcess, machine, table, verdict, wanbatch_child

TARGET_MB = 150.0


def write_text_jobs(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(count):
            fh.write(f'{{"id":"m{i:07d}","prompt":"memory prompt {i}"}}\n')
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 2,000 and 20,000")
    parser.add_argument("--sizes", default=None, help="comma-separated job counts")
    parser.add_argument("--max-minutes", type=float, default=10.0)
    parser.add_argument("--dry-run-size", type=int, default=None)
    args = parser.parse_args()
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    else:
        sizes = [2_000, 20_000] if args.quick else [10_000, 100_000, 1_000_000]
    dry_n = args.dry_run_size or (100_000 if args.quick else 1_000_000)
    rows: list[list[object]] = []
    ok_all = True
    rate: float | None = None
    with tempfile.TemporaryDirectory(prefix="wb-memory-") as name:
        tmp = Path(name)
        with MockProcess(image_size=(8, 8)) as mock:
            for n in sizes:
                if rate is not None and n / rate > args.max_minutes * 60:
                    rows.append(
                        [
                            f"memory: run {n:,} jobs",
                            f"{n:,} jobs, c=32",
                            f"NOT RUN: estimated {n / rate / 60:.0f} min at {rate:.0f} jobs/s "
                            f"(> {args.max_minutes:g} min)",
                            f"flat, < {TARGET_MB:g} MB",
                            "not run",
                        ]
                    )
                    continue
                jobs = write_text_jobs(tmp / f"jobs-{n}.jsonl", n)
                m = wanbatch_child(
                    jobs, tmp / f"out-{n}", mock.base_url, concurrency=32, rps=None, timeout=3600
                )
                result = m.last_json()
                done = result["summary"]["jobs_done"]
                rate = done / result["run_s"]
                ok = m.maxrss_mb < TARGET_MB and done == n
                ok_all &= ok
                rows.append(
                    [
                        f"memory: run {n:,} jobs",
                        f"{done:,}/{n:,} jobs, c=32, {result['run_s']:.0f} s",
                        f"peak RSS **{m.maxrss_mb:.0f} MB**; {rate:.0f} jobs/s; "
                        f"CPU {m.cpu / n * 1e3:.2f} ms/job",
                        f"flat, < {TARGET_MB:g} MB",
                        verdict(ok),
                    ]
                )
                jobs.unlink()
            jobs = write_text_jobs(tmp / f"jobs-dry-{dry_n}.jsonl", dry_n)
            m = wanbatch_child(
                jobs, tmp / "out-dry", mock.base_url, concurrency=32, dry_run=True, timeout=3600
            )
            result = m.last_json()
            ok = m.maxrss_mb < TARGET_MB
            ok_all &= ok
            rows.append(
                [
                    f"memory: --dry-run {dry_n:,} jobs",
                    f"{result['summary']['jobs_total']:,} jobs (validate + plan)",
                    f"peak RSS **{m.maxrss_mb:.0f} MB**; {result['run_s']:.1f} s",
                    f"< {TARGET_MB:g} MB",
                    verdict(ok),
                ]
            )
    print(f"<!-- {machine()} -->")
    print(table(["benchmark", "size", "result", "target", ""], rows))
    return 0 if ok_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
