"""Client CPU per job: wanbatch vs the floor (a minimal aiohttp loop), zero-latency mock.

Run by hand (not part of pytest)::

    .venv/bin/python benchmarks/bench_overhead.py [--quick] [--jobs 3000] [--rounds 2]
                                                 [--profile] [--profile-top 25]

The mock runs in its own process (no latency, 64x64 stand-in PNGs, no caps). The jobs are
editing-mode jobs (one 240x240 reference PNG as a data URI, n=1). Each round runs, in fresh
subprocesses and alternating so the machine's noise hits all of them:

- ``benchmarks/floor.py --durable`` -- **the floor**: 16 workers, each POST, parse, GET, and
  write the file the way wanbatch must write it (temp file, fsync, rename: "the same file
  writes");
- ``benchmarks/floor.py`` (info): the same loop with plain writes that stop in the page cache.
  It does less than wanbatch is required to, and even the durable loop costs 1.6-1.9x it;
- ``run_batch`` (concurrency 16, no rps, 8 download workers, into a new folder);
- a diagnostic ``run_batch`` with ``os.fsync`` replaced by a no-op in its process.

CPU is the client process's own: ``run_cpu_s`` (user + sys after imports, measured inside the
process, all threads) and the whole process from ``os.wait4`` (imports included). Figures are
the best round of each, per job, and the median of the per-round ratios (rounds are paired, so
noise that hits a whole round cancels). Target: wanbatch <= 1.5x the floor on in-run CPU per job.

``--profile`` (or a miss) runs wanbatch once more under ``cProfile`` and prints the top
functions by own time and by cumulative time below the table.
"""

from __future__ import annotations

import argparse
import io
import pstats
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    HERE,
    PY,
    MockProcess,
    machine,
    run_measured,
    table,
    verdict,
    wanbatch_child,
    write_jobs,
)

TARGET = 1.5
CONCURRENCY = 16


def profile_report(path: Path, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs()
    for key in ("tottime", "cumulative"):
        out.write(f"\n--- top {top} by {key} ---\n")
        stats.sort_stats(key).print_stats(top)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 jobs, one round")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--profile", action="store_true", help="always profile wanbatch")
    parser.add_argument("--no-profile", action="store_true", help="never profile")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument(
        "--dir",
        default=None,
        help="where the files go (default: the system temp dir; /dev/shm leaves the disk out)",
    )
    args = parser.parse_args()
    n = args.jobs or (1000 if args.quick else 3000)
    rounds = args.rounds or (1 if args.quick else 3)
    durable_cpu: list[float] = []
    floor_cpu: list[float] = []
    floor_total: list[float] = []
    wb_cpu: list[float] = []
    wb_total: list[float] = []
    nofsync_cpu: list[float] = []
    walls = {"floor": [], "wanbatch": []}  # type: dict[str, list[float]]
    report = ""
    with tempfile.TemporaryDirectory(prefix="wb-overhead-", dir=args.dir) as name:
        tmp = Path(name)
        jobs = write_jobs(tmp / "jobs.jsonl", n)
        with MockProcess(image_size=(64, 64)) as mock:
            # Warm the mock (PNG cache, first connections) outside the measurement.
            run_measured([PY, str(HERE / "floor.py"), str(jobs), str(tmp / "warm"), mock.base_url])
            for r in range(rounds):
                m = run_measured(
                    [
                        PY,
                        str(HERE / "floor.py"),
                        str(jobs),
                        str(tmp / f"floor{r}"),
                        mock.base_url,
                        "--concurrency",
                        str(CONCURRENCY),
                    ]
                )
                result = m.last_json()
                assert result["done"] == n, result
                floor_cpu.append(result["run_cpu_s"] / n)
                floor_total.append(m.cpu / n)
                walls["floor"].append(result["run_s"])
                m = run_measured(
                    [
                        *(PY, str(HERE / "floor.py"), str(jobs), str(tmp / f"durable{r}")),
                        *(mock.base_url, "--concurrency", str(CONCURRENCY), "--durable"),
                    ]
                )
                durable_cpu.append(m.last_json()["run_cpu_s"] / n)
                m = wanbatch_child(
                    jobs, tmp / f"wb{r}", mock.base_url, concurrency=CONCURRENCY, rps=None
                )
                result = m.last_json()
                assert result["summary"]["jobs_done"] == n, result
                wb_cpu.append(result["run_cpu_s"] / n)
                wb_total.append(m.cpu / n)
                walls["wanbatch"].append(result["run_s"])
                m = wanbatch_child(
                    jobs,
                    tmp / f"wb-nofsync{r}",
                    mock.base_url,
                    concurrency=CONCURRENCY,
                    rps=None,
                    no_fsync=True,
                )
                nofsync_cpu.append(m.last_json()["run_cpu_s"] / n)
            ratio = min(wb_cpu) / min(durable_cpu)
            if args.profile or (ratio > TARGET and not args.no_profile):
                prof = tmp / "wanbatch.prof"
                wanbatch_child(
                    jobs,
                    tmp / "wb-prof",
                    mock.base_url,
                    concurrency=CONCURRENCY,
                    rps=None,
                    profile=prof,
                )
                report = profile_report(prof, args.profile_top)
    paired = statistics.median(w / d for w, d in zip(wb_cpu, durable_cpu, strict=True))
    size = f"{n} jobs x {rounds}, c={CONCURRENCY}"
    rows = [
        [
            "overhead: floor (aiohttp loop; temp file, fsync, rename)",
            size,
            f"{min(durable_cpu) * 1e3:.2f} ms CPU/job in run",
            "(floor)",
            "",
        ],
        [
            "overhead: page-cache loop (plain writes, no fsync)",
            size,
            f"{min(floor_cpu) * 1e3:.2f} ms CPU/job in run ({min(floor_total) * 1e3:.2f} with "
            f"imports); {n / min(walls['floor']):.0f} jobs/s; the floor costs "
            f"{min(durable_cpu) / min(floor_cpu):.2f}x it",
            "(info)",
            "",
        ],
        [
            "overhead: wanbatch run_batch",
            size,
            f"{min(wb_cpu) * 1e3:.2f} ms CPU/job in run ({min(wb_total) * 1e3:.2f} with imports); "
            f"{n / min(walls['wanbatch']):.0f} jobs/s; **{ratio:.2f}x the floor** (median of "
            f"paired rounds {paired:.2f}x); {min(wb_cpu) / min(floor_cpu):.2f}x the page-cache "
            "loop",
            f"<= {TARGET}x floor",
            verdict(ratio <= TARGET),
        ],
        [
            "overhead: wanbatch with os.fsync a no-op (diagnostic)",
            size,
            f"{min(nofsync_cpu) * 1e3:.2f} ms CPU/job in run "
            f"= {min(nofsync_cpu) / min(durable_cpu):.2f}x the floor, "
            f"{min(nofsync_cpu) / min(floor_cpu):.2f}x the page-cache loop",
            "(info)",
            "",
        ],
    ]
    print(f"<!-- {machine()} -->")
    print(table(["benchmark", "size", "result", "target", ""], rows))
    if report:
        print("\n<details><summary>cProfile of wanbatch (same run)</summary>\n\n```")
        print(report.strip())
        print("```\n</details>")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
