"""Key pools: several accounts, each with its own hidden cap, driven from one process.

Run by hand (not part of pytest)::

    .venv/bin/python benchmarks/bench_pool.py [--quick] [--part 4|200|both]

The mock (its own process) holds one account per key (``--key KEY:max_concurrency=C,rps=5``),
latency ``L`` ± ``J`` s (uniform), 16x16 stand-in PNGs. The client (``run_batch`` in a child
process, its keys as ``BatchConfig.api_keys``, ``concurrency=5`` and ``rps=5`` per key: the
documented per-account quota, which the hidden caps undercut) runs every job to its end,
downloads included. Reported: jobs/s (jobs / wall seconds inside the child, from after imports to
the end of the run: planning and the drain of the last calls included) as a share of the ideal
``sum(caps) / mean latency``; the share of calls answered 429 (the mock's
``throttled / calls``); the steady-state use of the combined cap (the mock's mean calls in
flight over the middle half of the run, sampled every 0.5 s, over ``sum(caps)``); the child's
peak RSS, for two job counts (flat memory: the same peak
for twice the jobs); the length of the progress line and of ``summary.json``.

Part "4": 4 keys with a hidden cap of 3 each, latency 2 s ± 0.5 s.
Part "200": 200 keys with hidden caps drawn from 1-5 (seeded), latency 4 s ± 1 s.

Targets: >= 95 % of ideal, <= 3 % 429s, flat memory; progress line and summary readable.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    PY,
    REPO,
    InFlightSampler,
    MockProcess,
    machine,
    run_measured,
    table,
    verdict,
    write_jobs,
)

SHARE_TARGET = 0.95
THROTTLE_TARGET = 0.03

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import anyio
from wanbatch import BatchConfig, run_batch
from wanbatch._config import Secret
from wanbatch._progress import ProgressBar
import io

spec = json.loads(sys.argv[1])
keys = tuple(Secret(k) for k in spec["keys"])
config = BatchConfig(base_url=spec["base_url"], api_key=keys[0], api_keys=keys,
                     concurrency=spec["concurrency"], rps=spec["rps"], download_concurrency=16)
stream = io.StringIO()
bar = ProgressBar(stream=stream, enabled=False)
t1 = time.perf_counter()
summary = anyio.run(lambda: run_batch(spec["jobs"], spec["out"], config, on_event=bar))
t2 = time.perf_counter()
print(json.dumps({"run_s": t2 - t1, "postfix": bar.postfix(), "summary": summary.to_json()},
                 default=str))
"""


class PoolMock(MockProcess):
    """The mock with one ``--key`` per account."""

    def __init__(self, accounts: dict[str, int], **knobs: object) -> None:
        argv = [PY, "-m", "wanbatch.mock", "--port", "0"]
        for name, value in knobs.items():
            if isinstance(value, tuple):
                value = f"{value[0]}x{value[1]}"
            argv += ["--" + name.replace("_", "-"), str(value)]
        for key, cap in accounts.items():
            argv += ["--key", f"{key}:max_concurrency={cap},rps=5"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.close()
            raise RuntimeError(f"the mock did not start: {self.base_url!r}")
        self.origin = self.base_url.removesuffix("/api/v1")


def run_part(
    name: str, caps: list[int], latency: float, jitter: float, jobs_counts: list[int], tmp: Path
) -> tuple[list[list[object]], bool]:
    keys = [f"sk-bench-{i:04d}-{random.Random(i).getrandbits(64):016x}" for i in range(len(caps))]
    accounts = dict(zip(keys, caps, strict=True))
    ideal = sum(caps) / latency
    rows: list[list[object]] = []
    ok = True
    with PoolMock(accounts, latency=latency, latency_jitter=jitter, image_size=(16, 16)) as mock:
        for count in jobs_counts:
            mock.reset_counters()
            jobs = write_jobs(tmp / f"{name}-{count}.jsonl", count)
            spec = {
                "jobs": str(jobs),
                "out": str(tmp / f"out-{name}-{count}"),
                "base_url": mock.base_url,
                "keys": keys,
                "concurrency": 5,
                "rps": 5.0,
            }
            with InFlightSampler(mock, interval=0.5) as sampler:
                m = run_measured([PY, "-c", CHILD, json.dumps(spec)], timeout=1800)
            busy = [s for s in sampler.samples if s[1] > 0]
            middle = busy[len(busy) // 4 : 3 * len(busy) // 4] or busy
            steady = sum(s[1] for s in middle) / len(middle) / sum(caps) if middle else 0.0
            result = m.last_json()
            counters = mock.counters()
            summary = result["summary"]
            share = summary["jobs_done"] / result["run_s"] / ideal
            throttled = counters["throttled"] / max(1, counters["calls"])
            summary_text = (tmp / f"out-{name}-{count}" / "summary.json").read_text()
            rows.append(
                [
                    f"{len(caps)} keys, caps {min(caps)}-{max(caps)} (sum {sum(caps)})",
                    count,
                    f"{summary['jobs_done']}/{count}",
                    f"{result['run_s']:.1f}",
                    f"{summary['jobs_done'] / result['run_s']:.1f}",
                    f"{ideal:.1f}",
                    f"{share:.1%}",
                    f"{steady:.1%}",
                    f"{throttled:.2%} ({counters['throttled']}/{counters['calls']})",
                    f"{m.maxrss_mb:.0f}",
                    f"{m.cpu:.0f}",
                    len(result["postfix"]),
                    f"{len(summary_text.splitlines())} lines",
                ]
            )
            ok = ok and share >= SHARE_TARGET and throttled <= THROTTLE_TARGET
            print(f"  postfix: {result['postfix']}", file=sys.stderr)
            head = "\n".join([*summary_text.splitlines()[:3], "  ..."])
            print(f"  summary.json head:\n{head}", file=sys.stderr)
    return rows, ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--part", choices=("4", "200", "both"), default="both")
    parser.add_argument("--jobs", default=None, help="job counts of part 200, e.g. 32000")
    args = parser.parse_args()
    header = [
        "pool",
        "jobs",
        "done",
        "run s",
        "jobs/s",
        "ideal/s",
        "share",
        "steady in-flight",
        "429s",
        "peak RSS MB",
        "CPU s",
        "postfix chars",
        "summary.json",
    ]
    rows: list[list[object]] = []
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="wb-pool-") as tmp:
        if args.part in ("4", "both"):
            counts = [300] if args.quick else [400, 800]
            part, ok = run_part("p4", [3] * 4, 2.0, 0.5, counts, Path(tmp))
            rows += part
            verdicts.append(f"4 keys x cap 3: {verdict(ok)}")
        if args.part in ("200", "both"):
            caps = [random.Random(7 + i).randint(1, 5) for i in range(200)]
            counts = [3000] if args.quick else [8000, 16000]
            if args.jobs:
                counts = [int(n) for n in args.jobs.split(",")]
            part, ok = run_part("p200", caps, 4.0, 1.0, counts, Path(tmp))
            rows += part
            verdicts.append(f"200 keys x cap 1-5: {verdict(ok)}")
    print(machine())
    print(table(header, rows))
    print("; ".join(verdicts))


if __name__ == "__main__":
    main()
