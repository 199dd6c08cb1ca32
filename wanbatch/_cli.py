"""The ``wanbatch`` command: ``run``, ``validate``, ``status``, ``mock``.

The only place that reads environment variables (``DASHSCOPE_API_KEY``,
``DASHSCOPE_HTTP_BASE_URL``) and maps outcomes to exit codes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import stat
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

from wanbatch._config import (
    DEFAULT_CALL_TIMEOUT_S,
    DEFAULT_CONCURRENCY,
    DEFAULT_DOWNLOAD_CONCURRENCY,
    DEFAULT_DOWNLOAD_TIMEOUT_S,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_REGION,
    DEFAULT_RPS,
    PRICE_PER_IMAGE,
    REGION_BASE_URLS,
    BatchConfig,
    GenerationDefaults,
    Secret,
)
from wanbatch._engine import ExitCode, RunSummary, run_batch
from wanbatch._errors import InvalidJobs, JournalError, OutputError, WanbatchError

__all__ = ["main"]

#: Settings of the built-in mock behind ``run --mock``: quick, but not instant, like a demo.
MOCK_LATENCY_S = 0.2
#: Upper bounds of the run's numeric options: far above any sensible setting (the service
#: allows 5 calls in flight and 5 starts a second an account), low enough that a typo cannot
#: start a million workers or retry without end.
MAX_CONCURRENCY = 1000
MAX_ATTEMPTS = 100
MAX_RPS = 1000.0
MIN_RPS = 0.01
MAX_TIMEOUT_S = 86400.0
MAX_PRICE = 1000.0
#: The service's own ranges for the generation defaults.
MAX_N = 4
MAX_IMAGES_PER_JOB = 5
MAX_SEED = 2147483647

EXIT_CODES_HELP = """\
exit codes:
  0    success (run: every job done; validate: no error; status: report printed)
  1    run finished, but some jobs failed for good (failed.jsonl) or have images to download
  2    usage error or invalid input (bad option, job file with errors, unusable --out,
       a folder holding another job file's run): nothing was sent
  3    run aborted on a fatal condition (bad key, overdue account, quota gone, disk full or
       not writable): the folder is resumable
  4    run stopped at --max-images: the rest is resumable
  130  interrupted (Ctrl-C, SIGTERM, or the reader of the output went away): state
       saved, resumable
"""
ENVIRONMENT_HELP = """\
environment:
  DASHSCOPE_API_KEY        the API key (required unless --mock or --dry-run); never printed
  DASHSCOPE_HTTP_BASE_URL  the API base URL when neither --base-url nor --region is given
                           (default https://dashscope-intl.aliyuncs.com/api/v1)
"""


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``, with a plain message."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {low} to {high}, got {text!r}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    return parse


def _number(
    low: float, high: float, *, zero: bool = False, low_open: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number in ``[low, high]`` (``(low, high]`` with
    ``low_open``), or ``0`` when ``zero`` allows it."""
    span = f"more than {low:g} and at most {high:g}" if low_open else f"from {low:g} to {high:g}"
    wanted = f"0 (no limit) or a number {span}" if zero else f"a number {span}"

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if zero and value == 0:
            return 0.0
        inside = (value > low if low_open else value >= low) and value <= high
        if not (math.isfinite(value) and inside):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


def _base_url(text: str) -> str:
    """An argparse type: an ``http://`` or ``https://`` URL with a host."""
    problem = _url_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text.strip()


def _url_problem(text: str) -> str | None:
    try:
        parts = urlsplit(text.strip())
        _ = parts.port  # raises ValueError unless the port is a number from 0 to 65535
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        usable = False
    if not usable:
        return f"expected a URL like https://dashscope-intl.aliyuncs.com/api/v1, got {text!r}"
    return None


def _non_empty(what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"give {what}; got an empty string")
        return text

    return parse


def _add_generation_defaults(parser: argparse.ArgumentParser) -> None:
    """The run-wide generation defaults, shared by ``run`` and ``validate``."""
    gen = parser.add_argument_group("generation defaults (a job's own value wins)")
    gen.add_argument(
        "--size",
        type=_non_empty("a size"),
        default=None,
        metavar="SIZE",
        help='image size: "1K", "2K" or "W*H" (default: the service\'s)',
    )
    gen.add_argument(
        "--n",
        type=_whole_number(1, MAX_N),
        default=1,
        metavar="N",
        help=f"images per editing job, 1-{MAX_N}, each billed (default 1)",
    )
    gen.add_argument(
        "--images-per-job",
        dest="max_images_param",
        type=_whole_number(1, MAX_IMAGES_PER_JOB),
        default=1,
        metavar="N",
        help=f"images at most per interleaved (text-to-image) job, 1-{MAX_IMAGES_PER_JOB}, "
        "each billed (default 1)",
    )
    gen.add_argument(
        "--seed",
        type=_whole_number(0, MAX_SEED),
        default=None,
        metavar="SEED",
        help=f"random seed, 0-{MAX_SEED} (default: random)",
    )
    gen.add_argument(
        "--negative-prompt",
        default=None,
        metavar="TEXT",
        help="what the images should not show (default: none)",
    )
    gen.add_argument(
        "--watermark",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add the service's watermark (default: the service's)",
    )
    gen.add_argument(
        "--prompt-extend",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="let the service rewrite the prompt (default: the service's)",
    )


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's tables as written."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wanbatch",
        description="Batch image generation with Alibaba's wan2.6-image (DashScope), resumable.",
        epilog=f"{ENVIRONMENT_HELP}\n{EXIT_CODES_HELP}",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wanbatch {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="generate every job of a JSONL file into a folder",
        description="Generate every job of a JSONL file into a folder; run it again to resume.",
        epilog=f"{ENVIRONMENT_HELP}\n{EXIT_CODES_HELP}",
        formatter_class=_HelpFormatter,
    )
    run.add_argument("jobs", metavar="JOBS", help="the JSONL job file (a regular file)")
    run.add_argument(
        "--out",
        required=True,
        type=_non_empty("an output folder"),
        metavar="DIR",
        help="output folder; created if missing, resumed if it holds a run",
    )
    run.add_argument(
        "--concurrency",
        type=_whole_number(1, MAX_CONCURRENCY),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"calls in flight at most (default {DEFAULT_CONCURRENCY})",
    )
    run.add_argument(
        "--rps",
        type=_number(MIN_RPS, MAX_RPS, zero=True),
        default=DEFAULT_RPS,
        metavar="R",
        help=f"call starts per second at most, 0 for no limit (default {DEFAULT_RPS:g})",
    )
    run.add_argument(
        "--download-concurrency",
        type=_whole_number(1, MAX_CONCURRENCY),
        default=DEFAULT_DOWNLOAD_CONCURRENCY,
        metavar="N",
        help=f"image downloads in flight at most (default {DEFAULT_DOWNLOAD_CONCURRENCY})",
    )
    run.add_argument(
        "--max-attempts",
        type=_whole_number(1, MAX_ATTEMPTS),
        default=DEFAULT_MAX_ATTEMPTS,
        metavar="N",
        help=f"attempts per job before it fails (default {DEFAULT_MAX_ATTEMPTS})",
    )
    run.add_argument(
        "--timeout",
        type=_number(0, MAX_TIMEOUT_S, low_open=True),
        default=DEFAULT_CALL_TIMEOUT_S,
        metavar="S",
        help=f"seconds one call may take (default {DEFAULT_CALL_TIMEOUT_S:g})",
    )
    run.add_argument(
        "--download-timeout",
        type=_number(0, MAX_TIMEOUT_S, low_open=True),
        default=DEFAULT_DOWNLOAD_TIMEOUT_S,
        metavar="S",
        help=f"seconds one image download may take (default {DEFAULT_DOWNLOAD_TIMEOUT_S:g})",
    )
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--base-url",
        type=_base_url,
        metavar="URL",
        help="API base URL, e.g. https://dashscope-intl.aliyuncs.com/api/v1 "
        "(default: --region's, else DASHSCOPE_HTTP_BASE_URL, else intl)",
    )
    where.add_argument(
        "--region",
        choices=sorted(REGION_BASE_URLS),
        default=None,
        help=f"service region (default {DEFAULT_REGION})",
    )
    where.add_argument(
        "--mock",
        action="store_true",
        help="run against the built-in mock server; needs no API key (default off)",
    )
    run.add_argument(
        "--max-images",
        type=_whole_number(1, 2**63 - 1),
        default=None,
        metavar="N",
        help="stop buying once N images were generated in this folder (default: no cap)",
    )
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="call jobs that failed for good in an earlier run again (default off)",
    )
    run.add_argument(
        "--skip-invalid",
        action="store_true",
        help="run the valid jobs even if some lines are invalid (default off)",
    )
    run.add_argument(
        "--no-regenerate-expired",
        action="store_true",
        help="fail jobs whose result URLs expired instead of generating them again "
        "(default: generate again)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and show the plan and its cost; send nothing (default off)",
    )
    run.add_argument(
        "--price",
        type=_number(0, MAX_PRICE),
        default=None,
        metavar="P",
        help="price per image in CNY, for the costs shown (default: the region's list price, "
        + ", ".join(f"{r} {p:g}" for r, p in PRICE_PER_IMAGE.items())
        + ")",
    )
    run.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (default: a bar when stderr is a terminal)",
    )
    _add_generation_defaults(run)

    val = sub.add_parser(
        "validate",
        help="check a job file; print every problem",
        description="Check a job file and print every problem as FILE:LINE: field: message.",
        epilog="exit codes: 0 no error (warnings allowed), 2 errors or unusable input, "
        "130 interrupted",
        formatter_class=_HelpFormatter,
    )
    val.add_argument("jobs", metavar="JOBS", help="the JSONL job file (a regular file)")
    _add_generation_defaults(val)  # so validate sees what `run` with the same flags would send

    status = sub.add_parser(
        "status",
        help="what a run folder holds",
        description="Print, as JSON, what a run folder holds: jobs done, failed and pending, "
        "whether the last run finished, images, retries and possibly billed calls.",
        epilog="exit codes: 0 report printed, 2 no run in DIR or unreadable, 130 interrupted",
        formatter_class=_HelpFormatter,
    )
    status.add_argument(
        "dir", metavar="DIR", type=_non_empty("a run folder"), help="the run's --out folder"
    )

    sub.add_parser(
        "mock", help="serve the mock DashScope API (see `wanbatch mock --help`)", add_help=False
    )
    return parser


def _defaults(args: argparse.Namespace) -> GenerationDefaults:
    return GenerationDefaults(
        size=args.size,
        n=args.n,
        max_images=args.max_images_param,
        seed=args.seed,
        prompt_extend=args.prompt_extend,
        watermark=args.watermark,
        negative_prompt=args.negative_prompt,
    )


def _config(args: argparse.Namespace, base_url: str, api_key: Secret | None) -> BatchConfig:
    return BatchConfig(
        base_url=base_url,
        api_key=api_key,
        region=args.region or DEFAULT_REGION,
        concurrency=args.concurrency,
        rps=args.rps or None,
        download_concurrency=args.download_concurrency,
        max_attempts=args.max_attempts,
        call_timeout=args.timeout,
        download_timeout=args.download_timeout,
        max_images=args.max_images,
        retry_failed=args.retry_failed,
        skip_invalid=args.skip_invalid,
        regenerate_expired=not args.no_regenerate_expired,
        price_per_image=args.price,
        defaults=_defaults(args),
    )


def _version() -> str:
    from wanbatch import __version__

    return __version__


def _job_file_problem(path: str) -> str | None:
    """Why ``path`` cannot be the job file, or ``None``.

    A run reads the job file more than once (validate, then dispatch, and again on resume),
    so it must be a regular file: not standard input, a pipe, a folder or a device.
    """
    if path == "-":
        return (
            "-: reading jobs from standard input is not supported: wanbatch reads a job file "
            "more than once (a run validates it, runs it, resumes from it); save the jobs to a "
            "file and give its path"
        )
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{path}: no such job file"
    except NotADirectoryError:
        return f"{path}: no such job file (a part of the path is a file, not a folder)"
    except PermissionError:
        return f"{path}: cannot read the job file: permission denied"
    except (OSError, ValueError) as exc:
        return f"{path}: cannot use this path as the job file: {_reason(exc)}"
    if stat.S_ISDIR(st.st_mode):
        return f"{path}: is a folder, not a job file; give the path of a .jsonl file"
    if stat.S_ISFIFO(st.st_mode):
        return (
            f"{path}: is a pipe, not a regular file: wanbatch reads a job file more than once "
            "(a run validates it, runs it, resumes from it); save the jobs to a file and give "
            "its path"
        )
    if not stat.S_ISREG(st.st_mode):
        return f"{path}: is not a regular file (a device or socket); give the path of a .jsonl file"
    if not os.access(path, os.R_OK):
        return f"{path}: cannot read the job file: permission denied"
    return None


def _out_problem(out: str) -> str | None:
    """Why ``out`` cannot be the output folder, or ``None`` (permissions are left to the run)."""
    path = Path(out)
    try:
        if path.exists() and not path.is_dir():
            return f"--out {out}: is a file, not a folder; give a folder (new or of an earlier run)"
        journal = path / "journal.jsonl"
        if journal.exists() and not journal.is_file():
            return f"--out {out}: its journal.jsonl is not a file; this is no run folder to resume"
        for parent in path.absolute().parents:
            if parent.exists():
                if not parent.is_dir():
                    return f"--out {out}: {parent} is a file, not a folder"
                break
    except (OSError, ValueError) as exc:
        return f"--out {out}: cannot use this path: {_reason(exc)}"
    return None


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else None) or str(exc)


def _base_url_for(args: argparse.Namespace) -> str | None:
    """The base URL of a real run (None, with a message printed, when the environment's is bad)."""
    if args.base_url:
        return str(args.base_url)
    if args.region:
        return REGION_BASE_URLS[args.region]
    from_env = os.environ.get("DASHSCOPE_HTTP_BASE_URL", "").strip()
    if from_env:
        problem = _url_problem(from_env)
        if problem:
            print(f"wanbatch: DASHSCOPE_HTTP_BASE_URL: {problem}", file=sys.stderr)
            return None
        return from_env
    return REGION_BASE_URLS[DEFAULT_REGION]


async def _run_with_mock(
    args: argparse.Namespace, config: BatchConfig, progress: Callable[[Any], None]
) -> RunSummary:
    from wanbatch.mock import MockConfig, MockServer

    async with MockServer(MockConfig(latency=MOCK_LATENCY_S)) as server:
        return await run_batch(
            args.jobs,
            args.out,
            config.replace(base_url=server.base_url, api_key=Secret("mock-key")),
            on_event=progress,
            dry_run=args.dry_run,
            handle_signals=True,
        )


def _cmd_run(args: argparse.Namespace) -> int:
    from wanbatch._progress import ProgressBar, format_summary

    problem = _job_file_problem(args.jobs) or _out_problem(args.out)
    if problem:
        print(f"wanbatch: {problem}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        defaults = _defaults(args)
    except ValueError as exc:
        print(f"wanbatch: bad generation default: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    del defaults
    progress = ProgressBar(enabled=False if args.no_progress else None)
    try:
        if args.mock:
            config = _config(args, REGION_BASE_URLS[DEFAULT_REGION], None)
            summary = anyio.run(_run_with_mock, args, config, progress)
        else:
            key = os.environ.get("DASHSCOPE_API_KEY", "").strip()
            if not key and not args.dry_run:
                print(
                    "wanbatch: no API key: set DASHSCOPE_API_KEY "
                    "(export DASHSCOPE_API_KEY=sk-...), or try the built-in mock with --mock",
                    file=sys.stderr,
                )
                return ExitCode.USAGE
            if key and not all("!" <= ch <= "~" for ch in key):
                # It cannot go into an HTTP header; never echo it (it is a secret).
                print(
                    "wanbatch: DASHSCOPE_API_KEY holds a space, line break or non-ASCII "
                    "character; check how it was set",
                    file=sys.stderr,
                )
                return ExitCode.USAGE
            base_url = _base_url_for(args)
            if base_url is None:
                return ExitCode.USAGE
            config = _config(args, base_url, Secret(key) if key else None)
            summary = anyio.run(
                lambda: run_batch(
                    args.jobs,
                    args.out,
                    config,
                    on_event=progress,
                    dry_run=args.dry_run,
                    handle_signals=True,
                )
            )
    except InvalidJobs as exc:
        progress.close()
        for error in exc.errors:
            print(error, file=sys.stderr)
        lines = "1 invalid job line" if exc.total == 1 else f"{exc.total} invalid job lines"
        print(
            f"wanbatch: {exc.path}: {lines}; nothing was sent; fix the lines above, "
            "or run with --skip-invalid",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    except JournalError as exc:
        progress.close()
        print(f"wanbatch: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except OutputError as exc:
        progress.close()
        print(f"wanbatch: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    except OSError as exc:  # the disk refused something the engine does not name itself
        progress.close()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"wanbatch: stopped: {where}{_reason(exc)}", file=sys.stderr)
        return ExitCode.FATAL
    except KeyboardInterrupt:
        progress.close()
        print("wanbatch: interrupted; run the same command again to resume", file=sys.stderr)
        return ExitCode.INTERRUPTED
    progress.close()
    print(format_summary(summary, args.out, price=config.price), file=sys.stderr)
    if summary.exit_code == ExitCode.INTERRUPTED:
        print("wanbatch: interrupted; run the same command again to resume", file=sys.stderr)
    return int(summary.exit_code)


def _cmd_validate(args: argparse.Namespace) -> int:
    from wanbatch._loader import validate_command

    problem = _job_file_problem(args.jobs)
    if problem:
        print(f"wanbatch: {problem}", file=sys.stderr)
        return ExitCode.USAGE
    return validate_command(args.jobs, _defaults(args), sys.stdout)


def _cmd_status(args: argparse.Namespace) -> int:
    from wanbatch._journal import read_journal
    from wanbatch._state import Status

    out = Path(args.dir)
    try:
        if not out.is_dir():
            what = "no such folder" if not out.exists() else "is a file, not a run folder"
            print(f"wanbatch: {out}: {what}", file=sys.stderr)
            return ExitCode.USAGE
        if not (out / "journal.jsonl").is_file():
            print(f"wanbatch: {out} holds no run (no journal.jsonl)", file=sys.stderr)
            return ExitCode.USAGE
        state = read_journal(out)
        images = sum(1 for _ in (out / "images").glob("*.png")) if (out / "images").is_dir() else 0
    except JournalError as exc:  # a newer format: the same answer (and exit 2) as `run`
        print(f"wanbatch: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except (OSError, ValueError) as exc:
        print(f"wanbatch: cannot read the run in {out}: {_reason(exc)}", file=sys.stderr)
        return ExitCode.USAGE
    by_status = state.status_counts()
    done, failed = by_status.get("done", 0), by_status.get("failed", 0)
    known = sum(by_status.values())
    # Jobs of the last run's file that the journal has not finished: never called yet, or
    # generated with images still to download.
    pending = max(state.jobs_in_file, known) - done - failed
    reasons = Counter(
        job.failure[0] for job in state.jobs.values() if job.status is Status.FAILED and job.failure
    )
    if state.run_ended:
        last_run = f"stopped: {state.stop_reason}" if state.stop_reason else "finished"
    else:
        last_run = "did not finish (killed, crashed or still running)"
    report = {
        "folder": str(out),
        "runs": state.runs,
        "last_run": last_run,
        "complete": bool(state.run_ended and not state.stop_reason and not pending and not failed),
        "jobs": done + failed + pending,
        "by_state": {"done": done, "failed": failed, "pending": pending},
        "failure_reasons": dict(reasons.most_common()),
        "images_generated": state.images_generated,
        "images_on_disk": images,
        "failed_attempts": state.failed_attempts,
        "throttled": state.throttled,
        "possibly_billed": state.possibly_billed,
        "damaged_journal_lines": state.damaged[:20],
    }
    print(json.dumps(report, indent=2))
    return ExitCode.OK


def _silence_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's last flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (a test's capture): nothing to flush
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wanbatch`` command; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["mock"]:
        from wanbatch.mock import cli_main

        return cli_main(args_list[1:])
    parser = _build_parser()
    args = parser.parse_args(args_list)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "validate":
            return _cmd_validate(args)
        if args.command == "status":
            return _cmd_status(args)
    except KeyboardInterrupt:  # Ctrl-C outside a run (validate, status, start-up)
        print("wanbatch: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # the reader of our output went away (`wanbatch validate | head`)
        _silence_stdout()
        return ExitCode.INTERRUPTED
    except WanbatchError as exc:
        print(f"wanbatch: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    parser.error(f"unknown command {args.command}")
    return ExitCode.USAGE
