"""The ``wanbatch`` command line's grammar: options, their ranges and defaults, the help.

Every option's value is checked here, with a message naming the option and what it takes
(never an internal name), so that no value reaches the engine that it would refuse.
"""

from __future__ import annotations

import argparse

from wanbatch._cli_inputs import add_input_options
from wanbatch._cli_values import base_url, non_empty, number, shard, whole_number
from wanbatch._config import (
    DEFAULT_CALL_TIMEOUT_S,
    DEFAULT_CONCURRENCY,
    DEFAULT_DOWNLOAD_CONCURRENCY,
    DEFAULT_DOWNLOAD_TIMEOUT_S,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MODEL,
    DEFAULT_POLL_INTERVAL_S,
    DEFAULT_REGION,
    DEFAULT_RPS,
    PRICE_PER_IMAGE,
    REGION_BASE_URLS,
)
from wanbatch._models import MODELS
from wanbatch._version import __version__

__all__ = ["build_parser"]

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
  0    success (run: every job done; validate: no error; status: report printed;
       mock: stopped by Ctrl-C/SIGTERM)
  1    run finished, but some jobs failed for good (failed.jsonl) or have images to
       download; mock cannot listen on its address
  2    usage error or invalid input (bad option, job file with errors or no job, unusable
       --out), or a folder that cannot be used as it is (another job file's run, another
       run in progress, images without a journal, mock and real service mixed): nothing sent
  3    run aborted on a fatal condition: the service's (bad key or base URL, workspace,
       model not available, unpaid account), the service cannot be reached or does not
       answer like the API, answers keep being lost, result URLs expire on arrival, or the
       disk (full, not writable): the folder is resumable
  4    run stopped at --max-images: the rest is resumable
  130  interrupted (Ctrl-C, SIGTERM, SIGHUP, or the reader of the output went away):
       state saved, resumable
"""
ENVIRONMENT_HELP = """\
environment:
  DASHSCOPE_API_KEY        the API key (required unless --mock or --dry-run); never printed
  DASHSCOPE_API_KEYS       a key pool: several keys, comma or space separated (with
                           --keys-file); used instead of DASHSCOPE_API_KEY
  DASHSCOPE_WORKSPACE_ID   the workspace whose own host (in --region) to call, when neither
                           --base-url nor --workspace is given
  DASHSCOPE_HTTP_BASE_URL  the API base URL when none of --base-url, --workspace,
                           DASHSCOPE_WORKSPACE_ID, --region is given
                           (default https://dashscope-intl.aliyuncs.com/api/v1)
"""


def _add_generation_defaults(parser: argparse.ArgumentParser) -> None:
    """The run-wide generation defaults, shared by ``run`` and ``validate``."""
    gen = parser.add_argument_group("generation defaults (a job's own value wins)")
    gen.add_argument(
        "--model",
        choices=MODELS,
        default=None,
        help=f"model of the jobs that name none (default {DEFAULT_MODEL})",
    )
    gen.add_argument(
        "--size",
        type=non_empty("a size"),
        default=None,
        metavar="SIZE",
        help='image size: "1K", "2K" or "W*H" (default: the service\'s)',
    )
    gen.add_argument(
        "--n",
        type=whole_number(1, MAX_N),
        default=1,
        metavar="N",
        help=f"images per editing job, 1-{MAX_N}, each billed (default 1)",
    )
    gen.add_argument(
        "--images-per-job",
        dest="max_images_param",
        type=whole_number(1, MAX_IMAGES_PER_JOB),
        default=1,
        metavar="N",
        help=f"images at most per interleaved (text-to-image) job, 1-{MAX_IMAGES_PER_JOB}, "
        "each billed (default 1)",
    )
    gen.add_argument(
        "--seed",
        type=whole_number(0, MAX_SEED),
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


def _addshard(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--shard",
        type=shard,
        default=None,
        metavar="I/N",
        help=f"{what} only the jobs of shard I of N (1/N to N/N), chosen by a hash of the job "
        "id: every machine agrees, and reordering or appending lines moves no job "
        "(default: every job)",
    )


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's tables as written."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wanbatch",
        description="Batch image generation with Alibaba's Wan image models, resumable.",
        epilog=f"{ENVIRONMENT_HELP}\n{EXIT_CODES_HELP}",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wanbatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="generate every job of a JSONL file into a folder",
        description="Generate every job of a JSONL file into a folder; run it again to resume.",
        epilog=f"{ENVIRONMENT_HELP}\n{EXIT_CODES_HELP}",
        formatter_class=_HelpFormatter,
    )
    run.add_argument(
        "jobs",
        metavar="JOBS",
        help="the job file: JSONL, CSV, TSV, Parquet or text (a regular file)",
    )
    run.add_argument(
        "--out",
        required=True,
        type=non_empty("an output folder"),
        metavar="DIR",
        help="output folder; created if missing, resumed if it holds a run",
    )
    run.add_argument(
        "--concurrency",
        type=whole_number(1, MAX_CONCURRENCY),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"calls in flight at most (default {DEFAULT_CONCURRENCY})",
    )
    run.add_argument(
        "--rps",
        type=number(MIN_RPS, MAX_RPS, zero=True),
        default=DEFAULT_RPS,
        metavar="R",
        help=f"call starts per second at most, 0 for no limit (default {DEFAULT_RPS:g})",
    )
    run.add_argument(
        "--download-concurrency",
        type=whole_number(1, MAX_CONCURRENCY),
        default=DEFAULT_DOWNLOAD_CONCURRENCY,
        metavar="N",
        help=f"image downloads in flight at most (default {DEFAULT_DOWNLOAD_CONCURRENCY})",
    )
    run.add_argument(
        "--max-attempts",
        type=whole_number(1, MAX_ATTEMPTS),
        default=DEFAULT_MAX_ATTEMPTS,
        metavar="N",
        help=f"attempts per job before it fails (default {DEFAULT_MAX_ATTEMPTS})",
    )
    run.add_argument(
        "--timeout",
        type=number(0, MAX_TIMEOUT_S, low_open=True),
        default=DEFAULT_CALL_TIMEOUT_S,
        metavar="S",
        help=f"seconds one call may take (default {DEFAULT_CALL_TIMEOUT_S:g})",
    )
    run.add_argument(
        "--download-timeout",
        type=number(0, MAX_TIMEOUT_S, low_open=True),
        default=DEFAULT_DOWNLOAD_TIMEOUT_S,
        metavar="S",
        help=f"seconds one image download may take (default {DEFAULT_DOWNLOAD_TIMEOUT_S:g})",
    )
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--base-url",
        type=base_url,
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
    run.add_argument(
        "--workspace",
        type=non_empty("a workspace id"),
        default=None,
        metavar="ID",
        help="call this workspace's own host in --region (e.g. "
        "https://ID.ap-southeast-1.maas.aliyuncs.com/api/v1); default DASHSCOPE_WORKSPACE_ID, "
        "else the region's shared host",
    )
    where.add_argument(
        "--mock",
        action="store_true",
        help="run against the built-in mock server; needs no API key (default off)",
    )
    run.add_argument(
        "--max-images",
        type=whole_number(1, 2**63 - 1),
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
        "--keys-file",
        default=None,
        metavar="PATH",
        help="a key pool: API keys of several accounts, one a line (# comments), used together "
        "with DASHSCOPE_API_KEYS; each key gets --concurrency and --rps of its own (default: "
        "the one key of DASHSCOPE_API_KEY)",
    )
    run.add_argument(
        "--mode",
        choices=("sync", "async"),
        default="sync",
        help="sync: each call waits for its images; async: submit tasks, journal them and "
        "poll them (a restart collects them instead of buying them again) (default sync)",
    )
    run.add_argument(
        "--poll-interval",
        type=number(0, MAX_TIMEOUT_S, low_open=True),
        default=DEFAULT_POLL_INTERVAL_S,
        metavar="S",
        help="--mode async: seconds between polls of a task, jittered up to twice it "
        f"(default {DEFAULT_POLL_INTERVAL_S:g})",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and show the plan and its cost; send nothing (default off)",
    )
    run.add_argument(
        "--price",
        type=number(0, MAX_PRICE),
        default=None,
        metavar="P",
        help="price per image in CNY, for the costs shown (default: each model's list price "
        "in the region, e.g. wan2.6-image "
        + ", ".join(f"{r} {p:g}" for r, p in PRICE_PER_IMAGE.items())
        + ")",
    )
    run.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (default: a bar when stderr is a terminal)",
    )
    add_input_options(run)
    _addshard(run, "run")
    _add_generation_defaults(run)

    val = sub.add_parser(
        "validate",
        help="check a job file; print every problem",
        description="Check a job file and print every problem as FILE:LINE: field: message.",
        epilog="exit codes: 0 no error (warnings allowed), 2 errors or unusable input, "
        "130 interrupted",
        formatter_class=_HelpFormatter,
    )
    val.add_argument(
        "jobs",
        metavar="JOBS",
        help="the job file: JSONL, CSV, TSV, Parquet or text (a regular file)",
    )
    add_input_options(val)
    _addshard(val, "count")
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
        "dir", metavar="DIR", type=non_empty("a run folder"), help="the run's --out folder"
    )

    report = sub.add_parser(
        "report",
        help="write a run folder's report page (DIR/report.html)",
        description="Write DIR/report.html again: a static page of the run (totals, images over "
        "time, the images searchable by prompt, failed jobs) that opens from disk, no network.",
        epilog="exit codes: 0 written, 2 no run in DIR, 3 cannot write it, 130 interrupted",
        formatter_class=_HelpFormatter,
    )
    report.add_argument(
        "dir", metavar="DIR", type=non_empty("a run folder"), help="the run's --out folder"
    )
    report.add_argument(
        "--price",
        type=number(0, MAX_PRICE),
        default=None,
        metavar="P",
        help="price per image in CNY (default: the list price of the region the last run called)",
    )

    sub.add_parser(
        "mock", help="serve the mock DashScope API (see `wanbatch mock --help`)", add_help=False
    )
    return parser
