"""The CLI's words and numbers: option errors, paths, help, money, status, the README's codes."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from tests.cli_helpers import documented_codes, readme_exit_codes, run_main
from tests.conftest import REPO, run_args, run_cli, write_jobs
from tests.simclock import SimulatedClock, run_simulated
from wanbatch import _events as ev
from wanbatch import run_batch
from wanbatch._cli import _config
from wanbatch._cli_options import build_parser
from wanbatch._config import BatchConfig, Secret
from wanbatch._progress import ProgressBar, format_summary
from wanbatch._summary import ExitCode, RunSummary
from wanbatch.mock import MockConfig, MockServer, cli_main, serve_in_thread

INTERNAL_NAMES = re.compile(
    r"_positive|MAX_IMAGES_PARAM|max_images_param|Traceback|invalid \w+ value"
)


def jobs_file(tmp_path: Path, count: int) -> Path:
    return write_jobs(
        tmp_path / "jobs.jsonl",
        [{"id": f"j{i}", "prompt": f"prompt number {i}", "seed": i} for i in range(count)],
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--rps", "-1"),
        ("--rps", "nan"),
        ("--rps", "inf"),
        ("--concurrency", "0"),
        ("--concurrency", "99999999999"),
        ("--concurrency", "x"),
        ("--max-attempts", "10000000000000"),
        ("--timeout", "0"),
        ("--timeout", "inf"),
        ("--price", "-1"),
        ("--price", "nan"),
        ("--price", "inf"),
        ("--n", "9"),
        ("--images-per-job", "x"),
        ("--seed", "-5"),
        ("--out", ""),
        ("--base-url", ""),
        ("--base-url", "dashscope.example"),
        ("--size", ""),
    ],
)
def test_bad_option_values_are_usage_errors_naming_the_option(
    option: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", str(jobs_file(tmp_path, 1)), "--out", str(tmp_path / "o"), "--dry-run"]
    outcome = run_main([*argv, option, value], capsys)
    assert outcome.code == 2, outcome.err
    assert f"argument {option}:" in outcome.err
    assert not INTERNAL_NAMES.search(outcome.err), outcome.err
    assert not (tmp_path / "o").exists()


def test_rps_minus_one_with_the_mock_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    proc = run_cli(
        "run",
        str(jobs_file(tmp_path, 1)),
        "--out",
        str(tmp_path / "o"),
        "--mock",
        "--rps",
        "-1",
        "--no-progress",
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "--rps" in proc.stderr


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_mock_port_out_of_range_is_a_usage_error(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        cli_main(["--port", port])
    assert stop.value.code == 2
    assert "--port: expected a port from 0 to 65535" in capsys.readouterr().err


def test_mock_non_finite_knob_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli_main(["--url-ttl", "inf"])
    assert stop.value.code == 2
    assert "--url-ttl" in capsys.readouterr().err


def test_empty_out_never_makes_the_current_folder_a_run_folder(tmp_path: Path) -> None:
    jobs = jobs_file(tmp_path, 1)
    work = tmp_path / "cwd"
    work.mkdir()
    proc = run_cli("run", str(jobs), "--out", "", "--mock", "--no-progress", cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert "--out" in proc.stderr and "empty" in proc.stderr
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("under", [False, True])
def test_out_naming_a_file_is_a_usage_error_with_a_plain_message(
    under: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    out = afile / "run" if under else afile
    outcome = run_main(["run", str(jobs_file(tmp_path, 1)), "--out", str(out), "--mock"], capsys)
    assert outcome.code == 2, outcome.err
    assert "is a file, not a folder" in outcome.err
    assert "Errno" not in outcome.err
    assert afile.read_text() == "keep me"


def test_job_file_that_is_a_folder_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = run_main(["run", str(tmp_path), "--out", str(tmp_path / "o"), "--mock"], capsys)
    assert outcome.code == 2
    assert "is a folder, not a job file" in outcome.err
    assert "no such" not in outcome.err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_job_file_from_a_pipe_or_stdin_is_refused_with_the_reason(tmp_path: Path) -> None:
    fifo = tmp_path / "jobs.fifo"
    os.mkfifo(fifo)
    for jobs in (str(fifo), "-"):
        # A subprocess: on the old code a pipe blocks (or `-` is "no such file"); bounded.
        proc = run_cli(
            "run", jobs, "--out", str(tmp_path / "o"), "--mock", "--no-progress", timeout=30
        )
        assert proc.returncode == 2, proc.stderr
        assert "save the jobs to a file" in proc.stderr
        assert ("is a pipe" in proc.stderr) == (jobs != "-")
    assert not (tmp_path / "o").exists()


def test_help_shows_meaning_and_default_of_every_option_env_and_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and "run" in a.choices).choices
    for name in ("run", "validate", "status"):
        for action in subparsers[name]._actions:
            if action.help == "show this help message and exit" or action.required:
                continue
            assert action.help and "default" in action.help, (name, action.option_strings)
    outcome = run_main(["run", "--help"], capsys)
    assert outcome.code == 0
    for text in ("DASHSCOPE_API_KEY", "DASHSCOPE_HTTP_BASE_URL", "exit codes", "130", "--price P"):
        assert text in outcome.out
    assert not INTERNAL_NAMES.search(outcome.out)
    for code in readme_exit_codes():
        assert re.search(rf"^\s+{code}\s", outcome.out, re.M), code
    version = run_main(["--version"], capsys)
    assert version.code == 0 and re.fullmatch(r"wanbatch \d+\.\d+\.\d+\n", version.out)


def test_download_timeout_is_an_option(tmp_path: Path) -> None:
    args = build_parser().parse_args(["run", "j.jsonl", "--out", "o", "--download-timeout", "7.5"])
    assert _config(args, "http://127.0.0.1:1/api/v1", None).download_timeout == 7.5
    assert _config(
        build_parser().parse_args(["run", "j", "--out", "o"]), "u", None
    ).download_timeout == (BatchConfig().download_timeout)


def test_money_plan_line_final_lines_and_plurals(tmp_path: Path) -> None:
    with serve_in_thread(MockConfig(image_size=(8, 8))) as mock:
        env = {"DASHSCOPE_API_KEY": "sk-test", "DASHSCOPE_HTTP_BASE_URL": mock.base_url}
        one = run_cli(
            "run",
            str(jobs_file(tmp_path, 1)),
            "--out",
            str(tmp_path / "one"),
            "--no-progress",
            "--price",
            "0.5",
            env=env,
        )
        assert one.returncode == 0, one.stderr
        plan, *_ = one.stderr.splitlines()
        assert plan == (
            "wanbatch: 1 job: 1 to generate, 0 to download, 0 already done; at most 1 image, "
            "at most 0.50 CNY (0.5 CNY an image)"
        )
        assert "1/1 job done" in one.stderr and "1 image in" in one.stderr
        assert "1 call (0 retries" in one.stderr
        assert "spent: 0.50 CNY for 1 image" in one.stderr
        assert not re.search(r"(?<![\d.])1 (images|jobs|calls|URLs)\b|\(s\)", one.stderr), (
            one.stderr
        )

        mock.configure(error_rate=1.0, seed=3)
        failing = run_cli(
            "run",
            str(jobs_file(tmp_path, 2)),
            "--out",
            str(tmp_path / "two"),
            "--no-progress",
            "--max-attempts",
            "1",
            env=env,
        )
        assert failing.returncode == 1, failing.stderr
        assert "spent: 0.00 CNY for 0 images" in failing.stderr
    dry = run_cli("run", str(jobs_file(tmp_path, 3)), "--out", str(tmp_path / "d"), "--dry-run")
    assert (
        "dry run: 3 jobs" in dry.stderr
        and "at most 3 images to buy, at most 0.66 CNY" in dry.stderr
    )


@pytest.mark.parametrize("billed", [1, 3])
def test_final_lines_count_possibly_billed_calls(billed: int) -> None:
    summary = RunSummary(jobs_total=1, jobs_failed=1, calls=billed, possibly_billed=billed)
    text = format_summary(summary, "out", price=0.2)
    noun = "failed call" if billed == 1 else "failed calls"
    assert "spent: 0.00 CNY for 0 images (0.2 CNY an image); besides, " in text
    assert f"besides, {billed} possibly billed ({noun} sent before failing)" in text


@pytest.mark.anyio
async def test_progress_shows_spent_money_and_the_pause_the_service_asked_for(
    tmp_path: Path,
) -> None:
    stream = io.StringIO()
    clock = SimulatedClock()  # the pause the service asks for passes in no real time
    bar = ProgressBar(stream=stream, enabled=True, clock=clock)
    seen: list[str] = []

    def on_event(event: ev.Event) -> None:
        bar(event)
        if isinstance(event, (ev.ThrottledEvent, ev.Generated)):
            seen.append(bar.postfix())

    # One slot at the mock, three at the client: the extra calls answer 429 with Retry-After.
    async with MockServer(MockConfig(max_concurrency=1, retry_after=1, latency=0.3)) as mock:
        config = BatchConfig(
            base_url=mock.base_url,
            api_key=Secret("k"),
            concurrency=3,
            rps=None,
            price_per_image=0.25,
        )
        summary = await run_batch(
            jobs_file(tmp_path, 3), tmp_path / "o", config, on_event=on_event, clock=clock
        )
    bar.close()
    assert summary.exit_code == ExitCode.OK
    assert stream.getvalue().startswith("wanbatch: 3 jobs: 3 to generate")
    assert any("paused 1 s (the service asked)" in text for text in seen), seen
    assert "spent=0.75 CNY" in bar.postfix()


def test_status_tells_a_finished_folder_from_an_unfinished_one(tmp_path: Path) -> None:
    jobs = jobs_file(tmp_path, 5)
    out = tmp_path / "out"

    def status() -> dict[str, object]:
        proc = run_cli("status", str(out))
        assert proc.returncode == 0, proc.stderr
        report: dict[str, object] = json.loads(proc.stdout)
        return report

    with serve_in_thread(MockConfig(image_size=(8, 8), latency=0.3)) as mock:
        env = {"DASHSCOPE_API_KEY": "sk-test", "DASHSCOPE_HTTP_BASE_URL": mock.base_url}
        capped = run_cli(
            "run",
            str(jobs),
            "--out",
            str(out),
            "--no-progress",
            "--rps",
            "0",
            "--concurrency",
            "1",
            "--max-images",
            "2",
            env=env,
        )
        assert capped.returncode == 4, capped.stderr
        report = status()
        assert report["by_state"] == {"done": 2, "failed": 0, "pending": 3}
        assert str(report["last_run"]).startswith("stopped: --max-images 2")
        assert report["complete"] is False and report["jobs"] == 5

        # Killed mid-run: no end record.
        proc = subprocess.Popen(
            run_args(jobs, out, "--concurrency", "1"),
            cwd=REPO,
            env={**os.environ, **env},
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while mock.counters().in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        report = status()
        assert report["last_run"] == "did not finish (killed, crashed or still running)"
        assert report["complete"] is False

        final = run_cli("run", str(jobs), "--out", str(out), "--no-progress", "--rps", "0", env=env)
        assert final.returncode == 0, final.stderr
    report = status()
    assert report["last_run"] == "finished" and report["complete"] is True
    assert report["by_state"] == {"done": 5, "failed": 0, "pending": 0}


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_ctrl_c_during_validate_exits_130_without_a_traceback(tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    line = '{"prompt": "a fox in the snow, watercolor, soft light"}\n'
    big.write_text(line * 400_000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wanbatch", "validate", str(big)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        reading = False
        while not reading and time.monotonic() < deadline and proc.poll() is None:
            fds = Path(f"/proc/{proc.pid}/fd")
            with_paths = []
            for fd in fds.iterdir() if fds.exists() else []:
                try:
                    with_paths.append(os.readlink(fd))
                except OSError:
                    pass
            reading = str(big) in with_paths
            time.sleep(0.005)
        assert reading, "validate never opened the job file"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr


def test_readme_exit_code_table_matches_exit_code() -> None:
    table = readme_exit_codes()
    assert set(table) == {int(code) for code in ExitCode}
    assert documented_codes("run") == {int(code) for code in ExitCode}
    assert documented_codes("validate") == {0, 2, 130}
    assert documented_codes("status") == {0, 2, 130}
    assert documented_codes("mock") == {0, 1, 2}


def test_messages_about_one_thing_say_it_in_the_singular(tmp_path: Path) -> None:
    bad = write_jobs(tmp_path / "bad.jsonl", [{"prompt": "x", "n": 9}])
    invalid = run_cli("run", str(bad), "--out", str(tmp_path / "o"), "--dry-run")
    assert invalid.returncode == 2
    assert "1 invalid job line; nothing was sent" in invalid.stderr

    async def cut_download() -> RunSummary:
        async with MockServer(MockConfig(image_size=(8, 8), truncate_rate=1.0)) as mock:
            config = BatchConfig(
                base_url=mock.base_url,
                api_key=Secret("k"),
                rps=None,
            )
            return await run_simulated(jobs_file(tmp_path, 1), tmp_path / "cut", config)

    summary = anyio.run(cut_download)
    assert summary.exit_code == ExitCode.JOBS_FAILED
    final = format_summary(summary, "cut", price=0.2)
    assert "stopped: 1 job has images still to download" in final
    for text in (invalid.stderr, final):
        assert not re.search(r"(?<![\d.])1 (images|jobs|calls|lines|URLs)\b|\(s\)", text), text


def test_output_read_by_a_closed_pipe_ends_without_a_traceback(tmp_path: Path) -> None:
    many = write_jobs(tmp_path / "many.jsonl", [{"prompt": "p", "n": 9}] * 3000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wanbatch", "validate", str(many)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert "many.jsonl:1:" in proc.stdout.readline()
    proc.stdout.close()  # like `wanbatch validate ... | head -1`
    with proc.stderr:
        stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def test_a_bad_base_url_in_the_environment_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-test")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "dashscope-intl.aliyuncs.com/api/v1")
    argv = ["run", str(jobs_file(tmp_path, 1)), "--out", str(tmp_path / "o"), "--max-attempts", "1"]
    outcome = run_main(argv, capsys)
    assert outcome.code == 2, outcome.err
    assert "DASHSCOPE_HTTP_BASE_URL: expected a URL like https://" in outcome.err
    assert not (tmp_path / "o").exists()


def test_mock_help_shows_every_knob_with_its_default() -> None:
    from wanbatch.mock._cli import _parser

    for action in _parser()._actions:
        if action.option_strings != ["-h", "--help"]:
            assert action.help and "default" in action.help, action.option_strings
    assert "exit codes" in _parser().format_help()


def test_a_refused_job_file_gets_advice_that_fits_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    bad = write_jobs(tmp_path / "bad.jsonl", [{"id": "a", "prompt": ""}])
    out = str(tmp_path / "out")
    outcome = run_main(["run", str(empty), "--out", out, "--mock"], capsys)
    assert outcome.code == ExitCode.USAGE
    assert f"wanbatch: {empty}: no job to run; nothing was sent" in outcome.err
    assert "--skip-invalid" not in outcome.err and "line(s)" not in outcome.err
    outcome = run_main(["run", str(bad), "--out", out, "--mock", "--skip-invalid"], capsys)
    assert outcome.code == ExitCode.USAGE
    assert "1 invalid job line and no valid one; nothing was sent" in outcome.err
    assert "run with --skip-invalid" not in outcome.err
    outcome = run_main(["run", str(bad), "--out", out, "--mock"], capsys)
    assert "1 invalid job line; nothing was sent" in outcome.err
    assert "or run with --skip-invalid to run the valid ones" in outcome.err
    assert not (tmp_path / "out").exists()


# A Ctrl-C that lands while the command imports its modules (the first half second): raised
# here, deterministically, by an import hook at the import of aiohttp, as the signal would.
_CTRL_C_DURING_IMPORTS = """
import sys
from wanbatch.__main__ import main

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
sys.argv = ["wanbatch", "validate", sys.argv[1]]
raise SystemExit(main())
"""


def test_ctrl_c_while_the_command_imports_is_no_traceback(tmp_path: Path) -> None:
    jobs = jobs_file(tmp_path, 2)
    proc = subprocess.run(
        [sys.executable, "-c", _CTRL_C_DURING_IMPORTS, str(jobs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == "wanbatch: interrupted"
    assert proc.returncode == ExitCode.INTERRUPTED


def test_an_automatic_stop_does_not_say_ctrl_c_again() -> None:
    from wanbatch._progress import _stopping_text

    drain = _stopping_text(ev.RunStopping("interrupted", in_flight=2, wait_s=300.0))
    assert "Ctrl-C again abandons them" in drain
    auto = _stopping_text(ev.RunStopping("10 calls lost their answer", in_flight=2))
    assert "Ctrl-C abandons them" in auto and "again" not in auto
    assert "(Ctrl-C stops at once)" in _stopping_text(ev.RunStopping("--max-images 3 reached"))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_an_out_folder_that_cannot_be_made_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = jobs_file(tmp_path, 1)
    outcome = run_main(["run", str(jobs), "--out", "/proc/self/wanbatch-out", "--mock"], capsys)
    assert outcome.code == ExitCode.USAGE, outcome.err
    assert "cannot prepare the output folder /proc/self/wanbatch-out" in outcome.err
    assert "Errno" not in outcome.err and "Traceback" not in outcome.err


def test_an_empty_job_file_name_is_named_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["validate", ""], ["run", "", "--out", "x", "--dry-run"]):
        outcome = run_main(argv, capsys)
        assert outcome.code == ExitCode.USAGE
        assert "the job file name is empty" in outcome.err and ": :" not in outcome.err
