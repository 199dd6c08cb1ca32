"""The service's rules for a job, applied before anything is paid for.

:func:`analyse_job` checks a parsed :class:`~wanbatch._jobs.Job` under the run defaults against
the service's documented limits, so that nothing it would reject is paid for, and warns about
what it would silently change (a prompt it cuts). It returns the :class:`JobSettings` a valid
job sends, from which :mod:`wanbatch._requests` builds the request body.

The job's ``model`` (else the run's ``--model``) picks a profile (:mod:`wanbatch._models`);
wan2.7 models follow :mod:`wanbatch._rules27`. Mode rule for wan2.6-image: ``enable_interleave``
if the job says so; otherwise no reference image means interleaved mode, images mean editing.

Pure: stdlib only. Image *contents* are not checked here (that needs I/O).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ._config import GenerationDefaults
from ._images import ImageError, classify_ref
from ._jobs import Issue, Job, show_json, show_text
from ._models import WAN26, ModelProfile, profile_of, unknown_model_problem
from ._rules27 import check27

__all__ = [
    "MAX_NEGATIVE_PROMPT_CHARS",
    "MAX_PROMPT_CHARS",
    "REFUSED_TEXT_CHARS",
    "JobSettings",
    "analyse_job",
    "check_job",
]

#: The service reads at most 2000 characters of a prompt and cuts the rest silently (a warning).
MAX_PROMPT_CHARS = 2000
#: The same for negative_prompt, at 500 characters.
MAX_NEGATIVE_PROMPT_CHARS = 500
#: A prompt or negative_prompt longer than this is an error, not a warning: ten times what the
#: service reads is a mistake (a pasted file, a broken generator), not a prompt.
REFUSED_TEXT_CHARS = 20_000
#: The service's seed range.
MAX_SEED = 2_147_483_647
#: The service's size bounds: total pixels of "W*H" (its aspect ratio must be 1:4 to 4:1).
MIN_PIXELS = 768 * 768
MAX_PIXELS_EDIT = 2048 * 2048
MAX_PIXELS_INTERLEAVE = 1280 * 1280
#: Reference images per mode (editing, interleaved), as the service takes them.
EDIT_IMAGES = (1, 4)
INTERLEAVE_IMAGES = (0, 1)
_SIZE = re.compile(r"([0-9]{1,6})\*([0-9]{1,6})", re.ASCII)

#: Job fields that are API parameters: they may not also appear inside ``parameters``.
_MODELLED_PARAMS = (
    "negative_prompt",
    "size",
    "n",
    "seed",
    "prompt_extend",
    "watermark",
    "enable_interleave",
    "max_images",
    "enable_sequential",
    "thinking_mode",
    "color_palette",
    "bbox_list",
)


@dataclass(frozen=True, slots=True)
class JobSettings:
    """What a valid job sends, before its images are resolved (from :func:`analyse_job`)."""

    interleave: bool
    prompt: str
    refs: tuple[tuple[str, str], ...]  # (field, reference) in send order
    params: dict[str, Any]  # parameters to send (mode keys excluded), in a fixed order
    max_new_images: int
    size: str | None
    seed: int | None
    model: str = WAN26.name


def check_job(job: Job, defaults: GenerationDefaults) -> list[Issue]:
    """Every rule problem of ``job`` under ``defaults`` (errors and warnings), in rule order."""
    _eff, issues = analyse_job(job, defaults)
    return issues


def analyse_job(job: Job, defaults: GenerationDefaults) -> tuple[JobSettings | None, list[Issue]]:
    """Apply the service's rules to ``job`` under the run ``defaults``.

    Returns:
        ``(settings, issues)``: ``settings`` is None when any issue is an error; ``issues``
        holds errors and warnings (``Issue.warning``) in rule order. Image *contents* are not
        checked here (that needs I/O): see ``resolve_image`` in
        :func:`wanbatch._requests.build_body`.
    """
    issues: list[Issue] = []
    add = issues.append

    # The job's model, else the run's (--model); its profile holds the rules (_models).
    model = job.model if "model" in job.model_fields_set else defaults.model or job.model
    profile = profile_of(model)
    if profile is None:
        add(Issue("model", unknown_model_problem(model)))
        profile = WAN26

    # --- prompt and images, or raw messages (the API's input.messages) ----------------------
    prompt: str | None = None
    refs: list[tuple[str, str]] = []
    if job.messages is not None:
        for name, value in (("prompt", job.prompt), ("images", job.images)):
            if value is not None:
                add(Issue(name, f"give either messages or prompt/images, not both ('{name}')"))
        prompt = _check_messages(job.messages, refs, add)
    elif job.prompt is None:
        add(Issue("prompt", "missing: every job needs a prompt (or raw messages)"))
    else:
        prompt = job.prompt
        if not prompt.strip():
            add(Issue("prompt", "empty: the prompt must have text"))
        if job.images:
            refs.extend((f"images[{i}]", ref) for i, ref in enumerate(job.images))
    if prompt is not None and len(prompt) > profile.max_prompt_chars:
        field = "prompt" if job.messages is None else "messages"
        add(_length_issue(field, "prompt", len(prompt), profile.max_prompt_chars))
    for field, ref in refs:
        if ref[:8] != "https://":  # the common case needs no parsing
            try:
                classify_ref(ref)
            except ImageError as exc:
                add(Issue(field, str(exc)))

    count = len(refs)
    images_field = "messages" if job.messages is not None else "images"
    if profile.family == "wan2.7":
        checked = check27(job, defaults, profile, count, images_field, add)
        return _settings(job, profile, prompt, refs, issues, checked.params)
    for name in sorted(profile.refused):
        if getattr(job, name) is not None:
            add(Issue(name, f"a wan2.7 parameter: {profile.name} does not take it"))

    # --- mode (enable_interleave, or whether the job has reference images) -------------------
    interleave = job.enable_interleave if job.enable_interleave is not None else count == 0
    if interleave and count > INTERLEAVE_IMAGES[1]:
        add(
            Issue(
                images_field,
                f"{count} reference images: interleaved mode (enable_interleave true) takes 0 or 1",
            )
        )
    elif not interleave and count == 0:
        add(
            Issue(
                "enable_interleave",
                "editing mode (enable_interleave false) needs 1-4 "
                "reference images and this job has none; drop the flag to generate from "
                "text in interleaved mode",
            )
        )
    elif not interleave and count > EDIT_IMAGES[1]:
        add(Issue(images_field, f"{count} reference images: editing mode takes 1-4"))

    # --- parameters; the job's own value overrides the run default -------------------------
    # (Written out rather than through helpers: this runs once per line of a million-line file.)
    params: dict[str, Any] = {}
    pe = job.prompt_extend if job.prompt_extend is not None else defaults.prompt_extend
    if pe is not None:
        params["prompt_extend"] = pe
    wm = job.watermark if job.watermark is not None else defaults.watermark
    if wm is not None:
        params["watermark"] = wm

    max_new = 0
    if interleave:
        # The service refuses any other n in interleaved mode ("num_images_per_prompt must be 1").
        if job.n is not None and job.n != 1:
            add(
                Issue(
                    "n",
                    f"must be 1 in interleaved mode (the service refuses any other value); "
                    f"got {job.n}; use max_images for more images",
                )
            )
        mi, src = job.max_images, ""
        if mi is None:
            mi, src = defaults.max_images, _RUN_DEFAULT
        if 1 <= mi <= 5:
            params["max_images"] = mi
            max_new = mi
        else:
            add(_range_issue("max_images", mi, 1, 5, src, " in interleaved mode"))
    else:
        n, src = job.n, ""
        if n is None:
            n, src = defaults.n, _RUN_DEFAULT
        if 1 <= n <= 4:
            params["n"] = n
            max_new = n
        else:
            add(_range_issue("n", n, 1, 4, src, " in editing mode"))
        if job.max_images is not None:
            add(
                Issue(
                    "max_images",
                    "ignored in editing mode (n sets the image count there)",
                    warning=True,
                )
            )
            if not 1 <= job.max_images <= 5:
                add(_range_issue("max_images", job.max_images, 1, 5, ""))

    size, src = job.size, ""
    if size is None:
        size, src = defaults.size, _RUN_DEFAULT
    if size is not None:
        msg = _size_problem(size, interleave)
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
            add(_range_issue("seed", seed, 0, MAX_SEED, src))

    neg = job.negative_prompt if job.negative_prompt is not None else defaults.negative_prompt
    if neg is not None:
        params["negative_prompt"] = neg
        if len(neg) > MAX_NEGATIVE_PROMPT_CHARS:
            add(
                _length_issue(
                    "negative_prompt", "negative_prompt", len(neg), MAX_NEGATIVE_PROMPT_CHARS
                )
            )

    return _settings(job, profile, prompt, refs, issues, params, interleave, max_new)


def _settings(
    job: Job,
    profile: ModelProfile,
    prompt: str | None,
    refs: list[tuple[str, str]],
    issues: list[Issue],
    params: dict[str, Any],
    interleave: bool = False,
    max_new: int | None = None,
) -> tuple[JobSettings | None, list[Issue]]:
    """Add the passthrough ``parameters`` (fields wanbatch does not model, sent as-is)."""
    for key, value in job.parameters.items() if job.parameters else ():
        field = f"parameters.{key}"
        if key in profile.refused:
            issues.append(Issue(field, f"{profile.name} does not take '{key}'; remove it"))
        elif key in _MODELLED_PARAMS:
            msg = f"'{key}' is a job field: write it at the top level of the line"
            issues.append(Issue(field, msg + ", not inside parameters"))
        elif key == "stream":
            msg = "set by wanbatch from the mode (true in interleaved mode); remove it"
            issues.append(Issue(field, msg))
        else:
            params[key] = value
    if prompt is None or (issues and any(not i.warning for i in issues)):
        return None, issues
    eff = JobSettings(
        interleave=interleave,
        prompt=prompt,
        refs=tuple(refs),
        params=params,
        max_new_images=params["n"] if max_new is None else max_new,
        size=params.get("size"),
        seed=params.get("seed"),
        model=profile.name,
    )
    return eff, issues


def _check_messages(
    messages: list[Any], refs: list[tuple[str, str]], add: Callable[[Issue], None]
) -> str | None:
    """Check raw ``input.messages`` as the service does; return the text."""
    if len(messages) != 1:
        add(
            Issue(
                "messages",
                f"must hold exactly 1 message, got {len(messages)} "
                "(the service takes a single turn)",
            )
        )
        return None
    msg = messages[0]
    if not isinstance(msg, dict):
        add(Issue("messages[0]", f"must be an object, got {show_json(msg)}"))
        return None
    ok = True
    for key in msg:
        if key not in ("role", "content"):
            add(Issue(f"messages[0].{key}", "unknown key: a message has only role and content"))
            ok = False
    if msg.get("role") != "user":
        add(Issue("messages[0].role", f'must be "user", got {show_json(msg.get("role"))}'))
        ok = False
    content = msg.get("content")
    if not isinstance(content, list):
        add(
            Issue(
                "messages[0].content",
                f'must be a list of {{"text": ...}} and '
                f'{{"image": ...}} items, got {show_json(content)}',
            )
        )
        return None
    texts: list[str] = []
    for j, item in enumerate(content):
        field = f"messages[0].content[{j}]"
        if not isinstance(item, dict) or len(item) != 1 or not ({"text", "image"} >= item.keys()):
            add(Issue(field, 'must be {"text": ...} or {"image": ...}, got ' + show_json(item)))
            ok = False
            continue
        key, value = next(iter(item.items()))
        if not isinstance(value, str):
            add(Issue(f"{field}.{key}", f"must be a string, got {show_json(value)}"))
            ok = False
        elif key == "text":
            texts.append(value)
        else:
            refs.append((f"{field}.image", value))
    if len(texts) != 1:
        add(
            Issue(
                "messages[0].content",
                f"must hold exactly one text item, got {len(texts)}",
            )
        )
        return None
    if not texts[0].strip():
        add(Issue("messages[0].content", "the text item is empty: the prompt must have text"))
        return None
    return texts[0] if ok else None


@lru_cache(maxsize=256)
def _size_problem(size: str, interleave: bool) -> str | None:
    """Why ``size`` is refused in this mode, or None."""
    if size in ("1K", "2K"):
        if interleave:
            # Team decision: the doc lists only "W*H" for interleaved mode; the mock agrees.
            return (
                f"'{size}' is for editing mode only; interleaved mode takes \"W*H\" "
                '(e.g. "1280*1280")'
            )
        return None
    m = _SIZE.fullmatch(size)
    if m is None:
        allowed = '"W*H"' if interleave else '"1K", "2K" or "W*H"'
        return f'must be {allowed} (e.g. "1280*1280"), got {show_text(size)}'
    w, h = int(m.group(1)), int(m.group(2))
    top = MAX_PIXELS_INTERLEAVE if interleave else MAX_PIXELS_EDIT
    top_txt = "1280*1280" if interleave else "2048*2048"
    mode = "interleaved" if interleave else "editing"
    if not MIN_PIXELS <= w * h <= top:
        return f"{size} is {w * h} pixels; {mode} mode takes 768*768 to {top_txt} in total"
    if 4 * w < h or 4 * h < w:
        return f"{size} has an aspect ratio outside 1:4 to 4:1 (the service's limit)"
    return None


#: Suffix of a message about a value that came from the run defaults, not the job line.
_RUN_DEFAULT = " (run default)"


def _range_issue(field: str, value: int, low: int, high: int, src: str, where: str = "") -> Issue:
    return Issue(field, f"must be {low}-{high}{where}; got {value}{src}")


def _length_issue(field: str, what: str, length: int, limit: int) -> Issue:
    """A text the service cuts: a warning, or an error when it is far too long to be meant."""
    if length > REFUSED_TEXT_CHARS:
        return Issue(
            field,
            f"{what} is {length:,} characters; the service would silently truncate it to "
            f"{limit}, and over {REFUSED_TEXT_CHARS:,} wanbatch takes it for a mistake",
        )
    return Issue(
        field,
        f"{what} is {length} characters; the service silently truncates it to {limit}",
        warning=True,
    )
