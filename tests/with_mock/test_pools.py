"""Key pools against the mock holding several accounts: a key whose account goes overdue
mid-run is retired and the batch finishes on the others (its paid images kept); a pool of bad
keys stops with exit 3; an answer fatal for every key stops at once; keys never show."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import CANARY_KEY, journal_records, run_cli, write_jobs
from tests.simclock import run_simulated
from wanbatch import BatchConfig, BatchRun, ExitCode, KeyRetired, Secret
from wanbatch._progress import ProgressBar, format_summary
from wanbatch.mock import MockConfig, serve_in_thread

pytestmark = pytest.mark.anyio

KEYS = [f"sk-pool-{n}-{'abcdef0123456789'[n] * 12}{n:04d}" for n in range(1, 5)]


def _pool_config(base_url: str, keys: list[str], **changes: Any) -> BatchConfig:
    secrets = tuple(Secret(k) for k in keys)
    settings: dict[str, Any] = {"concurrency": 3, "rps": None, "max_attempts": 4, **changes}
    return BatchConfig(base_url=base_url, api_key=secrets[0], api_keys=secrets, **settings)


def _jobs(tmp_path: Path, count: int) -> Path:
    return write_jobs(
        tmp_path / "jobs.jsonl", [{"id": f"j{i}", "prompt": f"pool {i}"} for i in range(count)]
    )


def _images(out: Path) -> list[Path]:
    return sorted((out / "images").rglob("*.png"))


async def test_a_key_going_overdue_mid_run_is_retired_and_the_batch_finishes(
    tmp_path: Path,
) -> None:
    accounts = {k: {"max_concurrency": 3} for k in KEYS}
    accounts[KEYS[1]] = {"max_concurrency": 3, "budget": 4, "billing_code": "PrepaidBillOverdue"}
    events: list[Any] = []
    jobs, out = _jobs(tmp_path, 60), tmp_path / "out"
    mock_config = MockConfig(image_size=(16, 16), seed=3, latency=0.02, keys=accounts)
    with serve_in_thread(mock_config) as mock:
        summary = await run_simulated(
            jobs, out, _pool_config(mock.base_url, KEYS), on_event=events.append
        )
        stats = mock.counters()
    assert summary.exit_code == ExitCode.OK, summary.stop_reason
    assert summary.jobs_done == 60 and summary.jobs_failed == 0
    # Every image bought, the overdue key's 4 among them, is on disk; none was bought twice.
    assert stats.images_generated == 60 == summary.images_on_disk == len(_images(out))
    assert summary.keys_active == 3 and summary.keys_retired == 1
    by_label = {k["key"]: k for k in summary.keys}
    overdue = by_label[f"#2 …{KEYS[1][-4:]}"]
    assert overdue["state"] == "retired" and overdue["images"] == 4
    assert overdue["retired_by"].startswith("PrepaidBillOverdue")
    assert sum(k["images"] for k in summary.keys) == 60
    bar = ProgressBar(stream=io.StringIO(), enabled=False)
    for event in events:
        bar(event)
    assert "keys=3/4" in bar.postfix()
    retired = [e for e in events if isinstance(e, KeyRetired)]
    assert [(e.label, e.active, e.total) for e in retired] == [(overdue["key"], 3, 4)]
    written = json.loads((out / "summary.json").read_text())
    assert written["keys_retired"] == 1 and len(written["keys"]) == 4
    assert "keys: 3 of 4 active; retired: #2" in format_summary(summary, str(out))


async def test_task_mode_takes_one_key(tmp_path: Path) -> None:
    config = _pool_config("http://127.0.0.1:9/api/v1", KEYS, mode="async")
    with pytest.raises(ValueError, match="one API key"):
        await run_simulated(_jobs(tmp_path, 1), tmp_path / "out", config)


async def test_a_pool_of_bad_keys_stops_with_exit_3(tmp_path: Path) -> None:
    jobs, out = _jobs(tmp_path, 8), tmp_path / "out"
    with serve_in_thread(MockConfig(image_size=(16, 16), keys={"sk-the-only-good-one": {}})) as m:
        summary = await run_simulated(jobs, out, _pool_config(m.base_url, KEYS))
    assert summary.exit_code == ExitCode.FATAL
    assert summary.keys_active == 0 and summary.keys_retired == 4
    assert summary.stop_reason is not None and "every API key" in summary.stop_reason
    assert summary.jobs_done == 0 and summary.jobs_failed == 0  # all pending, resumable


async def test_an_answer_fatal_for_every_key_stops_at_once(tmp_path: Path) -> None:
    jobs, out = _jobs(tmp_path, 8), tmp_path / "out"
    forced = {"status": 404, "code": "ModelNotFound"}
    config = MockConfig(image_size=(16, 16), keys={k: {} for k in KEYS}, force_error=forced)
    with serve_in_thread(config) as mock:
        summary = await run_simulated(jobs, out, _pool_config(mock.base_url, KEYS))
        stats = mock.counters()
    assert summary.exit_code == ExitCode.FATAL
    assert summary.keys_retired == 0  # no account is to blame
    assert stats.calls <= 4 * 3  # the first answers stopped the run


async def test_the_pool_spreads_calls_over_every_key(tmp_path: Path) -> None:
    jobs, out = _jobs(tmp_path, 48), tmp_path / "out"
    config = MockConfig(
        image_size=(16, 16), latency=0.05, keys={k: {"max_concurrency": 2} for k in KEYS}
    )
    with serve_in_thread(config) as mock:
        summary = await run_simulated(jobs, out, _pool_config(mock.base_url, KEYS, concurrency=2))
    assert summary.exit_code == ExitCode.OK and summary.jobs_done == 48
    assert all(k["images"] > 0 for k in summary.keys), summary.keys
    assert summary.throttled == 0  # each key keeps to its own cap


async def test_pool_keys_never_leak(tmp_path: Path) -> None:
    keys = [CANARY_KEY, CANARY_KEY[::-1]]
    stream = io.StringIO()
    progress = ProgressBar(stream=stream, enabled=True)
    events: list[str] = []

    def on_event(event: Any) -> None:
        events.append(repr(event))
        progress(event)

    config = MockConfig(image_size=(16, 16), keys={keys[1]: {"budget": 1}})
    jobs, out = _jobs(tmp_path, 6), tmp_path / "out"
    with serve_in_thread(config) as mock:
        summary = await run_simulated(
            jobs, out, _pool_config(mock.base_url, keys), on_event=on_event
        )
    progress.close()
    assert summary.exit_code == ExitCode.FATAL  # #1 is unknown, #2 ran out of money
    text = "\n".join([stream.getvalue(), *events, repr(summary), format_summary(summary, "o")])
    text += (
        repr(_pool_config(mock.base_url, keys)) + repr(config) + json.dumps(config.public_dict())
    )
    for key in keys:
        assert key not in text and key[3:] not in text and key[:-4] not in text
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert all(k.encode() not in data and k[3:].encode() not in data for k in keys)


def test_cli_reads_the_pool_from_a_keys_file_and_the_environment(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# accounts\n\n{KEYS[0]}\n  {KEYS[1]}  \n# {KEYS[3]}\n")
    jobs = _jobs(tmp_path, 12)
    accounts = {k: {"max_concurrency": 2} for k in KEYS[:3]}
    with serve_in_thread(MockConfig(image_size=(16, 16), keys=accounts)) as mock:
        env = {
            "DASHSCOPE_API_KEYS": f"{KEYS[2]}, {KEYS[0]}",
            "DASHSCOPE_HTTP_BASE_URL": mock.base_url,
        }
        done = run_cli(
            "run", str(jobs), "--out", str(tmp_path / "out"), "--keys-file", str(keys_file), env=env
        )
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [k["key"] for k in summary["keys"]] == [
        f"#1 …{KEYS[0][-4:]}",
        f"#2 …{KEYS[1][-4:]}",
        f"#3 …{KEYS[2][-4:]}",
    ]
    assert "keys: 3 of 3 active" in done.stderr + done.stdout
    for key in KEYS:
        assert key not in done.stdout + done.stderr


def test_cli_bad_keys_file_names_the_line_not_the_key(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, 1)
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"{KEYS[0]}\n{CANARY_KEY} {CANARY_KEY}\n")
    bad = run_cli("run", str(jobs), "--out", str(tmp_path / "o"), "--keys-file", str(keys_file))
    assert bad.returncode == ExitCode.USAGE
    assert f"{keys_file}:2: key:" in bad.stderr and "Traceback" not in bad.stderr
    assert CANARY_KEY not in bad.stderr and CANARY_KEY[3:] not in bad.stderr
    keys_file.write_text("# none yet\n\n")
    empty = run_cli("run", str(jobs), "--out", str(tmp_path / "o"), "--keys-file", str(keys_file))
    assert empty.returncode == ExitCode.USAGE and "holds no key" in empty.stderr
    missing = run_cli(
        "run", str(jobs), "--out", str(tmp_path / "o"), "--keys-file", str(tmp_path / "nope")
    )
    assert missing.returncode == ExitCode.USAGE and "cannot read it" in missing.stderr
    assert not (tmp_path / "o").exists()


async def test_an_overdue_key_under_max_images_neither_hangs_nor_fails_a_job(
    tmp_path: Path,
) -> None:
    # Key #1's account is overdue from the start. Under --max-images a worker holding key
    # #2's only slot waits for room while the retried job waits for that slot: the waiter must
    # give its slot back. And the retirement costs the job no attempt (max_attempts=1).
    accounts = {KEYS[0]: {"budget": 0, "billing_code": "Arrearage"}, KEYS[1]: {}}
    with serve_in_thread(MockConfig(image_size=(16, 16), latency=0.05, keys=accounts)) as mock:
        for cap, jobs_count in ((1, 4), (None, 6)):
            out = tmp_path / f"out-{cap}"
            config = _pool_config(
                mock.base_url, KEYS[:2], concurrency=1, max_attempts=1, max_images=cap
            )
            with anyio.fail_after(60):  # a waiter nobody wakes would hang here
                summary = await run_simulated(_jobs(tmp_path, jobs_count), out, config)
            if cap is None:
                assert summary.exit_code == ExitCode.OK, summary.stop_reason
                assert summary.jobs_done == jobs_count and summary.jobs_failed == 0
            else:
                assert summary.exit_code == ExitCode.CAPPED, summary.stop_reason
                assert summary.images_on_disk == 1


async def test_tasks_an_earlier_run_left_are_polled_not_bought_again_by_a_pool(
    tmp_path: Path,
) -> None:
    count, jobs, out = 8, _jobs(tmp_path, 8), tmp_path / "out"
    accounts = {KEYS[0]: {}, KEYS[1]: {}}
    with serve_in_thread(MockConfig(image_size=(16, 16), latency=0.5, keys=accounts)) as mock:
        single = _pool_config(mock.base_url, KEYS[:1], concurrency=count, mode="async")
        run = BatchRun(jobs, out, replace(single, api_keys=(), poll_interval=0.05))

        async def stop_once_every_task_is_journaled() -> None:
            with anyio.fail_after(30):
                while sum(r["event"] == "submitted" for r in _records(out)) < count:
                    await anyio.sleep(0.02)
            run.request_stop("test: tasks left at the service")

        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_once_every_task_is_journaled)
            first = await run.run()
        assert first.jobs_pending == count
        with anyio.fail_after(30):  # the tasks end at the service
            while mock.counters().images_generated < count:
                await anyio.sleep(0.02)
        second = await BatchRun(jobs, out, _pool_config(mock.base_url, KEYS[:2])).run()
        assert second.exit_code == ExitCode.OK and second.jobs_done == count
        assert mock.counters().images_generated == count  # collected, none bought again


def _records(out: Path) -> list[dict[str, Any]]:
    return journal_records(out) if (out / "journal.jsonl").exists() else []
