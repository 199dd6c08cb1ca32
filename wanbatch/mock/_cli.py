"""``wanbatch mock``: serve the mock from the command line until SIGINT/SIGTERM.

The first line of stdout is the base URL (``http://HOST:PORT/api/v1``), flushed at once, so a
parent process can read it and point a client there. Every :class:`MockConfig` knob is a flag.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sys
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from wanbatch.mock._config import DEFAULT_URL_TTL_S, MockConfig
from wanbatch.mock._server import MockServer

__all__ = ["cli_main", "parse_config"]

EPILOG = """\
exit codes:
  0    stopped by Ctrl-C or SIGTERM
  1    cannot listen on HOST:PORT (in use, not allowed, unknown host)
  2    bad option
"""


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 64x64, got {text!r}")
    return (int(width), int(height))


def _status_code(text: str) -> tuple[int, str]:
    status, sep, code = text.partition(":")
    if not sep or not status.strip().isdigit() or not code:
        raise argparse.ArgumentTypeError(
            f"expected STATUS:CODE, e.g. 429:PrepaidBillOverdue, got {text!r}"
        )
    return (int(status), code)


#: ``--force-error-*`` flag -> field of the ``force_error`` knob.
_FORCE_FIELDS = {
    "force_error_message": "message",
    "force_error_after": "after",
    "force_error_times": "times",
    "force_error_rate": "rate",
}


def _key_spec(text: str) -> tuple[str, dict[str, str]]:
    """``KEY`` or ``KEY:knob=value,...`` (knobs of one account: max_concurrency, rps, budget,
    billing_code). Messages never repeat the key."""
    key, _, knobs = text.partition(":")
    if not key.strip():
        raise argparse.ArgumentTypeError("expected KEY or KEY:max_concurrency=3,budget=10")
    spec: dict[str, str] = {}
    for part in filter(None, knobs.split(",")):
        name, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected knob=value after the key, got {part!r}")
        spec[name.strip().replace("-", "_")] = value.strip()
    return key.strip(), spec


def _host(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("give an address to bind, e.g. 127.0.0.1; got ''")
    return text.strip()


def _port(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _finite(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wanbatch mock",
        description="Serve a mock of the DashScope wan2.6-image API (all knobs off by default).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    number: Callable[[str], float] = _finite
    add(
        "--host",
        metavar="HOST",
        type=_host,
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1)",
    )
    add(
        "--port",
        metavar="PORT",
        type=_port,
        default=0,
        help="port to bind; 0 picks a free one (default 0)",
    )
    add(
        "--latency",
        metavar="S",
        type=number,
        default=0.0,
        help="mean seconds per generation call (default 0)",
    )
    add(
        "--latency-jitter",
        metavar="S",
        type=number,
        default=0.0,
        help="uniform +/- seconds around --latency (default 0)",
    )
    add(
        "--max-concurrency",
        metavar="N",
        type=_whole,
        help="in-flight calls beyond this answer 429 (default: no cap)",
    )
    add(
        "--rps",
        metavar="R",
        type=number,
        help="accepted calls per sliding second; beyond it 429 (default: any)",
    )
    add(
        "--retry-after",
        metavar="N",
        type=_whole,
        help="send Retry-After: N (seconds) on 429 answers (default: none)",
    )
    add(
        "--error-rate",
        metavar="P",
        type=number,
        default=0.0,
        help="probability of a 500 InternalError, 0-1 (default 0)",
    )
    add(
        "--gateway-error-rate",
        metavar="P",
        type=number,
        default=0.0,
        help="probability of a non-JSON 502/503, 0-1 (default 0)",
    )
    add(
        "--reset-rate",
        metavar="P",
        type=number,
        default=0.0,
        help="probability of a connection reset (not billed), 0-1 (default 0)",
    )
    add(
        "--truncate-rate",
        metavar="P",
        type=number,
        default=0.0,
        help="probability a download is cut short, 0-1 (default 0)",
    )
    add(
        "--url-ttl",
        metavar="S",
        type=number,
        default=DEFAULT_URL_TTL_S,
        help=f"seconds image URLs stay valid (default {DEFAULT_URL_TTL_S:g})",
    )
    add(
        "--inspection-trigger",
        action="append",
        default=[],
        dest="inspection_triggers",
        metavar="TEXT",
        help="prompts containing TEXT answer DataInspectionFailed (repeatable; default none)",
    )
    add("--api-key", metavar="K", help="the only API key accepted (default: any non-empty key)")
    add(
        "--key",
        action="append",
        default=None,
        dest="keys",
        type=_key_spec,
        metavar="KEY[:KNOBS]",
        help="an account of several: KEY, with its own quota and billing, e.g. "
        "k1:max_concurrency=3,rps=5,budget=10,billing_code=PrepaidBillOverdue; only the keys "
        "given are accepted (repeatable; default: one account)",
    )
    add(
        "--budget",
        metavar="N",
        type=_whole,
        help="images after which every call answers Arrearage (default: no budget)",
    )
    add(
        "--free-quota",
        metavar="N",
        type=_whole,
        help="images after which calls answer Throttling.AllocationQuota (default: no quota)",
    )
    add(
        "--image-size",
        type=_size,
        metavar="WxH",
        help="stand-in size of served PNGs, e.g. 64x64 (default: the requested size)",
    )
    add(
        "--image-style",
        choices=("picture", "noise"),
        default="picture",
        help="what served PNGs show: a small picture of prompt, seed and index, or "
        "photo-sized noise for download benchmarks (default picture)",
    )
    add(
        "--seed",
        metavar="N",
        type=_whole,
        help="seed of the fault/jitter RNG, for reproducible runs (default: random)",
    )
    add(
        "--clock-offset",
        metavar="S",
        type=number,
        default=0.0,
        help="seconds added to the mock's clock (default 0)",
    )
    add(
        "--force-error",
        type=_status_code,
        metavar="STATUS:CODE",
        help="answer generation calls with this error, e.g. 429:PrepaidBillOverdue (default: none)",
    )
    add("--force-error-message", metavar="TEXT", help="its message (default: the documented one)")
    add(
        "--force-error-after",
        type=_whole,
        metavar="N",
        help="only after N successful calls (default 0)",
    )
    add(
        "--force-error-times",
        type=_whole,
        metavar="N",
        help="for N calls at most, then as usual (default: no limit)",
    )
    add(
        "--force-error-rate",
        type=_finite,
        metavar="P",
        help="for each call with probability P (default 1)",
    )
    add(
        "--cut-stream-after-image",
        choices=("reset", "stall"),
        help="cut interleaved streams after their first image event (the image is billed; "
        "default: never)",
    )
    add(
        "--task-error-in-output",
        action="store_true",
        help="a FAILED task's code and message inside output, not at the top level (default off)",
    )
    return parser


def _force_error(args: dict[str, Any]) -> str | None:
    """Fold the ``--force-error*`` flags of ``args`` into its ``force_error`` knob (in place).

    Returns a usage problem, or ``None``.
    """
    extras = {field: args.pop(flag) for flag, field in _FORCE_FIELDS.items()}
    extras = {field: value for field, value in extras.items() if value is not None}
    forced = args.pop("force_error")
    if forced is None:
        if extras:
            names = ", ".join(f"--force-error-{field}" for field in extras)
            return f"{names} needs --force-error STATUS:CODE"
        return None
    status, code = forced
    args["force_error"] = {"status": status, "code": code, **extras}
    return None


def _flag(loc: tuple[object, ...]) -> str:
    """The command-line flag of a :class:`MockConfig` field (``force_error.rate``: its flag)."""
    name = str(loc[0]) if loc else "option"
    if name == "force_error" and len(loc) > 1 and loc[1] != "status" and loc[1] != "code":
        name = f"force_error_{loc[1]}"
    return (
        "--inspection-trigger" if name == "inspection_triggers" else "--" + name.replace("_", "-")
    )


def parse_config(argv: list[str]) -> tuple[MockConfig, str, int] | int:
    """The mock's config, host and port from ``argv``, or the exit code after a message.

    Raises ``SystemExit`` (code 2, or 0 for ``--help``) on what argparse rejects.
    """
    args = vars(_parser().parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    if args.get("keys") is not None:
        args["keys"] = dict(args["keys"])
    problem = _force_error(args)
    if problem is not None:
        print(f"wanbatch mock: invalid option: {problem}", file=sys.stderr)
        return 2
    try:
        config = MockConfig(**args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_flag(tuple(e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        print(f"wanbatch mock: invalid option: {problems}", file=sys.stderr)
        return 2
    return config, host, port


def cli_main(argv: list[str]) -> int:
    """Run ``wanbatch mock`` with ``argv`` (the arguments after ``mock``); returns the exit code."""
    parsed = parse_config(argv)
    if isinstance(parsed, int):
        return parsed
    config, host, port = parsed
    try:
        asyncio.run(_serve(config, host, port))
    except (OSError, ValueError, OverflowError, UnicodeError) as exc:
        print(f"wanbatch mock: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
        return 0
    return 0


async def _serve(config: MockConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with MockServer(config, host, port) as server:
        print(server.base_url, flush=True)
        await stop.wait()
