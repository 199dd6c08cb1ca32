"""The service's rules for a job under a wan2.7 profile (``wan2.7-image``, ``wan2.7-image-pro``).

:func:`check27` is called by :func:`wanbatch._rules.analyse_job` once the prompt and the
reference images are known. The mode follows from the job (docs/job-format.md, Models):

- no reference image: text-to-image (``thinking_mode`` applies here only);
- 1-9 reference images: editing / multi-reference, or box editing with ``bbox_list``;
- ``enable_sequential: true``: an image set, ``n`` 1-12 a maximum the model may not reach.

``n`` is always sent (1 unless the job or ``--n`` says), because the service's default differs
between its pages and is 12 in set mode. Fields of ``wan2.6-image``'s modes (``enable_interleave``,
``max_images``) and its undocumented-here ``prompt_extend``/``negative_prompt`` are refused when
the job sets them, and their run defaults are not sent.

Pure: stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._config import GenerationDefaults
from ._jobs import Issue, Job, show_json, show_text
from ._models import ModelProfile

__all__ = ["MAX_SEED", "Checked27", "bbox_list_problem", "check27", "color_palette_problem"]

MAX_SEED = 2_147_483_647
_SIZE = re.compile(r"([0-9]{1,6})\*([0-9]{1,6})", re.ASCII)
_HEX = re.compile(r"#[0-9A-Fa-f]{6}", re.ASCII)
_RATIO = re.compile(r"([0-9]{1,3})\.([0-9]{2})%", re.ASCII)
#: The colour palette: 3 to 10 colours (8 recommended), ratios summing to 100.00%.
PALETTE_COLOURS = (3, 10)
#: Boxes per reference image at most.
MAX_BOXES = 2
_MODE_NAMES = {"t2i": "text-to-image", "edit": "editing", "set": "set mode"}


@dataclass(frozen=True, slots=True)
class Checked27:
    """What a wan2.7 job sends (its parameters in a fixed order) and may buy at most."""

    mode: str  #: "t2i", "edit" or "set"
    params: dict[str, Any]
    max_new_images: int


def check27(
    job: Job,
    defaults: GenerationDefaults,
    profile: ModelProfile,
    count: int,
    images_field: str,
    add: Callable[[Issue], None],
) -> Checked27:
    """Check the 2.7 parameters of ``job`` (``count`` reference images); report via ``add``."""
    model = profile.name
    if count > profile.max_refs:
        add(Issue(images_field, f"{count} reference images: {model} takes 0-{profile.max_refs}"))
    for name in sorted(profile.refused):
        if getattr(job, name) is not None:
            add(Issue(name, _refused(model, name)))
    sequential = job.enable_sequential is True
    mode = "set" if sequential else ("t2i" if count == 0 else "edit")
    params: dict[str, Any] = {}

    n, src = job.n, ""
    if n is None:
        n, src = defaults.n, _RUN_DEFAULT
    top = profile.max_n_set if sequential else profile.max_n
    if 1 <= n <= top:
        params["n"] = n
    else:
        where = " in set mode" if sequential else " (enable_sequential true allows 1-12)"
        add(Issue("n", f"must be 1-{top} on {model}{where}; got {n}{src}"))

    size, src = job.size, ""
    if size is None:
        size, src = defaults.size, _RUN_DEFAULT
    if size is not None:
        msg = size_problem(profile, mode, size)
        if msg is not None:
            add(Issue("size", msg + src))
        else:
            params["size"] = size

    seed, src = job.seed, ""
    if seed is None:
        seed, src = defaults.seed, _RUN_DEFAULT
    if seed is not None:
        if 0 <= seed <= MAX_SEED:
            params["seed"] = seed
        else:
            add(Issue("seed", f"must be 0-{MAX_SEED}; got {seed}{src}"))
    wm = job.watermark if job.watermark is not None else defaults.watermark
    if wm is not None:
        params["watermark"] = wm
    if job.enable_sequential is not None:
        params["enable_sequential"] = job.enable_sequential
    if job.thinking_mode is not None:
        params["thinking_mode"] = job.thinking_mode
        if mode != "t2i":
            add(
                Issue(
                    "thinking_mode",
                    f"has no effect with reference images or in set mode ({model} thinks only "
                    "in text-to-image)",
                    warning=True,
                )
            )
    if job.color_palette is not None:
        msg = color_palette_problem(job.color_palette)
        if sequential:
            msg = "is not available in set mode (enable_sequential true)"
        if msg is not None:
            add(Issue("color_palette", msg))
        params["color_palette"] = job.color_palette
    if job.bbox_list is not None:
        msg = bbox_list_problem(job.bbox_list, count)
        if msg is not None:
            add(Issue("bbox_list", msg))
        params["bbox_list"] = job.bbox_list
    return Checked27(mode, params, params.get("n", 0))


def size_problem(profile: ModelProfile, mode: str, size: str) -> str | None:
    """Why ``size`` is refused by ``profile`` in ``mode``, or None."""
    presets = profile.presets[mode]
    if size in presets:
        return None
    if size in ("1K", "2K", "4K"):
        if any(size in p for p in profile.presets.values()):
            return (
                f"'{size}' is for text-to-image only on {profile.name} (no reference image, "
                f"not a set); {_MODE_NAMES[mode]} takes " + ", ".join(map(repr, presets))
            )
        return f"'{size}' is not offered by {profile.name}; it takes " + ", ".join(
            map(repr, presets)
        )
    m = _SIZE.fullmatch(size)
    if m is None:
        names = ", ".join(f'"{p}"' for p in presets)
        return f'must be {names} or "W*H" (e.g. "2048*2048"), got {show_text(size)}'
    msg = profile.sizes[mode].problem(int(m.group(1)), int(m.group(2)))
    if msg is None:
        return None
    return f"{size} {msg} ({profile.name}, {_MODE_NAMES[mode]})"


def color_palette_problem(palette: list[Any]) -> str | None:
    """Why ``palette`` is not a colour palette the service takes, or None."""
    low, high = PALETTE_COLOURS
    if not low <= len(palette) <= high:
        return f"must hold {low}-{high} colours (8 recommended); got {len(palette)}"
    total = 0
    for i, entry in enumerate(palette):
        if not isinstance(entry, dict) or set(entry) != {"hex", "ratio"}:
            return f'[{i}]: must be {{"hex": "#RRGGBB", "ratio": "25.00%"}}, got {show_json(entry)}'
        hex_, ratio = entry["hex"], entry["ratio"]
        if not isinstance(hex_, str) or _HEX.fullmatch(hex_) is None:
            return f'[{i}].hex: must be "#RRGGBB" (6 hex digits), got {show_json(hex_)}'
        m = _RATIO.fullmatch(ratio) if isinstance(ratio, str) else None
        if m is None:
            return (
                f'[{i}].ratio: must be a percentage with 2 decimals like "25.00%", '
                f"got {show_json(ratio)}"
            )
        total += int(m.group(1)) * 100 + int(m.group(2))
    if total != 10000:
        return (
            f"the ratios add up to {total // 100}.{total % 100:02d}%; they must add up to 100.00%"
        )
    return None


def bbox_list_problem(bbox_list: list[Any], count: int) -> str | None:
    """Why ``bbox_list`` is not one list of boxes per reference image (``count``), or None."""
    if count == 0:
        return "needs reference images: it lists boxes on each of them"
    if len(bbox_list) != count:
        return (
            f"must hold one list of boxes per reference image ({count}), [] for an image "
            f"without boxes; got {len(bbox_list)}"
        )
    for i, boxes in enumerate(bbox_list):
        if not isinstance(boxes, list):
            return f"[{i}]: must be a list of boxes [x1, y1, x2, y2], got {show_json(boxes)}"
        if len(boxes) > MAX_BOXES:
            return f"[{i}]: {len(boxes)} boxes; at most {MAX_BOXES} per image"
        for j, box in enumerate(boxes):
            ok = (
                isinstance(box, list)
                and len(box) == 4
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in box)
            )
            if not ok:
                return (
                    f"[{i}][{j}]: must be [x1, y1, x2, y2] in whole pixels of the image, "
                    f"got {show_json(box)}"
                )
            if not (box[0] < box[2] and box[1] < box[3]):
                return f"[{i}][{j}]: x1 < x2 and y1 < y2 is needed, got {show_json(box)}"
    return None


def _refused(model: str, name: str) -> str:
    if name in ("enable_interleave", "max_images"):
        return (
            f"{model} has no interleaved mode; use model wan2.6-image for it, or "
            "enable_sequential with n for an image set"
        )
    return f"{model} does not take {name} (wan2.6-image does); remove it"


#: Suffix of a message about a value that came from the run defaults, not the job line.
_RUN_DEFAULT = " (run default)"
