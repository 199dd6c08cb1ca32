"""Disk trouble mid-run: writes fail with EFBIG (a file-size limit on the CLI subprocess).

RLIMIT_FSIZE caps every file the process writes; with SIGXFSZ ignored, a write past it fails with
EFBIG ("File too large"), like a full disk. Two cases: the image files hit the limit (large
images, small journal), and the journal hits it (tiny images, long journal).
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO, journal_records, png_info, write_jobs
from wanbatch.mock import MockConfig, serve_in_thread

JOBS = 30


def _limit_file_size(limit: int) -> Callable[[], None]:
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def _run(
    jobs: Path, out: Path, base_url: str, preexec: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    env.update({"DASHSCOPE_API_KEY": "sk-disk", "DASHSCOPE_HTTP_BASE_URL": base_url})
    return subprocess.run(
        [sys.executable, "-m", "wanbatch", "run", str(jobs), "--out", str(out), "--rps", "0"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=preexec,
    )


def _assert_done_means_on_disk(out: Path) -> set[str]:
    """Every ``saved`` record names a whole file with that sha256; return the saved ids."""
    saved = [r for r in journal_records(out) if r["event"] == "saved"]
    for rec in saved:
        path = out / rec["file"]
        assert path.is_file(), f"journal says saved, but {path} is missing"
        png_info(path)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["sha256"]
    assert not list((out / ".tmp").glob("*.part"))
    return {r["id"] for r in saved}


@pytest.mark.parametrize(
    ("image_side", "limit", "what"),
    [
        (256, 100_000, "image files"),  # a 256x256 stand-in PNG is ~197 KB: no image fits
        (16, 6_000, "the journal"),  # tiny images; the journal outgrows 6 KB after ~10 records
    ],
)
def test_write_error_mid_run_stops_cleanly_and_resumes(
    tmp_path: Path, image_side: int, limit: int, what: str
) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{"id": f"d{i:02d}", "prompt": f"disk {i}"} for i in range(JOBS)]
    )
    out = tmp_path / "out"
    # Photo-sized "noise" images, so that image files outgrow the limit.
    config = MockConfig(image_size=(image_side, image_side), image_style="noise", latency=0.01)
    with serve_in_thread(config) as mock:
        first = _run(jobs, out, mock.base_url, _limit_file_size(limit))
        assert first.returncode == 3, first.stderr
        assert "Traceback" not in first.stderr, first.stderr
        assert "File too large" in first.stderr and "stopped:" in first.stderr, first.stderr
        saved_first = _assert_done_means_on_disk(out)
        assert len(saved_first) < JOBS
        generated = [r for r in journal_records(out) if r["event"] == "generated"]
        assert generated, f"the run should have bought something before {what} failed"

        second = _run(jobs, out, mock.base_url)  # limit lifted
        assert second.returncode == 0, second.stderr
        counters = mock.counters()
    assert _assert_done_means_on_disk(out) == {f"d{i:02d}" for i in range(JOBS)}
    assert len(list((out / "images").glob("*.png"))) == JOBS
    # Images generated and journaled before the failure were fetched, not bought again.
    journaled_ids = {r["id"] for r in generated}
    bought_twice = {p for p, n in counters.images_by_prompt.items() if n > 1}
    assert not {f"disk {int(i[1:])}" for i in journaled_ids} & bought_twice
