"""Crash safety: ``kill -9`` at 10 random instants, restart with the same ``--out`` each time."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import time
from pathlib import Path

from tests.conftest import CANARY_KEY, REPO, journal_records, png_info, run_args, write_jobs
from wanbatch.mock import MockConfig, serve_in_thread


def _wait_for_run_record(out: Path, *, runs: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait (at most 60 s) until the journal holds ``runs`` run records."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "journal.jsonl").exists():
            records = journal_records(out)
            if sum(1 for r in records if r["event"] == "run") >= runs:
                return
        time.sleep(0.02)
    raise AssertionError(f"run {runs} did not journal its start (exit code {proc.poll()})")


def test_kill_9_ten_times_then_resume_loses_nothing(tmp_path: Path) -> None:
    count, concurrency, kills = 200, 4, 10
    rng = random.Random(606)
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [{"id": f"k{i:03d}", "prompt": f"crash prompt {i}", "seed": i} for i in range(count)],
    )
    out = tmp_path / "out"
    args = run_args(jobs, out, "--concurrency", str(concurrency), "--download-concurrency", "2")
    started = time.monotonic()
    in_flight_at_kills: list[int] = []
    with serve_in_thread(
        MockConfig(image_size=(24, 24), latency=0.2, latency_jitter=0.1, seed=5)
    ) as mock:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")},
            "DASHSCOPE_API_KEY": CANARY_KEY,
            "DASHSCOPE_HTTP_BASE_URL": mock.base_url,
        }
        for _ in range(kills):
            proc = subprocess.Popen(
                args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            # Kill at a random instant after this run opened its journal (start-up time varies
            # with the machine's load; a kill before it would test nothing).
            _wait_for_run_record(out, runs=len(in_flight_at_kills) + 1, proc=proc)
            time.sleep(rng.uniform(0.05, 0.9))  # a random instant, not a timing assertion
            before = mock.counters().in_flight
            proc.kill()
            proc.wait(timeout=30)
            after = mock.counters().in_flight
            # A call that ended on the server between the two reads was answered; the process
            # may have died before journaling it, so count the larger of the two readings.
            in_flight_at_kills.append(max(before, after))
            assert proc.returncode == -9
        final = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert final.returncode == 0, final.stderr
        counters = mock.counters()
    elapsed = time.monotonic() - started

    # Every job done; every file whole and equal to its journal sha256; no temp files left.
    records = journal_records(out)
    saved = {r["file"]: r for r in records if r["event"] == "saved"}
    images = sorted((out / "images").glob("*.png"))
    assert [p.name for p in images] == [f"k{i:03d}-0.png" for i in range(count)]
    for image in images:
        png_info(image)
        assert (
            hashlib.sha256(image.read_bytes()).hexdigest()
            == saved[f"images/{image.name}"]["sha256"]
        )
    assert not list((out / ".tmp").glob("*.part"))
    leftovers = [p for p in out.rglob("*") if p.is_file() and p.name.endswith((".part", ".tmp"))]
    assert not leftovers
    # Every kill landed mid-run, after the run's journal record.
    runs = sum(1 for r in records if r["event"] == "run")
    assert runs == kills + 1

    # Extra generations are bounded by the calls that were in flight at each kill.
    per_prompt = counters.images_by_prompt
    assert len(per_prompt) == count
    extra = sum(n - 1 for n in per_prompt.values())
    bound = sum(in_flight_at_kills)
    print(
        f"\nkill -9 x{kills} ({runs - 1} after the journal was open): {count} jobs done, "
        f"{extra} extra generations "
        f"(in flight at the kills: {in_flight_at_kills}, sum {bound}; hard bound "
        f"{kills * concurrency}), {elapsed:.1f} s"
    )
    assert extra <= bound <= kills * concurrency
