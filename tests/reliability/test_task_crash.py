"""Task mode in a real process: a second Ctrl-C cancels pending tasks; ``kill -9`` costs at
most the submissions whose answer had not been journaled yet."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CANARY_KEY, REPO, journal_records, png_info, run_args, write_jobs
from wanbatch.mock import MockConfig, serve_in_thread


def env_for(mock: Any) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")},
        "DASHSCOPE_API_KEY": CANARY_KEY,
        "DASHSCOPE_HTTP_BASE_URL": mock.base_url,
    }


def submitted(out: Path) -> int:
    journal = out / "journal.jsonl"
    if not journal.exists():
        return 0
    return journal.read_bytes().count(b'"event":"submitted"')


def runs_journaled(out: Path) -> int:
    journal = out / "journal.jsonl"
    return journal.read_bytes().count(b'"event":"run"') if journal.exists() else 0


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_second_ctrl_c_cancels_the_pending_tasks(tmp_path: Path) -> None:
    count = 4
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"id": f"c{i}", "prompt": f"cancel me {i}", "images": ["https://x.test/r.png"]}
            for i in range(count)
        ],
    )
    out = tmp_path / "out"
    args = run_args(jobs, out, "--mode", "async", "--poll-interval", "0.05", "--concurrency", "4")
    # One generation at a time at the service: the other tasks wait PENDING.
    config = MockConfig(image_size=(16, 16), latency=4.0, max_concurrency=1, seed=3)
    with serve_in_thread(config) as mock:
        env = env_for(mock)
        proc = subprocess.Popen(
            args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_until(lambda: submitted(out) == count, 30, "the submissions")
        # Ctrl-C twice. Two SIGINTs sent back to back may merge into one pending signal in the
        # kernel; SIGTERM is handled the same way and cannot merge with it.
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        records = journal_records(out)
        cancelled = [r for r in records if r["event"] == "attempt" and r["code"] == "TaskCanceled"]
        assert all(not r["possibly_billed"] for r in cancelled)
        # At most one task had a generation slot; every other one was still PENDING.
        assert count - 1 <= len(cancelled) <= count, err
        assert "pending task" in err and "cancelled" in err
        wait_until(lambda: mock.counters().in_flight == 0, 30, "the running task")
        assert mock.counters().images_generated == count - len(cancelled)

        # The next run polls the task that ran and submits the cancelled jobs again.
        mock.configure(latency=0.1, max_concurrency=None)
        final = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert final.returncode == 0, final.stderr
        counters = mock.counters()
    assert counters.calls == count + len(cancelled)
    assert sorted(counters.images_by_prompt.values()) == [1] * count  # nothing bought twice
    assert len(list((out / "images").glob("*.png"))) == count


@pytest.mark.slow
def test_kill_9_during_hundreds_of_tasks_buys_at_most_one_extra_per_kill(tmp_path: Path) -> None:
    count, kills, concurrency = 200, 8, 5
    rng = random.Random(1806)
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"id": f"t{i:03d}", "prompt": f"task prompt {i}", "images": ["https://x.test/r.png"]}
            for i in range(count)
        ],
    )
    out = tmp_path / "out"
    args = run_args(
        jobs, out, "--mode", "async", "--poll-interval", "0.05", "--concurrency", str(concurrency),
        "--download-concurrency", "2",
    )  # fmt: skip
    started = time.monotonic()
    with serve_in_thread(
        MockConfig(image_size=(16, 16), latency=0.8, latency_jitter=0.2, seed=18)
    ) as mock:
        env = env_for(mock)
        for number in range(1, kills + 1):
            proc = subprocess.Popen(
                args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            # A random instant after the run journaled its start (start-up time varies with the
            # machine's load; a kill before it would test nothing).
            wait_until(lambda n=number: runs_journaled(out) >= n, 60, f"run {number} to start")
            time.sleep(rng.uniform(0.05, 1.5))  # a random instant, not a timing assertion
            proc.kill()
            proc.wait(timeout=30)
            assert proc.returncode == -9
        final = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
        counters = mock.counters()
    elapsed = time.monotonic() - started

    images = sorted((out / "images").glob("*.png"))
    assert [p.name for p in images] == [f"t{i:03d}-0.png" for i in range(count)]
    for image in images:
        png_info(image)
    records = journal_records(out)
    runs = sum(1 for r in records if r["event"] == "run")
    assert runs == kills + 1  # every kill landed mid-run
    tasks = sum(1 for r in records if r["event"] == "submitted")
    per_prompt = counters.images_by_prompt
    assert len(per_prompt) == count
    extra = sum(n - 1 for n in per_prompt.values())
    print(
        f"\ntask mode, kill -9 x{kills} ({runs - 1} after the journal was open): {count} jobs "
        f"done, {counters.calls} submissions, {tasks} journaled, {extra} extra generations, "
        f"{counters.task_polls} polls, {elapsed:.1f} s"
    )
    # Only a task whose submission was not journaled (its answer was on the way at a kill) is
    # generated twice: at most the submissions in flight at each kill, about one.
    assert extra <= counters.calls - tasks <= kills * concurrency
    assert extra <= kills
