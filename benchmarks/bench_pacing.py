"""Pacing against a hidden cap: wanbatch vs a 20-thread pool over the official SDK.

Run by hand (not part of pytest)::

    .venv/bin/python benchmarks/bench_pacing.py [--quick] [--jobs 200] [--skip-variant]

Part 1 - steady hidden cap. The mock (its own process) allows 5 calls in flight and 5 accepted
calls per second, latency 2 s +/- 0.5 s (uniform); the client is told ``--concurrency 20`` and no
``--rps``. Ideal throughput = cap / mean latency = 2.5 jobs/s. Reported per client: jobs/s as a
share of ideal (jobs / wall seconds of the run, measured inside the client process, from after
imports to the end: validation, planning and the drain of the last calls included) and the share
of calls answered 429 (the mock's ``throttled / calls``). Clients, one after the other against
the same mock (counters reset in between):

- ``wanbatch``: ``run_batch`` in a subprocess, ``concurrency=20, rps=None``, jobs in editing mode
  (one 240x240 reference PNG, n=1), images downloaded (64x64 stand-ins).
- ``sdk pool``: ``benchmarks/naive_sdk.py``: 20 threads calling
  ``dashscope.MultiModalConversation.call`` with the same request, sleeping 1 s on a 429, then
  downloading with ``urllib``.

Targets (wanbatch): >= 95 % of ideal, <= 3 % of calls throttled.

Part 2 - the cap changes under a running batch (5 -> 2 -> 8, ``POST /mock/config``). Latency is
shortened to 0.5 s +/- 0.125 s and the rate cap is removed so the run stays short; the mock's
``in_flight`` is sampled every 100 ms. For each change: seconds from the change until wanbatch
has settled at the new cap (a 2 s window with no new 429 and mean in-flight >= 80 % of the new
cap), the 429s in that phase and the mean in-flight once settled.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    HERE,
    PY,
    InFlightSampler,
    Measured,
    MockProcess,
    machine,
    run_measured,
    table,
    verdict,
    wanbatch_child,
    write_jobs,
)

CAP = 5
LATENCY = 2.0
JITTER = 0.5
SHARE_TARGET = 0.95
THROTTLE_TARGET = 0.03


def steady(jobs_n: int, tmp: Path) -> list[list[object]]:
    ideal = CAP / LATENCY
    jobs = write_jobs(tmp / "jobs.jsonl", jobs_n)
    rows: list[list[object]] = []
    with MockProcess(
        max_concurrency=CAP, rps=CAP, latency=LATENCY, latency_jitter=JITTER, image_size=(64, 64)
    ) as mock:
        runs: list[tuple[str, Measured, float, int]] = []
        m = wanbatch_child(jobs, tmp / "out-wanbatch", mock.base_url, concurrency=20, rps=None)
        result = m.last_json()
        done = result["summary"]["jobs_done"]
        runs.append(("wanbatch (concurrency 20, no rps)", m, result["run_s"], done))
        c_w = mock.counters()
        mock.reset_counters()
        m = run_measured(
            [PY, str(HERE / "naive_sdk.py"), str(jobs), str(tmp / "out-sdk"), mock.base_url]
        )
        result = m.last_json()
        name = "sdk pool (20 threads, sleep 1 s on 429)"
        runs.append((name, m, result["seconds"], result["done"]))
        c_s = mock.counters()
        for (name, _m, seconds, done), c in zip(runs, (c_w, c_s), strict=True):
            rate = done / seconds
            share = rate / ideal
            throttled = c["throttled"] / max(1, c["calls"])
            ok = share >= SHARE_TARGET and throttled <= THROTTLE_TARGET
            rows.append(
                [
                    f"pacing: {name}",
                    f"{done}/{jobs_n} jobs, {c['calls']} calls, {seconds:.1f} s",
                    f"{rate:.2f} jobs/s = {share:.1%} of ideal {ideal:.2f}; "
                    f"429s {c['throttled']} = {throttled:.1%} of calls",
                    f">= {SHARE_TARGET:.0%} of ideal, <= {THROTTLE_TARGET:.0%} 429",
                    verdict(ok) if name.startswith("wanbatch") else "(peer)",
                ]
            )
    return rows


def _settle(
    samples: list[tuple[float, int, int, int]],
    start: float,
    end: float,
    cap: int,
    window: float = 2.0,
) -> tuple[float | None, float]:
    """Seconds from ``start`` until a ``window`` with no new 429 and mean in-flight >= 0.8 cap."""
    phase = [s for s in samples if start <= s[0] <= end]
    for i, (t, _, thr, _calls) in enumerate(phase):
        win = [s for s in phase[i:] if s[0] <= t + window]
        if win[-1][0] - t < window * 0.9:
            break
        if win[-1][2] == thr and statistics.mean(s[1] for s in win) >= 0.8 * cap:
            settled = [s[1] for s in phase if s[0] >= t]
            return t - start, statistics.mean(settled)
    return None, statistics.mean(s[1] for s in phase) if phase else 0.0


def variant(tmp: Path, phase_s: float, latency: float) -> list[list[object]]:
    caps = [5, 2, 8]
    # Enough jobs to cover phases 1 and 2 at their caps and ~1.5 phases at the last cap.
    n = int(phase_s * (caps[0] + caps[1]) / latency + 1.5 * phase_s * caps[2] / latency)
    jobs = write_jobs(tmp / "jobs-variant.jsonl", n)
    rows: list[list[object]] = []
    with MockProcess(
        max_concurrency=caps[0], latency=latency, latency_jitter=latency / 4, image_size=(64, 64)
    ) as mock:
        box: dict[str, Measured] = {}

        def client() -> None:
            box["m"] = wanbatch_child(
                jobs, tmp / "out-variant", mock.base_url, concurrency=20, rps=None
            )

        changes: list[tuple[float, int]] = []
        with InFlightSampler(mock) as sampler:
            thread = threading.Thread(target=client)
            thread.start()
            while not sampler.samples or sampler.samples[-1][1] == 0:
                time.sleep(0.05)
                if not thread.is_alive():
                    break
            changes.append((time.monotonic(), caps[0]))
            for cap in caps[1:]:
                time.sleep(phase_s)
                mock.configure(max_concurrency=cap)
                changes.append((time.monotonic(), cap))
            thread.join()
        end = sampler.samples[-1][0]
        m = box["m"]
        result = m.last_json()
        counters = mock.counters()
        samples = sampler.samples
        for i, (at, cap) in enumerate(changes):
            until = changes[i + 1][0] if i + 1 < len(changes) else end
            # For the last phase, stop at the drain (in-flight starts falling for want of jobs).
            settle_s, mean_after = _settle(samples, at, until, cap)
            before = [s[2] for s in samples if s[0] < at] if i else []
            thr = [s[2] for s in samples if at <= s[0] <= until]
            phase_429 = thr[-1] - (before[-1] if before else 0) if thr else 0
            label = "start" if i == 0 else f"{caps[i - 1]} -> {cap}"
            rows.append(
                [
                    f"pacing, cap changes: {label}",
                    f"phase {until - at:.1f} s",
                    (f"settled in {settle_s:.1f} s" if settle_s is not None else "never settled")
                    + f"; mean in flight after {mean_after:.1f} (cap {cap}); 429s {phase_429}",
                    "a few seconds",
                    verdict(settle_s is not None and settle_s <= 5.0),
                ]
            )
        s = result["summary"]
        rows.append(
            [
                "pacing, cap changes: whole run",
                f"{s['jobs_done']}/{n} jobs, {counters['calls']} calls, {result['run_s']:.1f} s",
                f"429s {counters['throttled']} = {counters['throttled'] / counters['calls']:.1%}"
                f" of calls; final limit {s['concurrency_limit']}",
                "few 429s",
                "",
            ]
        )
        (tmp / "variant-samples.json").write_text(
            json.dumps({"changes": changes, "samples": samples})
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 jobs, 6 s phases")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--phase", type=float, default=None, help="seconds per cap (part 2)")
    parser.add_argument("--variant-latency", type=float, default=0.5)
    parser.add_argument("--skip-steady", action="store_true")
    parser.add_argument("--skip-variant", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    args = parser.parse_args()
    jobs_n = args.jobs or (60 if args.quick else 200)
    phase = args.phase or (6.0 if args.quick else 10.0)
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="wb-pacing-") as name:
        tmp = args.keep or Path(name)
        tmp.mkdir(parents=True, exist_ok=True)
        if not args.skip_steady:
            rows += steady(jobs_n, tmp)
        if not args.skip_variant:
            rows += variant(tmp, phase, args.variant_latency)
    print(f"<!-- {machine()} -->")
    print(table(["benchmark", "size", "result", "target", ""], rows))
    return 0 if all(r[-1] != "MISS" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
