"""The ``wanbatch`` command: ``run``, ``validate``, ``status``, ``mock``.

The only place that reads environment variables (``DASHSCOPE_API_KEY``,
``DASHSCOPE_HTTP_BASE_URL``) and maps outcomes to exit codes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import anyio

from wanbatch._config import (
    DEFAULT_CALL_TIMEOUT_S,
    DEFAULT_CONCURRENCY,
    DEFAULT_DOWNLOAD_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_REGION,
    DEFAULT_RPS,
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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _add_generation_defaults(parser: argparse.ArgumentParser) -> None:
    """The run-wide generation defaults, shared by ``run`` and ``validate``."""
    gen = parser.add_argument_group("generation defaults (a job's own value wins)")
    gen.add_argument("--size", default=None, help='"1K", "2K" or "W*H"')
    gen.add_argument("--n", type=int, default=1, help="images per editing job (default 1)")
    gen.add_argument(
        "--images-per-job",
        dest="max_images_param",
        type=int,
        default=1,
        help="max_images of interleaved (text-to-image) jobs (default 1)",
    )
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--negative-prompt", default=None)
    gen.add_argument("--watermark", action=argparse.BooleanOptionalAction, default=None)
    gen.add_argument("--prompt-extend", action=argparse.BooleanOptionalAction, default=None)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wanbatch",
        description="Batch image generation with Alibaba's wan2.6-image (DashScope), resumable.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="generate every job of a JSONL file into a folder")
    run.add_argument("jobs", metavar="JOBS", help="the JSONL job file")
    run.add_argument("--out", required=True, metavar="DIR", help="output folder (resumed)")
    run.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"calls in flight at most (default {DEFAULT_CONCURRENCY})",
    )
    run.add_argument(
        "--rps",
        type=float,
        default=DEFAULT_RPS,
        help=f"call starts per second at most, 0 for no limit (default {DEFAULT_RPS})",
    )
    run.add_argument(
        "--download-concurrency",
        type=_positive_int,
        default=DEFAULT_DOWNLOAD_CONCURRENCY,
        help="image downloads in flight",
    )
    run.add_argument(
        "--max-attempts",
        type=_positive_int,
        default=DEFAULT_MAX_ATTEMPTS,
        help=f"attempts per job before it fails (default {DEFAULT_MAX_ATTEMPTS})",
    )
    run.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_CALL_TIMEOUT_S,
        help=f"seconds one call may take (default {DEFAULT_CALL_TIMEOUT_S:g})",
    )
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--base-url", help="API base URL, e.g. https://dashscope-intl.aliyuncs.com/api/v1"
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
        help="run against the built-in mock server (no API key needed)",
    )
    run.add_argument(
        "--max-images",
        type=_positive_int,
        default=None,
        metavar="N",
        help="stop buying once N images were generated in this folder",
    )
    run.add_argument("--retry-failed", action="store_true", help="call failed jobs again")
    run.add_argument(
        "--skip-invalid",
        action="store_true",
        help="run the valid jobs even if some lines are invalid",
    )
    run.add_argument(
        "--no-regenerate-expired",
        action="store_true",
        help="fail jobs whose result URLs expired instead of generating them again",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and show the plan and its cost; send nothing",
    )
    run.add_argument(
        "--price",
        type=float,
        default=None,
        help="price per image for the cost estimate (default: the region's)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_generation_defaults(run)

    val = sub.add_parser("validate", help="check a job file; print every problem")
    val.add_argument("jobs", metavar="JOBS")
    _add_generation_defaults(val)  # so validate sees what `run` with the same flags would send

    status = sub.add_parser("status", help="what a run folder holds")
    status.add_argument("dir", metavar="DIR")

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
        max_images=args.max_images,
        retry_failed=args.retry_failed,
        skip_invalid=args.skip_invalid,
        regenerate_expired=not args.no_regenerate_expired,
        price_per_image=args.price,
        defaults=_defaults(args),
    )


async def _run_with_mock(args: argparse.Namespace, progress: object) -> RunSummary:
    from wanbatch.mock import MockConfig, MockServer

    async with MockServer(MockConfig(latency=MOCK_LATENCY_S)) as server:
        config = _config(args, server.base_url, Secret("mock-key"))
        return await run_batch(
            args.jobs,
            args.out,
            config,
            on_event=progress,  # type: ignore[arg-type]
            dry_run=args.dry_run,
            handle_signals=True,
        )


def _cmd_run(args: argparse.Namespace) -> int:
    from wanbatch._progress import ProgressBar, format_summary

    if not Path(args.jobs).is_file():
        print(f"wanbatch: {args.jobs}: no such job file", file=sys.stderr)
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
            summary = anyio.run(_run_with_mock, args, progress)
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
            base_url = (
                args.base_url
                or (REGION_BASE_URLS[args.region] if args.region else None)
                or os.environ.get("DASHSCOPE_HTTP_BASE_URL")
                or REGION_BASE_URLS[DEFAULT_REGION]
            )
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
        print(f"wanbatch: {exc}; fix the lines above, or run with --skip-invalid", file=sys.stderr)
        return ExitCode.USAGE
    except JournalError as exc:
        progress.close()
        print(f"wanbatch: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except OutputError as exc:
        progress.close()
        print(f"wanbatch: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    except KeyboardInterrupt:
        progress.close()
        print("wanbatch: interrupted; run the same command again to resume", file=sys.stderr)
        return ExitCode.INTERRUPTED
    progress.close()
    print(format_summary(summary, args.out), file=sys.stderr)
    if summary.exit_code == ExitCode.INTERRUPTED:
        print("wanbatch: interrupted; run the same command again to resume", file=sys.stderr)
    return int(summary.exit_code)


def _cmd_validate(args: argparse.Namespace) -> int:
    from wanbatch._loader import validate_command

    return validate_command(args.jobs, _defaults(args), sys.stdout)


def _cmd_status(args: argparse.Namespace) -> int:
    from wanbatch._folder import check_saved_images
    from wanbatch._journal import read_journal
    from wanbatch._state import Status

    out = Path(args.dir)
    if not (out / "journal.jsonl").is_file():
        print(f"wanbatch: {out} holds no run (no journal.jsonl)", file=sys.stderr)
        return ExitCode.USAGE
    try:
        state = read_journal(out)
    except JournalError as exc:  # a newer format: the same answer (and exit 2) as `run`
        print(f"wanbatch: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    by_status = state.status_counts()
    reasons = Counter(
        job.failure[0] for job in state.jobs.values() if job.status is Status.FAILED and job.failure
    )
    images = sum(1 for _ in (out / "images").glob("*.png")) if (out / "images").is_dir() else 0
    report = {
        "folder": str(out),
        "runs": state.runs,
        "jobs": len(state),
        "by_state": dict(sorted(by_status.items())),
        "failure_reasons": dict(reasons.most_common()),
        "images_generated": state.images_generated,
        "images_on_disk": images,
        # Recorded as saved, but the file is gone or of another size (one stat per image).
        "images_missing": check_saved_images(out, state, limit=0).missing,
        "failed_attempts": state.failed_attempts,
        "throttled": state.throttled,
        "possibly_billed": state.possibly_billed,
        "damaged_journal_lines": state.damaged[:20],
    }
    print(json.dumps(report, indent=2))
    return ExitCode.OK


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
    except WanbatchError as exc:
        print(f"wanbatch: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    parser.error(f"unknown command {args.command}")
    return ExitCode.USAGE
