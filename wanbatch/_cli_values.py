"""The command line's value types: each parses one option's text or says, in one line naming
what it takes, why not (argparse adds the option's name)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from urllib.parse import urlsplit

from wanbatch._shards import Shard, parse_shard

__all__ = ["base_url", "non_empty", "number", "shard", "url_problem", "whole_number"]


def whole_number(low: int, high: int) -> Callable[[str], int]:
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


def number(
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


def base_url(text: str) -> str:
    """An argparse type: an ``http://`` or ``https://`` URL with a host."""
    problem = url_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text.strip()


def url_problem(text: str) -> str | None:
    try:
        parts = urlsplit(text.strip())
        _ = parts.port  # raises ValueError unless the port is a number from 0 to 65535
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        usable = False
    if not usable:
        return f"expected a URL like https://dashscope-intl.aliyuncs.com/api/v1, got {text!r}"
    return None


def non_empty(what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"give {what}; got an empty string")
        return text

    return parse


def shard(text: str) -> Shard:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
