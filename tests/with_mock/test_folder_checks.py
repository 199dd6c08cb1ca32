"""A folder is refused (exit 2, nothing sent, nothing overwritten) when its images cannot be
trusted: no journal accounts for them, or they came from the other kind of service."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CANARY_KEY, journal_records, run_cli, write_jobs
from wanbatch import BatchConfig, JournalError, Secret, run_batch
from wanbatch.mock import ThreadedMock

REAL = "https://dashscope-intl.aliyuncs.com/api/v1"
WORKSPACE = "https://ws-4f2a.ap-southeast-1.maas.aliyuncs.com/api/v1"


def _jobs(tmp_path: Path) -> Path:
    return write_jobs(
        tmp_path / "jobs.jsonl", [{"id": f"f{i}", "prompt": f"folder {i}"} for i in range(2)]
    )


def _run(
    jobs: Path, out: Path, *extra: str, base_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"DASHSCOPE_API_KEY": CANARY_KEY}
    if base_url is not None:
        env["DASHSCOPE_HTTP_BASE_URL"] = base_url
    return run_cli("run", str(jobs), "--out", str(out), "--no-progress", *extra, env=env)


def test_images_without_a_journal_are_refused_not_bought_again(
    tmp_path: Path, dashscope_mock: ThreadedMock
) -> None:
    jobs, out = _jobs(tmp_path), tmp_path / "out"
    first = _run(jobs, out, base_url=dashscope_mock.base_url)
    assert first.returncode == 0, first.stderr
    images = {p.name: p.read_bytes() for p in (out / "images").glob("*.png")}
    assert len(images) == 2
    (out / "journal.jsonl").unlink()
    calls = dashscope_mock.counters().calls

    again = _run(jobs, out, base_url=dashscope_mock.base_url)
    assert again.returncode == 2
    message = again.stderr
    assert "2 file(s)" in message and "journal.jsonl" in message and "Traceback" not in message
    assert "--out" in message  # says how to proceed
    dry = _run(jobs, out, "--dry-run", base_url=dashscope_mock.base_url)
    assert dry.returncode == 2
    assert dashscope_mock.counters().calls == calls  # nothing bought
    assert {p.name: p.read_bytes() for p in (out / "images").glob("*.png")} == images


def test_a_mock_folder_is_not_resumed_against_the_service(tmp_path: Path) -> None:
    jobs, out = _jobs(tmp_path), tmp_path / "out"
    first = run_cli("run", str(jobs), "--out", str(out), "--mock", "--no-progress")
    assert first.returncode == 0, first.stderr
    (record,) = [r for r in journal_records(out) if r["event"] == "run"]
    assert record["mock"] is True and record["endpoint"].startswith("http://127.0.0.1:")

    for extra in ((), ("--dry-run",)):
        # Refused before anything is sent: the real service is never reached in a test.
        refused = _run(jobs, out, "--base-url", REAL, *extra)
        assert refused.returncode == 2, refused.stderr
        assert "mock" in refused.stderr and REAL in refused.stderr
    assert [r["event"] for r in journal_records(out)].count("run") == 1
    # The mock itself may go on.
    again = run_cli("run", str(jobs), "--out", str(out), "--mock", "--no-progress")
    assert again.returncode == 0, again.stderr


def _real_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A folder as a run against the service leaves it (one job done, its image on disk)."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [{"id": "r0", "prompt": "real"}])
    out = tmp_path / "real"
    (out / "images").mkdir(parents=True)
    image = b"\x89PNG\r\n\x1a\n-stand-in-"
    (out / "images" / "r0-0.png").write_bytes(image)
    records = [
        {
            "v": 1,
            "ts": 1.0,
            "event": "run",
            "jobs_file": str(jobs),
            "endpoint": REAL,
            "mock": False,
        },
        {
            "v": 1,
            "ts": 2.0,
            "event": "generated",
            "id": "r0",
            "fp": "",
            "images": [{"url": "https://oss.example/r0.png", "expires": 10.0}],
        },
        {
            "v": 1,
            "ts": 3.0,
            "event": "saved",
            "id": "r0",
            "k": 0,
            "file": "images/r0-0.png",
            "bytes": len(image),
        },
    ]
    (out / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return jobs, out


def test_a_service_folder_is_not_resumed_against_the_mock_but_may_change_host(
    tmp_path: Path,
) -> None:
    jobs, out = _real_folder(tmp_path)
    refused = run_cli("run", str(jobs), "--out", str(out), "--mock", "--no-progress")
    assert refused.returncode == 2, refused.stderr
    assert REAL in refused.stderr and "mock" in refused.stderr
    # Another host of the same account (a workspace host) is the real service too.
    moved = _run(jobs, out, "--dry-run", "--base-url", WORKSPACE)
    assert moved.returncode == 0, moved.stderr
    assert "1 already done" in moved.stdout + moved.stderr


@pytest.mark.anyio
async def test_the_api_refuses_the_same_way(tmp_path: Path) -> None:
    jobs, out = _real_folder(tmp_path)
    config = BatchConfig(base_url="http://localhost:9/api/v1", api_key=Secret("k"))
    with pytest.raises(JournalError, match="mock"):
        await run_batch(jobs, out, config)


def test_endpoint_recorded_without_secrets_and_loopback_is_the_mock() -> None:
    from wanbatch._urls import endpoint_of, is_loopback_url

    assert endpoint_of("https://u:pw@DashScope-Intl.aliyuncs.com/api/v1/?key=sk-1#x") == REAL
    assert endpoint_of(WORKSPACE + "/") == WORKSPACE
    for url in ("http://127.0.0.1:8089/api/v1", "http://localhost:1/x", "http://[::1]:2/api/v1"):
        assert is_loopback_url(url), url
    for url in (REAL, WORKSPACE, "http://10.0.0.5:8089/api/v1", "http://127.example.com/"):
        assert not is_loopback_url(url), url
