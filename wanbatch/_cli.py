"""The ``wanbatch`` command: ``run``, ``validate``, ``mock``; ``status`` and ``report`` are in
:mod:`wanbatch._cli_folder`.

The only place that reads environment variables (``DASHSCOPE_API_KEY``,
``DASHSCOPE_HTTP_BASE_URL``) and maps outcomes to exit codes.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from wanbatch._cli_folder import cmd_report, cmd_status, reason
from wanbatch._cli_keys import run_keys
from wanbatch._cli_options import build_parser
from wanbatch._cli_values import url_problem
from wanbatch._config import (
    DEFAULT_REGION,
    REGION_BASE_URLS,
    BatchConfig,
    GenerationDefaults,
    Secret,
)
from wanbatch._engine import run_batch
from wanbatch._errors import (
    InvalidJobs,
    JournalError,
    OutputError,
    UnusableOutput,
    WanbatchError,
)
from wanbatch._jobinput import JobInput
from wanbatch._models import region_of_url, workspace_base_url, workspace_id_problem
from wanbatch._shards import Shard
from wanbatch._summary import ExitCode, RunSummary

__all__ = ["main"]

#: Settings of the built-in mock behind ``run --mock``: quick, but not instant, like a demo.
MOCK_LATENCY_S = 0.2


def _defaults(args: argparse.Namespace) -> GenerationDefaults:
    return GenerationDefaults(
        size=args.size,
        n=args.n,
        max_images=args.max_images_param,
        seed=args.seed,
        prompt_extend=args.prompt_extend,
        watermark=args.watermark,
        negative_prompt=args.negative_prompt,
        model=args.model,
    )


def _config(args: argparse.Namespace, base_url: str, api_key: Secret | None) -> BatchConfig:
    return BatchConfig(
        base_url=base_url,
        api_key=api_key,
        region=region_of_url(base_url) or args.region or DEFAULT_REGION,
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
        mode=args.mode,
        poll_interval=args.poll_interval,
        job_input=args.job_input,
        shard=args.shard,
    )


def _job_file_problem(path: str) -> str | None:
    """Why ``path`` cannot be the job file, or ``None``.

    A run reads the job file more than once (validate, then dispatch, and again on resume),
    so it must be a regular file: not standard input, a pipe, a folder or a device.
    """
    if not path.strip():
        return "the job file name is empty: give the path of a JSONL job file"
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
        return f"{path}: cannot use this path as the job file: {reason(exc)}"
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
        return f"--out {out}: cannot use this path: {reason(exc)}"
    return None


def _base_url_for(args: argparse.Namespace) -> str | None:
    """The base URL of a real run (None, with a message printed, when the environment's is bad)."""
    if args.base_url:
        return str(args.base_url)
    workspace = args.workspace or os.environ.get("DASHSCOPE_WORKSPACE_ID", "").strip()
    if workspace:
        problem = workspace_id_problem(workspace)
        if problem:
            where = "--workspace" if args.workspace else "DASHSCOPE_WORKSPACE_ID"
            print(f"wanbatch: {where}: {problem}", file=sys.stderr)
            return None
        return workspace_base_url(workspace, args.region or DEFAULT_REGION)
    if args.region:
        return REGION_BASE_URLS[args.region]
    from_env = os.environ.get("DASHSCOPE_HTTP_BASE_URL", "").strip()
    if from_env:
        problem = url_problem(from_env)
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
    if args.workspace and (args.base_url or args.mock):
        problem = "--workspace picks the base URL: give it, or --base-url/--mock, not both"
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
            keys = run_keys(args.keys_file)
            if isinstance(keys, str):
                print(f"wanbatch: {keys}", file=sys.stderr)
                return ExitCode.USAGE
            single, pool = keys
            if pool and args.mode == "async" and len(pool) > 1:
                print("wanbatch: --mode async takes one API key, not a pool", file=sys.stderr)
                return ExitCode.USAGE
            key = "" if pool else (single.reveal() if single else "")
            if not key and not pool and not args.dry_run:
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
            if pool:
                config = config.replace(api_key=pool[0], api_keys=pool)
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
        print(f"wanbatch: {_invalid_jobs_advice(exc, args.skip_invalid)}", file=sys.stderr)
        return ExitCode.USAGE
    except JournalError as exc:
        progress.close()
        print(f"wanbatch: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except UnusableOutput as exc:  # found before anything was sent: a usage error
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
        print(f"wanbatch: stopped: {where}{reason(exc)}", file=sys.stderr)
        return ExitCode.FATAL
    except KeyboardInterrupt:
        progress.close()
        print("wanbatch: interrupted; run the same command again to resume", file=sys.stderr)
        return ExitCode.INTERRUPTED
    progress.close()
    try:
        if summary.dry_run and args.job_input.sweep:
            print(f"sweep: every job × {args.job_input.sweep.describe()}", file=sys.stderr)
        bought = summary.images_generated_this_run
        price = summary.spent_this_run / bought if bought else config.price
        print(format_summary(summary, args.out, price=price), file=sys.stderr)
        if summary.exit_code == ExitCode.INTERRUPTED:
            aborted = (summary.stop_reason or "").startswith("aborted")
            what = "aborted" if aborted else "interrupted"
            print(f"wanbatch: {what}; run the same command again to resume", file=sys.stderr)
    except OSError:  # the terminal is gone (a closed ssh session): the folder says it all
        pass
    return int(summary.exit_code)


def _invalid_jobs_advice(exc: InvalidJobs, skip_invalid: bool) -> str:
    """The last line after a refused job file: what was wrong, and what to do."""
    if exc.errors and all(error.line == 0 for error in exc.errors):  # the file as a whole
        return f"{exc.path}: no job to run; nothing was sent"
    lines = "1 invalid job line" if exc.total == 1 else f"{exc.total} invalid job lines"
    if skip_invalid:  # every line was invalid: nothing is left to run
        return f"{exc.path}: {lines} and no valid one; nothing was sent; fix the lines above"
    return (
        f"{exc.path}: {lines}; nothing was sent; fix the lines above, "
        "or run with --skip-invalid to run the valid ones"
    )


def _cmd_validate(args: argparse.Namespace) -> int:
    from wanbatch._validate import validate_command

    problem = _job_file_problem(args.jobs)
    if problem:
        print(f"wanbatch: {problem}", file=sys.stderr)
        return ExitCode.USAGE
    if args.shard is None:
        return validate_command(args.jobs, _defaults(args), sys.stdout, args.job_input)
    return _validate_shard(args.jobs, _defaults(args), args.shard, args.job_input)


def _validate_shard(
    path: str, defaults: GenerationDefaults, shard: Shard, spec: JobInput | None
) -> int:
    """``validate --shard I/N``: every line is checked (a bad line in another shard is a bad
    file for every machine), then the shard's own jobs and images are counted."""
    from wanbatch._validate import format_report, validate_file

    jobs = images = 0

    def on_job(job_id: str, max_new_images: int, model: str) -> None:
        nonlocal jobs, images
        if shard.holds(job_id):
            jobs, images = jobs + 1, images + max_new_images

    report = validate_file(path, defaults, on_job=on_job, spec=spec)
    for line in format_report(report):
        print(line)
    print(
        f"{path}: shard {shard}: {jobs} of {report.valid_jobs} valid jobs; "
        f"a run of this shard buys at most {images} image{'' if images == 1 else 's'}"
    )
    return 0 if report.ok else 2


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
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "validate":
            return _cmd_validate(args)
        if args.command == "status":
            return cmd_status(args)
        if args.command == "report":
            return cmd_report(args)
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
