"""CLI fuzz: a few hundred generated argument lists for each command, never a traceback, and
every exit code one the README documents for that command.

Seeded (reproducible) lists of options with hostile values: 0, negative, huge, non-numeric,
nan/inf, empty strings, and paths that are files, folders, missing, pipes, unreadable, or under
a file. Most cases run in-process through ``wanbatch._cli.main`` (``run`` with ``--dry-run``,
or with no API key, so nothing reaches a network); a bounded number run with the built-in mock,
and a few as real subprocesses.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.cli_helpers import Outcome, documented_codes, run_main
from tests.conftest import REPO, write_jobs

CASES = 300
SEED = 20261204
#: What no output of the CLI may contain: a traceback, or the code's own names.
LEAKS = re.compile(r"Traceback|_positive|_whole_number|MAX_IMAGES_PARAM|max_images_param|Error:")

NUMBERS = [
    "0",
    "-1",
    "1",
    "2",
    "3.5",
    "1e309",
    "99999999999999999999",
    "nan",
    "inf",
    "-inf",
    "",
    " ",
    "abc",
    "0x10",
    "1_000",
    "-0",
    "5",
    "0.001",
    "4",
    "2147483648",
]
TEXTS = ["", " ", "1K", "2K", "1280*1280", "abc", "x" * 5000, "é", "1*1", "--", "-1"]
URLS = [
    "",
    "abc",
    "http://",
    "ftp://h/api",
    "http://127.0.0.1:1/api/v1",
    "https://x.invalid/api",
    "http://[::1",
    "http://h:99999/x",
    "https://h:x/",
]
RUN_VALUED = {
    "--concurrency": NUMBERS,
    "--rps": NUMBERS,
    "--download-concurrency": NUMBERS,
    "--max-attempts": NUMBERS,
    "--timeout": NUMBERS,
    "--download-timeout": NUMBERS,
    "--max-images": NUMBERS,
    "--price": NUMBERS,
    "--region": ["intl", "us", "cn", "", "eu"],
    "--base-url": URLS,
}
GEN_VALUED = {
    "--size": TEXTS,
    "--n": NUMBERS,
    "--images-per-job": NUMBERS,
    "--seed": NUMBERS,
    "--negative-prompt": TEXTS,
}
RUN_FLAGS = ["--retry-failed", "--skip-invalid", "--no-regenerate-expired", "--no-progress"]
GEN_FLAGS = ["--watermark", "--no-watermark", "--prompt-extend", "--no-prompt-extend"]
#: Values a real run accepts, extremes included (no slow rate: these runs really call).
VALID_RUN = {
    "--concurrency": ["1", "2", "1000"],
    "--rps": ["0", "1000"],
    "--download-concurrency": ["1", "1000"],
    "--max-attempts": ["1", "100"],
    "--download-timeout": ["0.5", "86400"],
    "--max-images": ["1", "2", "9223372036854775807"],
    "--price": ["0", "1000", "0.2"],
    "--n": ["1", "4"],
    "--images-per-job": ["1", "5"],
    "--seed": ["0", "2147483647"],
    "--size": ["1K", "1280*1280"],
    "--negative-prompt": ["", "blurry"],
}
JUNK = ["--unknown", "-x", "--", "--out=", "--help", "extra", "--dry-run=1", "--n=2"]
MOCK_VALUED = {
    "--host": ["127.0.0.1", "", " ", "::1", "localhost", "no.such.host.invalid"],
    "--port": ["0", "-1", "65536", "99999", "abc", "", "nan"],
    "--latency": NUMBERS,
    "--latency-jitter": NUMBERS,
    "--max-concurrency": NUMBERS,
    "--rps": NUMBERS,
    "--retry-after": NUMBERS,
    "--error-rate": NUMBERS,
    "--gateway-error-rate": NUMBERS,
    "--reset-rate": NUMBERS,
    "--truncate-rate": NUMBERS,
    "--url-ttl": NUMBERS,
    "--inspection-trigger": TEXTS,
    "--api-key": TEXTS,
    "--budget": NUMBERS,
    "--free-quota": NUMBERS,
    "--image-size": ["64x64", "0x0", "x", "", "99999999x1", "8X8", "-1x5"],
    "--seed": NUMBERS,
    "--clock-offset": NUMBERS,
}


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Paths of every kind, in a folder that is also the current one; no API key set."""
    for name in list(os.environ):
        if name.startswith("DASHSCOPE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    good = write_jobs(
        tmp_path / "good.jsonl",
        [{"id": "a", "prompt": "a red fox"}, {"id": "b", "prompt": "a blue cat"}],
    )
    bad = write_jobs(tmp_path / "bad.jsonl", [{"prompt": "ok"}, {"prompt": "x", "n": 9}, {}])
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00garbage\n\x80\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    locked = tmp_path / "unreadable.jsonl"
    locked.write_text('{"prompt": "p"}\n')
    locked.chmod(0)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")
    damaged = tmp_path / "damaged-run"
    damaged.mkdir()
    (damaged / "journal.jsonl").write_bytes(b'{"v":1,"event":"run"}\n\x00garbage\n{"v":99}\n')
    (tmp_path / "odd-run").mkdir()
    (tmp_path / "odd-run" / "journal.jsonl").mkdir()
    jobs = [
        str(good),
        str(bad),
        "empty.jsonl",
        "binary.jsonl",
        "folder",
        "missing.jsonl",
        "-",
        "pipe",
        str(locked),
        "afile/x.jsonl",
        "",
        "x" * 300,
        "good.jsonl",
    ]
    outs = [
        "out",
        "out2",
        "",
        " ",
        "afile",
        "afile/sub",
        "folder",
        "damaged-run",
        "odd-run",
        "x" * 300,
        "new/deep/run",
        ".",
    ]
    dirs = ["out", "damaged-run", "odd-run", "folder", "afile", "missing", "", ".", "x" * 300]
    return {"jobs": jobs, "outs": outs, "dirs": dirs}


def _options(rand: random.Random, valued: dict[str, list[str]], flags: list[str]) -> list[str]:
    argv: list[str] = []
    for _ in range(rand.randint(0, 5)):
        kind = rand.random()
        if kind < 0.7:
            option = rand.choice(sorted(valued))
            value = rand.choice(valued[option])
            argv += [f"{option}={value}"] if rand.random() < 0.2 else [option, value]
        elif kind < 0.93 and flags:
            argv.append(rand.choice(flags))
        else:
            argv.append(rand.choice(JUNK))
    return argv


def _run_argv(rand: random.Random, paths: dict[str, list[str]], *, dry: bool) -> list[str]:
    argv = ["run"]
    if rand.random() < 0.95:
        argv.append(rand.choice(paths["jobs"]))
    if rand.random() < 0.95:
        argv += ["--out", rand.choice(paths["outs"])]
    argv += _options(rand, {**RUN_VALUED, **GEN_VALUED}, RUN_FLAGS + GEN_FLAGS)
    if dry:
        argv.append("--dry-run")
    return argv


def _check(command: str, argv: list[str], outcome: Outcome) -> None:
    allowed = documented_codes(command)
    assert outcome.code in allowed, (argv, outcome)
    assert not LEAKS.search(outcome.err + outcome.out), (argv, outcome.err)
    if outcome.code not in (0, 1):
        assert (outcome.err + outcome.out).strip(), (argv, "an error exit without a word")


def test_fuzz_run_in_process(
    sandbox: dict[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    rand = random.Random(SEED)
    codes: Counter[int] = Counter()
    for _ in range(CASES):
        # Nothing reaches a network: a dry run, or a real run with no API key (refused).
        argv = _run_argv(rand, sandbox, dry=rand.random() < 0.8)
        if "--mock" in argv:
            argv.remove("--mock")
        outcome = run_main(argv, capsys)
        _check("run", argv, outcome)
        codes[outcome.code] += 1
    assert codes[0] > 10 and codes[2] > 100, codes  # the generator reaches both sides


def test_fuzz_run_with_the_built_in_mock(
    sandbox: dict[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Real runs (the in-process mock, 0.2 s a call) with values inside the ranges, extremes
    included: they must run, not only parse."""
    rand = random.Random(SEED + 1)
    codes: Counter[int] = Counter()
    for case in range(12):
        argv = ["run", rand.choice(["good.jsonl", "good.jsonl", "bad.jsonl", "empty.jsonl"])]
        argv += ["--out", rand.choice(["out", f"mock-{case}", "new/deep/run"]), "--mock"]
        argv += _options(rand, VALID_RUN, RUN_FLAGS + GEN_FLAGS)
        argv += ["--timeout", "10"]  # an option given twice: the last wins
        outcome = run_main(argv, capsys)
        _check("run", argv, outcome)
        codes[outcome.code] += 1
    assert codes[0] + codes[4] >= 4, codes  # most of them really ran


def test_fuzz_validate_in_process(
    sandbox: dict[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    rand = random.Random(SEED + 2)
    codes: Counter[int] = Counter()
    for _ in range(CASES):
        argv = ["validate"]
        if rand.random() < 0.95:
            argv.append(rand.choice(sandbox["jobs"]))
        argv += _options(rand, GEN_VALUED, GEN_FLAGS)
        outcome = run_main(argv, capsys)
        _check("validate", argv, outcome)
        codes[outcome.code] += 1
    assert codes[0] > 10 and codes[2] > 100, codes


def test_fuzz_status_in_process(
    sandbox: dict[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(["run", "good.jsonl", "--out", "out", "--mock", "--rps", "0"], capsys).code == 0
    rand = random.Random(SEED + 3)
    codes: Counter[int] = Counter()
    for _ in range(CASES):
        argv = ["status"]
        for _ in range(rand.choice([0, 1, 1, 1, 1, 2])):
            argv.append(rand.choice(sandbox["dirs"] + JUNK))
        outcome = run_main(argv, capsys)
        _check("status", argv, outcome)
        codes[outcome.code] += 1
    assert codes[0] > 10 and codes[2] > 100, codes


def test_fuzz_mock_options_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    from wanbatch.mock._cli import parse_config

    rand = random.Random(SEED + 4)
    codes: Counter[int] = Counter()
    for _ in range(CASES):
        argv = _options(rand, MOCK_VALUED, [])
        try:
            parsed = parse_config(argv)
            code = parsed if isinstance(parsed, int) else 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        err = capsys.readouterr().err
        assert code in documented_codes("mock"), (argv, err)
        assert not LEAKS.search(err), (argv, err)
        codes[code] += 1
    assert codes[0] > 10 and codes[2] > 100, codes


def _subprocess(argv: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(
        [sys.executable, "-m", "wanbatch", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_fuzz_as_real_subprocesses(sandbox: dict[str, list[str]], tmp_path: Path) -> None:
    """A bounded sample as real processes: the interpreter's own exit path prints nothing."""
    rand = random.Random(SEED + 5)
    cases = [("run", _run_argv(rand, sandbox, dry=True)) for _ in range(4)]
    cases += [
        (
            "validate",
            ["validate", rand.choice(sandbox["jobs"]), *_options(rand, GEN_VALUED, GEN_FLAGS)],
        )
        for _ in range(3)
    ]
    cases += [("status", ["status", rand.choice(sandbox["dirs"])]) for _ in range(2)]
    with socket.socket() as taken:  # a port in use: the mock cannot listen (exit 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        cases += [("mock", ["mock", "--port", port]), ("mock", ["mock", "--port", "99999"])]
        for command, argv in cases:
            proc = _subprocess(argv, tmp_path)
            out, err = proc.communicate(timeout=60)
            _check(command, argv, Outcome(proc.returncode, out, err))
    # A mock that starts serves until SIGINT, then exits 0.
    proc = _subprocess(["mock", "--port", "0", "--latency", "0.5", "--seed", "3"], tmp_path)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("http://127.0.0.1:")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    _check("mock", ["mock"], Outcome(proc.returncode, out, err))
    assert proc.returncode == 0
