"""Child process of the benchmarks: one ``run_batch`` from a JSON spec; prints one JSON line.

``python benchmarks/_child_wanbatch.py '{"jobs": ..., "out": ..., "base_url": ..., ...}'``.
With ``"profile": FILE`` the run is under ``cProfile`` and the stats are dumped to FILE.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


t0 = time.perf_counter()
import anyio  # noqa: E402

from wanbatch import BatchConfig, run_batch  # noqa: E402
from wanbatch._config import Secret  # noqa: E402


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("no_fsync"):
        import os

        os.fsync = lambda fd: None  # diagnostic only: what the durability costs
    config = BatchConfig(
        base_url=spec["base_url"],
        api_key=Secret("sk-bench-0123456789"),
        concurrency=spec["concurrency"],
        rps=spec["rps"],
        download_concurrency=spec["download_concurrency"],
        **spec["config"],
    )
    t1 = time.perf_counter()
    c1 = cpu()

    async def go() -> object:
        return await run_batch(spec["jobs"], spec["out"], config, dry_run=spec["dry_run"])

    if spec["profile"]:
        import cProfile

        profiler = cProfile.Profile()
        summary = profiler.runcall(anyio.run, go)
        profiler.dump_stats(spec["profile"])
    else:
        summary = anyio.run(go)
    t2 = time.perf_counter()
    result = {
        "import_s": t1 - t0,
        "run_s": t2 - t1,
        "run_cpu_s": cpu() - c1,
        "summary": summary.to_json(),  # type: ignore[attr-defined]
    }
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
