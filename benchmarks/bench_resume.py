"""Resume: time from start to the first new call when the journal holds 1,000,000 done jobs.

Run by hand (not part of pytest)::

    .venv/bin/python benchmarks/bench_resume.py [--quick] [--done 1000000] [--new 10]

Synthesizes, in a temp folder: a job file of ``--done`` text-to-image jobs (``id`` + ``prompt``)
plus ``--new`` jobs at its end, and an output folder whose ``journal.jsonl`` holds a ``run``
record and, per done job, a ``generated`` and a ``saved`` record in the format of
``wanbatch/_records.py`` (with the ``line`` hash a real run records; no ``fp``; the image files are
created empty, as their records say: a run stats each of them), plus the state snapshot and the
job file's done prefix a real run's end writes (timed). Then starts ``run_batch`` in a
subprocess against the mock (own process, no latency) and polls the mock's counters every 10 ms:
the figure is seconds from spawning the client until the mock has seen its first call.

A second subprocess times the passes the engine makes before that first call, one by one:
validation (``validate_file``), journal replay (``read_journal``), the plan-count pass
(``iter_jobs`` + ``plan_job``, what ``--dry-run`` reports) and imports; the producer's own pass
over the file to reach the new jobs at the end is about one more plan pass.
Target: < 5 s to the first new call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PY, MockProcess, machine, run_measured, table, verdict, wanbatch_child

TARGET = 5.0

_PASSES = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from pathlib import Path
from wanbatch._config import BatchConfig
import wanbatch._engine  # its import time is part of a resume's
from wanbatch._journal import read_journal
from wanbatch._planning import plan_run
t1 = time.perf_counter()
jobs, out = Path(sys.argv[1]), Path(sys.argv[2])
state = read_journal(out)
t2 = time.perf_counter()
config = BatchConfig()
# The run's validate-and-plan pass, outside an event loop.
plan = plan_run(jobs, out, config, state, salt=config.defaults.model_dump_json())
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "replay": t2 - t1, "validate_plan": t3 - t2,
                  "skipped": plan.report.skipped_done, "counts": plan.counts,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


#: What synthesize() measured of the previous run's end.
END_OF_RUN: dict[str, float] = {}


def synthesize(folder: Path, done: int, new: int) -> tuple[Path, Path]:
    from wanbatch._config import GenerationDefaults
    from wanbatch._donejobs import line_hash
    from wanbatch._journal import read_journal
    from wanbatch._prefixcache import write_prefix
    from wanbatch._prefixscan import scan_done_prefix
    from wanbatch._touchlog import TouchLog
    from wanbatch._views import write_views

    salt = GenerationDefaults().model_dump_json()
    jobs = folder / "jobs.jsonl"
    out = folder / "out"
    out.mkdir(parents=True)
    now = time.time()
    expires = int(now) + 86400
    sha = "0" * 64
    with (
        jobs.open("w", encoding="utf-8") as jf,
        (out / "journal.jsonl").open("w", encoding="utf-8") as journal,
    ):
        journal.write(
            json.dumps({"v": 1, "ts": now, "event": "run", "jobs_file": str(jobs.absolute())})
            + "\n"
        )
        for i in range(done + new):
            jid = f"r{i:07d}"
            prompt = f"resume prompt {i}"
            line = f'{{"id":"{jid}","prompt":"{prompt}"}}'
            jf.write(line + "\n")
            if i >= done:
                continue
            url = (
                f"http://127.0.0.1:9/dashscope-result-mock/{jid}.png?Expires={expires}"
                f"&OSSAccessKeyId=mock&Signature=x"
            )
            journal.write(
                f'{{"v":1,"ts":{now},"event":"generated","id":"{jid}","attempt":1,'
                f'"line":{line_hash(line, salt)},'
                f'"request_id":"req-{i}","images":[{{"url":"{url}","expires":{expires}}}],'
                f'"texts":[],"usage":{{"image_count":1}},"prompt":"{prompt}","seed":null,'
                f'"size":"1280*1280","meta":null}}\n'
                f'{{"v":1,"ts":{now},"event":"saved","id":"{jid}","k":0,'
                f'"file":"images/{jid}-0.png","bytes":0,"sha256":"{sha}","width":1280,'
                f'"height":1280,"prompt":"{prompt}","seed":null,"size":"1280*1280",'
                f'"request_id":"req-{i}","meta":null}}\n'
            )
    (out / "images").mkdir()
    for i in range(done):  # empty, as the records say (bytes 0): a run stats every image
        os.close(os.open(out / "images" / f"r{i:07d}-0.png", os.O_CREAT | os.O_WRONLY, 0o644))
    # What the previous run's end left besides the journal: its state snapshot, the job file's
    # done prefix and the views (the same calls as BatchRun._finish; timed: a cost of that end).
    t = time.perf_counter()
    touched = TouchLog()
    state = read_journal(out, write_snapshot=True, touched=touched)
    t1 = time.perf_counter()
    write_prefix(out, scan_done_prefix(jobs, state, salt))
    t2 = time.perf_counter()
    write_views(out, state, touched)  # from the whole journal: nothing to append to yet
    END_OF_RUN["replay_s"] = t1 - t
    END_OF_RUN["prefix_s"] = t2 - t1
    END_OF_RUN["views_s"] = time.perf_counter() - t2
    return jobs, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 done jobs")
    parser.add_argument("--done", type=int, default=None)
    parser.add_argument("--new", type=int, default=10)
    args = parser.parse_args()
    done = args.done or (100_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="wb-resume-") as name:
        folder = Path(name)
        t = time.perf_counter()
        jobs, out = synthesize(folder, done, args.new)
        synth_s = time.perf_counter() - t
        with MockProcess(image_size=(8, 8)) as mock:
            box: dict[str, object] = {}

            def client() -> None:
                box["m"] = wanbatch_child(jobs, out, mock.base_url, concurrency=5, rps=None)

            thread = threading.Thread(target=client)
            spawned = time.monotonic()
            thread.start()
            first: float | None = None
            while thread.is_alive():
                if mock.counters()["calls"] > 0:
                    first = time.monotonic() - spawned
                    break
                time.sleep(0.01)
            thread.join()
            counters = mock.counters()
        m = box["m"]
        result = m.last_json()  # type: ignore[attr-defined]
        passes = run_measured([PY, "-c", _PASSES, str(jobs), str(out)]).last_json()
    s = result["summary"]
    ok = first is not None and first < TARGET and s["jobs_done"] == done + args.new
    rows = [
        [
            "resume: start -> first new call",
            f"{done:,} done + {args.new} new jobs",
            (f"**{first:.2f} s**" if first is not None else "no call seen")
            + f"; {counters['calls']} calls; whole run {m.wall:.1f} s "  # type: ignore[attr-defined]
            f"(peak RSS {m.maxrss_mb:.0f} MB)",  # type: ignore[attr-defined]
            f"< {TARGET:g} s",
            verdict(ok),
        ],
        [
            "resume: passes before the first call",
            f"{done:,} done + {args.new} new jobs",
            f"imports {passes['import']:.2f} s, journal (snapshot + tail) "
            f"{passes['replay']:.2f} s, validate + plan {passes['validate_plan']:.2f} s "
            f"({passes['skipped']:,} done lines passed over; the producer makes one more such "
            f"pass); synth {synth_s:.0f} s, of which the previous run's end: journal replay "
            f"+ snapshot {END_OF_RUN['replay_s']:.1f} s, done-prefix scan "
            f"{END_OF_RUN['prefix_s']:.1f} s, views rebuilt from the whole journal "
            f"{END_OF_RUN['views_s']:.1f} s (the resumed run appends its rows instead)",
            "",
            "",
        ],
    ]
    print(f"<!-- {machine()} -->")
    print(table(["benchmark", "size", "result", "target", ""], rows))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
