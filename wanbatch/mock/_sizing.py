"""Pure: check the ``size`` parameter and work out the output size (docs/service.md, Sizes).

Edit mode takes ``"1K"``, ``"2K"`` or ``"W*H"`` with W*H in [768², 2048²]; interleave mode takes
``"W*H"`` in [768², 1280²] only (team decision: the docs list no presets for it). Both need a
ratio within [1:4, 4:1]. Produced sides are multiples of 16.
"""

from __future__ import annotations

import math
import re
from typing import Literal, TypeAlias

from wanbatch.mock._errors import Rejection

__all__ = ["SizeRequest", "output_size", "parse_size"]

#: ``None`` (mode default), a preset, or an exact (width, height).
SizeRequest: TypeAlias = Literal["1K", "2K"] | tuple[int, int] | None

_WH = re.compile(r"^(\d{1,5})\*(\d{1,5})$")
_MIN_TOTAL = 768 * 768
_EDIT_MAX_TOTAL = 2048 * 2048
_INTERLEAVE_MAX_TOTAL = 1280 * 1280
_PRESET_TOTAL = {"1K": 1280 * 1280, "2K": 2048 * 2048}
_MAX_RATIO = 4.0


def parse_size(value: object, *, interleave: bool) -> SizeRequest:
    """Validate the raw ``parameters.size``; raise :class:`Rejection` (400) if it is not allowed."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Rejection.invalid("size must be a string such as '1K', '2K' or '1280*1280'")
    if value in _PRESET_TOTAL and not interleave:
        return "1K" if value == "1K" else "2K"
    match = _WH.match(value)
    if match is None:
        allowed = "'W*H'" if interleave else "'1K', '2K' or 'W*H'"
        raise Rejection.invalid(f"size {value!r} is invalid: use {allowed}")
    width, height = int(match.group(1)), int(match.group(2))
    top = _INTERLEAVE_MAX_TOTAL if interleave else _EDIT_MAX_TOTAL
    if width == 0 or height == 0 or not _MIN_TOTAL <= width * height <= top:
        side = math.isqrt(top)
        raise Rejection.invalid(
            f"size {value!r} is invalid: total pixels must be between 768*768 and {side}*{side}"
        )
    if not 1 / _MAX_RATIO <= width / height <= _MAX_RATIO:
        raise Rejection.invalid(
            f"size {value!r} is invalid: aspect ratio must be within 1:4 to 4:1"
        )
    return (width, height)


def output_size(
    requested: SizeRequest, *, interleave: bool, last_image: tuple[int, int] | None
) -> tuple[int, int]:
    """The (width, height) produced for a valid request.

    ``last_image`` is the size of the last input image when the mock could read it.
    """
    if isinstance(requested, tuple):
        # "rounded to multiples of 16"; down, as the older documentation says.
        return (max(16, requested[0] // 16 * 16), max(16, requested[1] // 16 * 16))
    if requested is None and interleave:
        # Interleave default: follow the input image, scaled down to about 1280*1280 if larger.
        if last_image is None:
            return (1280, 1280)
        width, height = last_image
        if width * height <= _INTERLEAVE_MAX_TOTAL:
            return (max(16, width // 16 * 16), max(16, height // 16 * 16))
        return _fit(_INTERLEAVE_MAX_TOTAL, width / height)
    total = _PRESET_TOTAL[requested or "1K"]  # the edit default is 1K
    ratio = 1.0 if last_image is None else last_image[0] / last_image[1]
    return _fit(total, ratio)


def _fit(total: int, ratio: float) -> tuple[int, int]:
    """Sides in multiples of 16 with about ``total`` pixels and ``ratio`` clamped to [1:4, 4:1]."""
    ratio = min(max(ratio, 1 / _MAX_RATIO), _MAX_RATIO)
    width = math.sqrt(total * ratio)
    height = total / width
    return (max(16, round(width / 16) * 16), max(16, round(height / 16) * 16))
