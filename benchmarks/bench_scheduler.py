"""Scheduler efficiency: achieved jobs/s as a share of C/L with a cap C and latency L.

Run by hand (not part of pytest)::

    .venv/bin/python benchmarks/bench_scheduler.py [--quick] [--seconds 12]

For each (L, C) in {0.2 s, 1 s} x {2, 16}: the mock (own process) has ``latency=L`` (no jitter)
and ``max_concurrency=C``, no rate cap, 64x64 stand-in PNGs; wanbatch runs with
``concurrency=C, rps=None`` in a subprocess. The job count is sized so the ideal run takes
``--seconds`` (jobs = seconds x C / L). Achieved = jobs done / wall seconds of ``run_batch``
measured inside the client (validation, planning and the drain of the last calls included, so
the share is a lower bound for a long run). The steady share is measured at the mock: mean calls in
flight / C over the middle half of the run (``/mock/counters`` sampled every 100 ms; by Little's
law that is jobs/s / (C/L)), which leaves out start-up (validation, planning) and the drain.
Target: >= 95 % of C/L at every setting (whole run), no 429s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    InFlightSampler,
    MockProcess,
    machine,
    table,
    verdict,
    wanbatch_child,
    write_jobs,
)

TARGET = 0.95
SETTINGS = [(0.2, 2), (0.2, 16), (1.0, 2), (1.0, 16)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 s of ideal run per setting")
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    seconds = args.seconds or (6.0 if args.quick else 15.0)
    rows: list[list[object]] = []
    ok_all = True
    with tempfile.TemporaryDirectory(prefix="wb-sched-") as name:
        tmp = Path(name)
        for latency, cap in SETTINGS:
            n = round(seconds * cap / latency)
            jobs = write_jobs(tmp / f"jobs-{latency}-{cap}.jsonl", n)
            with MockProcess(max_concurrency=cap, latency=latency, image_size=(64, 64)) as mock:
                with InFlightSampler(mock) as sampler:
                    m = wanbatch_child(
                        jobs, tmp / f"out-{latency}-{cap}", mock.base_url, concurrency=cap, rps=None
                    )
                result = m.last_json()
                counters = mock.counters()
            done = result["summary"]["jobs_done"]
            rate = done / result["run_s"]
            ideal = cap / latency
            share = rate / ideal
            active = [x for x in sampler.samples if 0 < x[3] < n]
            t0, t1 = active[0][0], active[-1][0]
            mid = [x for x in active if t0 + (t1 - t0) / 4 <= x[0] <= t1 - (t1 - t0) / 4]
            steady = sum(x[1] for x in mid) / len(mid) / cap
            # Where the whole-run share goes: before the first call (validation, planning,
            # imports are not in run_s), the ramp to C in flight, the drain after the last start.
            first = next(x[0] for x in sampler.samples if x[3] > 0)
            full = next((x[0] for x in sampler.samples if x[1] >= cap), first)
            last = next(x[0] for x in sampler.samples if x[3] >= n and x[1] == 0)
            busy = last - first
            ok = share >= TARGET and done == n
            ok_all &= ok
            rows.append(
                [
                    f"scheduler: L={latency:g} s, C={cap}",
                    f"{done}/{n} jobs, {result['run_s']:.1f} s",
                    f"{rate:.1f} jobs/s = **{share:.1%}** of C/L={ideal:g} "
                    f"(steady {steady:.1%}); "
                    f"calls span {busy:.1f} s, C in flight after {full - first:.1f} s, "
                    f"start-up and end {result['run_s'] - busy:.1f} s; "
                    f"429s {counters['throttled']}, peak in flight {counters['peak_in_flight']}",
                    f">= {TARGET:.0%}",
                    verdict(ok),
                ]
            )
    print(f"<!-- {machine()} -->")
    print(table(["benchmark", "size", "result", "target", ""], rows))
    return 0 if ok_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
