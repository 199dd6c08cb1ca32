"""``wanbatch`` as a subprocess against the mock: demo, exit codes, kill -9 and Ctrl-C resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    CANARY_KEY,
    REPO,
    journal_records,
    png_info,
    run_args,
    run_cli,
    write_jobs,
)
from wanbatch.mock import MockConfig, serve_in_thread


def jobs_file(tmp_path: Path, count: int) -> Path:
    return write_jobs(
        tmp_path / "jobs.jsonl",
        [{"id": f"j{i:03d}", "prompt": f"prompt number {i}", "seed": i} for i in range(count)],
    )


def test_demo_runs_on_the_built_in_mock(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("run", "jobs/demo.jsonl", "--out", str(out), "--mock", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    images = sorted((out / "images").glob("*.png"))
    assert images
    for image in images:
        png_info(image)
    rows = (out / "metadata.jsonl").read_text().splitlines()
    assert len(rows) == len(images)
    assert "jobs done" in proc.stderr


def test_missing_api_key_says_how_to_set_it(tmp_path: Path) -> None:
    proc = run_cli("run", "jobs/demo.jsonl", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "DASHSCOPE_API_KEY" in proc.stderr and "--mock" in proc.stderr


def test_invalid_file_exit_2_with_line_numbers(tmp_path: Path) -> None:
    bad = write_jobs(tmp_path / "bad.jsonl", [{"prompt": "ok"}, {"prompt": "x", "n": 9}])
    proc = run_cli("run", str(bad), "--out", str(tmp_path / "o"), "--mock", "--no-progress")
    assert proc.returncode == 2
    assert f"{bad}:2:" in proc.stderr or "bad.jsonl:2:" in proc.stderr
    assert not (tmp_path / "o" / "journal.jsonl").exists()


def test_status_reports_counts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (
        run_cli("run", "jobs/demo.jsonl", "--out", str(out), "--mock", "--no-progress").returncode
        == 0
    )
    proc = run_cli("status", str(out))
    assert proc.returncode == 0
    report = json.loads(proc.stdout)
    assert report["by_state"].get("done", 0) == report["jobs"] > 0


def _env(mock: Any) -> dict[str, str]:
    return {"DASHSCOPE_API_KEY": CANARY_KEY, "DASHSCOPE_HTTP_BASE_URL": mock.base_url}


def _check_folder(out: Path, job_count: int) -> None:
    saved = {r["file"]: r for r in journal_records(out) if r["event"] == "saved"}
    images = sorted((out / "images").glob("*.png"))
    assert len(images) == job_count
    for image in images:
        png_info(image)
        digest = hashlib.sha256(image.read_bytes()).hexdigest()
        assert digest == saved[f"images/{image.name}"]["sha256"]
    assert not list((out / ".tmp").glob("*.part"))


def test_first_sigint_drains_in_flight_work_then_resume_completes(tmp_path: Path) -> None:
    count = 30
    jobs = jobs_file(tmp_path, count)
    out = tmp_path / "out"
    args = run_args(jobs, out, "--concurrency", "3")
    with serve_in_thread(MockConfig(image_size=(16, 16), latency=0.4)) as mock:
        env = {**os.environ, **_env(mock)}
        proc = subprocess.Popen(args, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while mock.counters().in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        generated = {r["id"] for r in journal_records(out) if r["event"] == "generated"}
        assert generated, "calls in flight at the interrupt must finish"
        saved = {r["id"] for r in journal_records(out) if r["event"] == "saved"}
        assert saved == generated  # and their images were downloaded
        assert len(generated) < count
        final = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
        assert set(mock.counters().images_by_prompt.values()) == {1}
    _check_folder(out, count)


def test_api_key_never_written_or_printed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with serve_in_thread(MockConfig(image_size=(16, 16), error_rate=0.3, seed=1)) as mock:
        proc = run_cli(
            "run", str(jobs_file(tmp_path, 5)), "--out", str(out), "--rps", "0", env=_env(mock)
        )
        bad = run_cli(
            "run",
            str(jobs_file(tmp_path, 5)),
            "--out",
            str(tmp_path / "o2"),
            env={**_env(mock), "DASHSCOPE_API_KEY": CANARY_KEY + "x"},
        )
    assert proc.returncode == 0, proc.stderr
    for text in (proc.stdout, proc.stderr, bad.stdout, bad.stderr):
        assert CANARY_KEY not in text
    for path in [*out.rglob("*"), *(tmp_path / "o2").rglob("*")]:
        if path.is_file():
            assert CANARY_KEY.encode() not in path.read_bytes(), path


def test_output_loads_as_a_hugging_face_imagefolder(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "out"
    assert (
        run_cli("run", "jobs/demo.jsonl", "--out", str(out), "--mock", "--no-progress").returncode
        == 0
    )
    ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    rows = len((out / "metadata.jsonl").read_text().splitlines())
    assert len(ds) == rows
    for column in ("image", "id", "prompt", "seed", "size", "request_id"):
        assert column in ds.column_names


def test_cli_exit_codes_fatal_cap_and_retry_failed(tmp_path: Path) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            *({"id": f"ok{i}", "prompt": f"fine prompt {i}"} for i in range(4)),
            {"id": "bad", "prompt": "a forbidden thing"},
        ],
    )
    common = ["--rps", "0", "--no-progress"]
    with serve_in_thread(
        MockConfig(image_size=(16, 16), api_key=CANARY_KEY, inspection_triggers=("forbidden",))
    ) as mock:
        wrong = run_cli(
            "run",
            str(jobs),
            "--out",
            str(tmp_path / "a"),
            *common,
            env={**_env(mock), "DASHSCOPE_API_KEY": "sk-wrong"},
        )
        assert wrong.returncode == 3, wrong.stderr
        assert "InvalidApiKey" in wrong.stderr
        assert mock.counters().images_generated == 0

        capped = run_cli(
            "run",
            str(jobs),
            "--out",
            str(tmp_path / "b"),
            "--max-images",
            "2",
            "--concurrency",
            "1",
            *common,
            env=_env(mock),
        )
        assert capped.returncode == 4, capped.stderr
        assert "--max-images 2" in capped.stderr
        assert mock.counters().images_generated == 2

        out = tmp_path / "c"
        before = mock.counters().calls_by_prompt.get("a forbidden thing", 0)
        first = run_cli("run", str(jobs), "--out", str(out), *common, env=_env(mock))
        assert first.returncode == 1, first.stderr
        failed = [json.loads(x) for x in (out / "failed.jsonl").read_text().splitlines()]
        assert [f["id"] for f in failed] == ["bad"]
        mock.configure(inspection_triggers=())
        plain = run_cli("run", str(jobs), "--out", str(out), *common, env=_env(mock))
        assert plain.returncode == 1  # failed jobs are skipped without --retry-failed
        again = run_cli(
            "run", str(jobs), "--out", str(out), "--retry-failed", *common, env=_env(mock)
        )
        assert again.returncode == 0, again.stderr
        assert mock.counters().calls_by_prompt["a forbidden thing"] == before + 2
        assert mock.counters().images_by_prompt["a forbidden thing"] == 1


def test_cli_resume_within_and_after_url_expiry(tmp_path: Path) -> None:
    jobs = jobs_file(tmp_path, 3)
    common = ["--rps", "0", "--no-progress"]
    with serve_in_thread(MockConfig(image_size=(16, 16), truncate_rate=1.0)) as mock:
        within, after = tmp_path / "within", tmp_path / "after"
        for out in (within, after):
            assert (
                run_cli("run", str(jobs), "--out", str(out), *common, env=_env(mock)).returncode
                == 1
            )
        mock.configure(truncate_rate=0.0)
        calls = mock.counters().calls
        ok = run_cli("run", str(jobs), "--out", str(within), *common, env=_env(mock))
        assert ok.returncode == 0, ok.stderr
        assert mock.counters().calls == calls  # downloaded, not generated again
        mock.advance_clock(2 * 86400)
        regen = run_cli("run", str(jobs), "--out", str(after), *common, env=_env(mock))
        assert regen.returncode == 0, regen.stderr
        assert mock.counters().calls == calls + 3
        assert "expired" in regen.stderr
    _check_folder(within, 3)
    _check_folder(after, 3)
