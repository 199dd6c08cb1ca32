"""``wanbatch mock``: serve the mock from the command line until SIGINT/SIGTERM.

The first line of stdout is the base URL (``http://HOST:PORT/api/v1``), flushed at once, so a
parent process can read it and point a client there. Every :class:`MockConfig` knob is a flag.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from pydantic import ValidationError

from wanbatch.mock._config import DEFAULT_URL_TTL_S, MockConfig
from wanbatch.mock._server import MockServer

__all__ = ["cli_main"]


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 64x64, got {text!r}")
    return (int(width), int(height))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wanbatch mock",
        description="Serve a mock of the DashScope wan2.6-image API (all knobs off by default).",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=0, help="port to bind; 0 picks a free one (default 0)")
    add("--latency", type=float, default=0.0, help="mean seconds per generation call")
    add("--latency-jitter", type=float, default=0.0, help="uniform +/- seconds around --latency")
    add("--max-concurrency", type=int, help="in-flight calls beyond this answer 429")
    add("--rps", type=float, help="accepted calls per sliding second; beyond it 429")
    add("--retry-after", type=int, help="send Retry-After: N on 429 answers")
    add("--error-rate", type=float, default=0.0, help="probability of a 500 InternalError")
    add("--gateway-error-rate", type=float, default=0.0, help="probability of a non-JSON 502/503")
    add(
        "--reset-rate",
        type=float,
        default=0.0,
        help="probability of a connection reset (not billed)",
    )
    add("--truncate-rate", type=float, default=0.0, help="probability a download is cut short")
    add("--url-ttl", type=float, default=DEFAULT_URL_TTL_S, help="seconds image URLs stay valid")
    add(
        "--inspection-trigger",
        action="append",
        default=[],
        dest="inspection_triggers",
        metavar="TEXT",
        help="prompts containing TEXT answer DataInspectionFailed (repeatable)",
    )
    add("--api-key", help="the only API key accepted (default: any non-empty key)")
    add("--budget", type=int, help="images after which every call answers Arrearage")
    add("--free-quota", type=int, help="images after which calls answer Throttling.AllocationQuota")
    add("--image-size", type=_size, metavar="WxH", help="stand-in size of served PNGs, e.g. 64x64")
    add("--seed", type=int, help="seed of the fault/jitter RNG, for reproducible runs")
    add("--clock-offset", type=float, default=0.0, help="seconds added to the mock's clock")
    add(
        "--cut-stream-after-image",
        choices=("reset", "stall"),
        help="cut interleaved streams after their first image event (the image is billed)",
    )
    return parser


def cli_main(argv: list[str]) -> int:
    """Run ``wanbatch mock`` with ``argv`` (the arguments after ``mock``); returns the exit code."""
    args = vars(_parser().parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    try:
        config = MockConfig(**args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        print(f"wanbatch mock: invalid option: {problems}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, host, port))
    except OSError as exc:
        print(f"wanbatch mock: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: MockConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with MockServer(config, host, port) as server:
        print(server.base_url, flush=True)
        await stop.wait()
