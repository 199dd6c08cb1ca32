"""Pure: the mock's reading of ``wan2.7-image`` and ``wan2.7-image-pro`` (docs/mock.md, Models).

Same endpoint and body shape as ``wan2.6-image``, other rules:

- one user message, exactly one text item and 0-9 image items; the mode follows from them:
  no image is text-to-image, images are editing / multi-reference, ``enable_sequential: true``
  asks for an image set, ``bbox_list`` marks boxes to edit on each image;
- prompts are cut at 5,000 characters;
- ``n``: 1-4 (default 1) outside set mode; 1-12 (default 12) in set mode, where it is a maximum:
  the model decides how many it makes. The mock makes ``n``, ``n-1`` or ``n-2`` (at least 1),
  chosen from a hash of the seed and prompt, so one request always gets the same count;
- ``size``: ``1K`` (1024²) and ``2K`` (2048², the default); ``4K`` (4096²) only on the pro model
  and only in text-to-image; ``W*H`` with 768² to 2048² pixels in total (4096² for pro
  text-to-image) and a ratio within 1:8 to 8:1. Presets are square without reference images and
  follow the last image's ratio with them;
- ``color_palette``: 3-10 ``{"hex": "#RRGGBB", "ratio": "NN.NN%"}`` entries whose ratios sum to
  100.00%, not in set mode; ``bbox_list``: one list per image, at most 2 boxes ``[x1, y1, x2,
  y2]`` each (whole pixels, x1 < x2, y1 < y2); ``thinking_mode``, ``watermark``: booleans;
- wan2.6's ``enable_interleave``, ``max_images``, ``stream``, ``prompt_extend`` and
  ``negative_prompt`` are refused: the model has no interleaved mode and documents none of them;
- reference images: as for wan2.6 (URL, data URI of at most 10 MB, 240-8000 px a side) plus a
  ratio within 1:8 to 8:1 where the mock can read the size.

Answers are plain JSON in every mode (no event stream).
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from wanbatch.mock._errors import Rejection

__all__ = ["MODELS_27", "PRO_MODEL", "Plan27", "check_wan27", "set_count"]

MODELS_27 = ("wan2.7-image", "wan2.7-image-pro")
PRO_MODEL = "wan2.7-image-pro"
MAX_PROMPT = 5000
MAX_IMAGES = 9
MAX_RATIO = 8
_PRESETS = {"1K": 1024 * 1024, "2K": 2048 * 2048, "4K": 4096 * 4096}
_MIN_PIXELS = 768 * 768
_WH = re.compile(r"^(\d{1,5})\*(\d{1,5})$")
_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
_PCT = re.compile(r"^(\d{1,3})\.(\d{2})%$")
_REFUSED = ("enable_interleave", "max_images", "stream", "prompt_extend", "negative_prompt")
_BOOLS = ("enable_sequential", "thinking_mode", "watermark")


class Plan27:
    """What a valid 2.7 request produces: how many images and their size."""

    __slots__ = ("count", "n", "sequential", "size")

    def __init__(self, n: int, count: int, size: tuple[int, int], sequential: bool) -> None:
        self.n = n
        self.count = count
        self.size = size
        self.sequential = sequential


def check_wan27(
    model: str,
    params: dict[str, Any],
    prompt: str,
    sizes: list[tuple[int, int] | None],
) -> Plan27:
    """Check a 2.7 request's parameters (``sizes``: each reference image's, if readable).

    Raises:
        Rejection: 400 ``InvalidParameter`` naming the rule.
    """
    images = len(sizes)
    if images > MAX_IMAGES:
        raise Rejection.invalid(f"{model} accepts 0 to {MAX_IMAGES} input images, got {images}")
    for known in sizes:
        if known is not None and max(known) > MAX_RATIO * min(known):
            raise Rejection.invalid(
                f"input image is {known[0]}x{known[1]}: its aspect ratio must be within 1:8 to 8:1"
            )
    for name in _REFUSED:
        if name in params:
            raise Rejection.invalid(f"parameter {name} is not supported by model {model}")
    for name in _BOOLS:
        if name in params and not isinstance(params[name], bool):
            raise Rejection.invalid(f"parameters.{name} must be a boolean")
    sequential = params.get("enable_sequential") is True
    text_only = images == 0 and not sequential
    n = _whole(params, "n", 1, 12 if sequential else 4, 12 if sequential else 1)
    _whole(params, "seed", 0, 2147483647, 0)
    size = _size(params.get("size"), model == PRO_MODEL and text_only, sizes)
    if "color_palette" in params:
        if sequential:
            raise Rejection.invalid("color_palette is not supported when enable_sequential=true")
        _palette(params["color_palette"])
    if "bbox_list" in params:
        _boxes(params["bbox_list"], images)
    count = set_count(n, params.get("seed"), prompt) if sequential else n
    return Plan27(n, count, size, sequential)


def set_count(n: int, seed: object, prompt: str) -> int:
    """How many images the mock makes for a set of at most ``n``: ``n`` down to ``n-2``."""
    digest = hashlib.sha256(f"{seed}|{prompt}".encode()).digest()
    return max(1, n - digest[0] % 3)


def _whole(params: dict[str, Any], name: str, low: int, high: int, default: int) -> int:
    if name not in params:
        return default
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejection.invalid(f"parameters.{name} must be an integer")
    if not low <= value <= high:
        raise Rejection.invalid(f"parameters.{name} must be between {low} and {high}, got {value}")
    return value


def _size(value: object, big: bool, sizes: list[tuple[int, int] | None]) -> tuple[int, int]:
    """The output size of a valid ``size`` (``big``: pro text-to-image, up to 4096²)."""
    top = (4096 if big else 2048) ** 2
    if value is None:
        value = "2K"
    if not isinstance(value, str):
        raise Rejection.invalid("size must be a string such as '2K' or '2048*2048'")
    if value in _PRESETS:
        total = _PRESETS[value]
        if total > top:
            raise Rejection.invalid(
                f"size {value!r} is only supported by {PRO_MODEL} for text-to-image"
            )
        last = sizes[-1] if sizes else None
        ratio = 1.0 if last is None else last[0] / last[1]
        ratio = min(max(ratio, 1 / MAX_RATIO), MAX_RATIO)
        width = math.sqrt(total * ratio)
        return (max(16, round(width / 16) * 16), max(16, round(total / width / 16) * 16))
    match = _WH.match(value)
    if match is None:
        raise Rejection.invalid(f"size {value!r} is invalid: use '1K', '2K' or 'W*H'")
    width, height = int(match.group(1)), int(match.group(2))
    if not _MIN_PIXELS <= width * height <= top:
        side = math.isqrt(top)
        raise Rejection.invalid(
            f"size {value!r} is invalid: total pixels must be between 768*768 and {side}*{side}"
        )
    if max(width, height) > MAX_RATIO * min(width, height):
        raise Rejection.invalid(
            f"size {value!r} is invalid: aspect ratio must be within 1:8 to 8:1"
        )
    return (width // 16 * 16, height // 16 * 16)


def _palette(value: object) -> None:
    if not isinstance(value, list) or not 3 <= len(value) <= 10:
        raise Rejection.invalid("color_palette must be an array of 3 to 10 colors")
    hundredths = 0
    for entry in value:
        if not isinstance(entry, dict) or sorted(entry) != ["hex", "ratio"]:
            raise Rejection.invalid("each color_palette entry must hold exactly hex and ratio")
        hex_, ratio = entry["hex"], entry["ratio"]
        if not isinstance(hex_, str) or not _HEX.match(hex_):
            raise Rejection.invalid(f"color_palette hex {hex_!r} is invalid: use #RRGGBB")
        match = _PCT.match(ratio) if isinstance(ratio, str) else None
        if match is None:
            raise Rejection.invalid(
                f"color_palette ratio {ratio!r} is invalid: use a percentage like '25.00%'"
            )
        hundredths += int(match.group(1)) * 100 + int(match.group(2))
    if hundredths != 10000:
        raise Rejection.invalid("color_palette ratios must sum to 100.00%")


def _boxes(value: object, images: int) -> None:
    if not isinstance(value, list) or images == 0 or len(value) != images:
        raise Rejection.invalid(
            f"bbox_list must hold one list of boxes per input image ({images}), got "
            f"{len(value) if isinstance(value, list) else 'no list'}"
        )
    for boxes in value:
        if not isinstance(boxes, list) or len(boxes) > 2:
            raise Rejection.invalid("bbox_list allows at most 2 boxes per image")
        for box in boxes:
            if not (
                isinstance(box, list)
                and len(box) == 4
                and all(type(v) is int and v >= 0 for v in box)
                and box[0] < box[2]
                and box[1] < box[3]
            ):
                raise Rejection.invalid(
                    "each box must be [x1, y1, x2, y2] in pixels with x1 < x2 and y1 < y2"
                )
