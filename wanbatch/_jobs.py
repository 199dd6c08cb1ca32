"""The job line: its model, its rules, and the exact API request body built from it.

Owns the job file *format* (one JSON object per line, see ``docs/job-format.md``):

- :class:`Job`, the pydantic model of one line as written (``extra="forbid"``, frozen, strict
  JSON types: ``1.0`` is not an int, ``0`` and ``"true"`` are not booleans);
- :func:`parse_line`, JSON text -> :class:`Job`, raising :class:`~wanbatch._errors.JobFileError`
  with the offending field spelt as in the file (``images[2]``, ``parameters.seed``);
- :func:`check_job`, the rules that mirror the service's documented limits so that nothing it
  would reject is paid for, plus warnings for what it would silently change;
- :func:`build_body`, the exact request body, run defaults applied (cost-safe: ``n`` and
  ``max_images`` come from :class:`~wanbatch._config.GenerationDefaults`, both 1);
- :func:`plan_job` -> :class:`PlannedJob`, what the engine dispatches; :func:`derive_job_id`
  and :func:`fingerprint`; :class:`IdSet`, duplicate-id detection in 8 bytes per id.

Mode rule (README, Job file): ``enable_interleave`` if the job says so;
otherwise a job with no reference image runs in interleaved mode (the service's text-to-image
path) and a job with images runs in editing mode.

Pure: stdlib + pydantic only. No ``open()``, no clock, no aiohttp/anyio. Reading local images is
:mod:`wanbatch._loader`'s job: it passes a ``resolve_image`` callable in.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ._config import DEFAULT_MODEL, GenerationDefaults
from ._errors import JobFileError
from ._images import ImageError, classify_ref

__all__ = [
    "FIELDS",
    "MAX_NEGATIVE_PROMPT_CHARS",
    "MAX_PROMPT_CHARS",
    "REFUSED_TEXT_CHARS",
    "IdSet",
    "Issue",
    "Job",
    "JobSettings",
    "JobWarning",
    "PlannedJob",
    "ResolveImage",
    "analyse_job",
    "build_body",
    "canonical_json",
    "check_id",
    "check_job",
    "derive_job_id",
    "fingerprint",
    "inline_image_chars",
    "parse_line",
    "parse_line_issues",
    "plan_job",
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

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)
#: Windows device names: a file "CON.png" or "nul" cannot be created there, whatever the case.
_RESERVED_IDS = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)
_SIZE = re.compile(r"([0-9]{1,6})\*([0-9]{1,6})", re.ASCII)

ResolveImage = Callable[[str], str]
"""Turns an ``images`` entry into what is sent (URL as-is, data URI checked, local file read).

Raises :class:`ValueError` (e.g. :class:`~wanbatch._images.ImageError`) with a message when the
image breaks a rule."""


class Job(BaseModel):
    """One job line as written in the job file.

    Types are strict JSON types. Cross-field rules (modes, counts, ranges) are checked by
    :func:`check_job`, which knows the run defaults; this model only checks shapes.
    """

    # cache_strings="keys": prompts are unique; caching values would only hold memory.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, cache_strings="keys")

    id: str | None = None
    prompt: str | None = None
    images: list[str] | None = None
    negative_prompt: str | None = None
    size: str | None = None
    n: int | None = None
    seed: int | None = None
    prompt_extend: bool | None = None
    watermark: bool | None = None
    enable_interleave: bool | None = None
    max_images: int | None = None
    parameters: dict[str, Any] | None = None
    messages: list[Any] | None = None
    model: str = DEFAULT_MODEL
    meta: dict[str, Any] | None = None


#: The compiled validator, called directly: this runs once per line of a million-line file.
_validate_json = Job.__pydantic_validator__.validate_json

#: Every top-level field a job line may have.
FIELDS: tuple[str, ...] = tuple(Job.model_fields)
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
)


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a job line, before it is tied to a file and line."""

    field: str
    message: str
    warning: bool = False


@dataclass(frozen=True, slots=True)
class JobWarning:
    """Something the service would silently change (e.g. truncate); the job still runs."""

    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        """``PATH:LINE: field: warning: message``, as ``wanbatch validate`` prints it."""
        return f"{self.path}:{self.line}: {self.field}: warning: {self.message}"


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """A validated job, ready to send: what the engine dispatches."""

    id: str  #: given, or derived by :func:`derive_job_id`
    line: int  #: 1-based line number in the job file
    body: dict[str, Any]  #: the exact API request body (defaults applied, images resolved)
    interleave: bool  #: True: interleaved mode, answered as an SSE stream
    max_new_images: int  #: most images one call buys: n (editing) or max_images (interleaved)
    prompt: str | None
    meta: dict[str, Any] | None
    fingerprint: str  #: sha256 hex of the canonical body: detects a changed job under its id
    source: str  #: the original line text (for failed.jsonl)
    size: str | None = None  #: the size sent, if any (for metadata.jsonl)
    seed: int | None = None  #: the seed sent, if any (for metadata.jsonl)
    image_count: int = 0  #: number of reference images sent
    id_derived: bool = False  #: True when the line had no id and :func:`derive_job_id` made it


# --------------------------------------------------------------------------- parsing


def parse_line(text: str, lineno: int, path: str) -> Job:
    """Parse one job line (JSON text, no trailing newline needed) into a :class:`Job`.

    Raises:
        JobFileError: the first problem, with ``line=lineno`` and the field as written.
    """
    result = parse_line_issues(text)
    if isinstance(result, Job):
        return result
    first = result[0]
    raise JobFileError(path, lineno, first.field, first.message)


def parse_line_issues(text: str) -> Job | list[Issue]:
    """Parse one line into a :class:`Job`, or the list of every shape problem in it."""
    try:
        job: Job = _validate_json(text)
    except ValidationError as exc:
        return [_issue_from_pydantic(err) for err in exc.errors(include_url=False)]
    if job.id is not None:
        msg = check_id(job.id)
        if msg is not None:
            return [Issue("id", msg)]
    # The JSON parser takes NaN/Infinity (and 1e999 becomes inf), which are not JSON: they
    # would make the request body, or metadata.jsonl, unreadable to strict parsers.
    for name, value in (
        ("parameters", job.parameters),
        ("meta", job.meta),
        ("messages", job.messages),
    ):
        if value:
            where = _non_finite(value, name)
            if where is not None:
                return [Issue(where, "NaN and Infinity are not JSON numbers")]
    return job


def _non_finite(value: Any, where: str) -> str | None:
    """The dotted path of the first NaN/Infinity float inside ``value``, or None."""
    if isinstance(value, float):
        return where if value - value != 0.0 else None  # inf - inf and nan - nan are nan
    if isinstance(value, dict):
        for key, item in value.items():
            found = _non_finite(item, f"{where}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _non_finite(item, f"{where}[{i}]")
            if found is not None:
                return found
    return None


def check_id(job_id: str) -> str | None:
    """Why ``job_id`` is not a usable id (it becomes ``images/<id>-<k>.png``), or None."""
    if _ID.fullmatch(job_id) is None:
        return (
            f"invalid id {_show(job_id)}: use 1-128 characters from A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit (it becomes a file name)"
        )
    if job_id.endswith("."):
        return f"invalid id {_show(job_id)}: must not end with '.' (Windows drops it in file names)"
    stem = job_id.partition(".")[0]
    if len(stem) <= 4 and stem.upper() in _RESERVED_IDS:
        return f"invalid id {_show(job_id)}: a reserved device name on Windows"
    return None


_TYPE_MESSAGES = {
    "bool_type": "must be true or false (a JSON boolean)",
    "int_type": "must be a whole number (a JSON integer)",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
}


def _issue_from_pydantic(err: Any) -> Issue:
    etype: str = err["type"]
    loc: tuple[int | str, ...] = tuple(err["loc"])
    if etype == "json_invalid":
        detail = str(err.get("ctx", {}).get("error", err["msg"]))
        detail = re.sub(r" at line 1 column (\d+)$", r" (column \1)", detail)
        return Issue("line", f"not valid JSON: {detail}")
    if not loc:
        return Issue("line", f"expected a JSON object, got {_json_kind(err.get('input'))}")
    field = _dotted(loc)
    if etype == "extra_forbidden" and len(loc) == 1:
        name = str(loc[0])
        close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return Issue(field, f"unknown field '{name}'{hint}")
    base = _TYPE_MESSAGES.get(etype)
    if base is not None:
        return Issue(field, f"{base}, got {_show_json(err.get('input'))}")
    return Issue(field, str(err["msg"]))


def _dotted(loc: tuple[int | str, ...]) -> str:
    """``("images", 2)`` -> ``images[2]``; ``("parameters", "seed")`` -> ``parameters.seed``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# --------------------------------------------------------------------------- rules


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


def check_job(job: Job, defaults: GenerationDefaults) -> list[Issue]:
    """Every rule problem of ``job`` under ``defaults`` (errors and warnings), in rule order."""
    _eff, issues = analyse_job(job, defaults)
    return issues


def analyse_job(job: Job, defaults: GenerationDefaults) -> tuple[JobSettings | None, list[Issue]]:
    """Apply the service's rules to ``job`` under the run ``defaults``.

    Returns:
        ``(settings, issues)``: ``settings`` is None when any issue is an error; ``issues``
        holds errors and warnings (``Issue.warning``) in rule order. Image *contents* are not
        checked here (that needs I/O): see ``resolve_image`` in :func:`build_body`.
    """
    issues: list[Issue] = []
    add = issues.append

    # The model must be "wan2.6-image": only its rules are known here.
    if job.model != DEFAULT_MODEL:
        add(Issue("model", f"only '{DEFAULT_MODEL}' is supported, got {_show(job.model)}"))

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
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        add(
            _length_issue(
                "prompt" if job.messages is None else "messages",
                "prompt",
                len(prompt),
                MAX_PROMPT_CHARS,
            )
        )
    for field, ref in refs:
        if ref[:8] != "https://":  # the common case needs no parsing
            try:
                classify_ref(ref)
            except ImageError as exc:
                add(Issue(field, str(exc)))

    # --- mode (enable_interleave, or whether the job has reference images) -------------------
    count = len(refs)
    interleave = job.enable_interleave if job.enable_interleave is not None else count == 0
    images_field = "messages" if job.messages is not None else "images"
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

    # --- passthrough: fields wanbatch does not model, sent as-is -----------------------------
    for key, value in job.parameters.items() if job.parameters else ():
        field = f"parameters.{key}"
        if key in _MODELLED_PARAMS:
            add(
                Issue(
                    field,
                    f"'{key}' is a job field: write it at the top level of the line, "
                    "not inside parameters",
                )
            )
        elif key == "stream":
            add(
                Issue(
                    field,
                    "set by wanbatch from the mode (true in interleaved mode); remove it",
                )
            )
        else:
            params[key] = value

    if prompt is None or (issues and any(not i.warning for i in issues)):
        return None, issues
    eff = JobSettings(
        interleave=interleave,
        prompt=prompt,
        refs=tuple(refs),
        params=params,
        max_new_images=max_new,
        size=params.get("size"),
        seed=params.get("seed"),
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
        add(Issue("messages[0]", f"must be an object, got {_show_json(msg)}"))
        return None
    ok = True
    for key in msg:
        if key not in ("role", "content"):
            add(Issue(f"messages[0].{key}", "unknown key: a message has only role and content"))
            ok = False
    if msg.get("role") != "user":
        add(Issue("messages[0].role", f'must be "user", got {_show_json(msg.get("role"))}'))
        ok = False
    content = msg.get("content")
    if not isinstance(content, list):
        add(
            Issue(
                "messages[0].content",
                f'must be a list of {{"text": ...}} and '
                f'{{"image": ...}} items, got {_show_json(content)}',
            )
        )
        return None
    texts: list[str] = []
    for j, item in enumerate(content):
        field = f"messages[0].content[{j}]"
        if not isinstance(item, dict) or len(item) != 1 or not ({"text", "image"} >= item.keys()):
            add(Issue(field, 'must be {"text": ...} or {"image": ...}, got ' + _show_json(item)))
            ok = False
            continue
        key, value = next(iter(item.items()))
        if not isinstance(value, str):
            add(Issue(f"{field}.{key}", f"must be a string, got {_show_json(value)}"))
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
        return f'must be {allowed} (e.g. "1280*1280"), got {_show(size)}'
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


# --------------------------------------------------------------------------- bodies


def build_body(
    job: Job,
    defaults: GenerationDefaults,
    resolve_image: ResolveImage,
    *,
    path: str = "<job>",
    line: int = 0,
) -> dict[str, Any]:
    """The exact API request body for ``job``, run ``defaults`` applied.

    ``{"model", "input": {"messages": [{"role": "user", "content": [{"text"}, {"image"}...]}]},
    "parameters": {...}}``. Editing mode sends ``n``; interleaved mode sends ``max_images``,
    ``enable_interleave: true`` and ``stream: true`` (the doc asks for the body flag as well as
    the SSE header). Defaults that are None are not sent.

    Raises:
        JobFileError: the first rule the job breaks (``path``/``line`` label the error).
    """
    eff, issues = analyse_job(job, defaults)
    errors = [i for i in issues if not i.warning]
    if eff is None or errors:
        first = errors[0]
        raise JobFileError(path, line, first.field, first.message)
    body, image_errors = _body(job, eff, resolve_image)
    if image_errors:
        raise JobFileError(path, line, image_errors[0].field, image_errors[0].message)
    return body


def _body(
    job: Job, eff: JobSettings, resolve_image: ResolveImage
) -> tuple[dict[str, Any], list[Issue]]:
    errors: list[Issue] = []
    resolved: dict[str, str] = {}
    for field, ref in eff.refs:
        try:
            resolved[field] = resolve_image(ref)
        except ValueError as exc:
            errors.append(Issue(field, str(exc)))
    if job.messages is None:
        content: list[dict[str, str]] = [{"text": eff.prompt}]
        content.extend({"image": resolved.get(f, r)} for f, r in eff.refs)
    else:
        # Keep the user's item order; only image values are replaced by what is sent.
        content = []
        for j, item in enumerate(job.messages[0]["content"]):
            if "image" in item:
                field = f"messages[0].content[{j}].image"
                content.append({"image": resolved.get(field, item["image"])})
            else:
                content.append({"text": item["text"]})
    params = dict(eff.params)
    params["enable_interleave"] = eff.interleave
    if eff.interleave:
        params["stream"] = True
    body = {
        "model": job.model,
        "input": {"messages": [{"role": "user", "content": content}]},
        "parameters": params,
    }
    return body, errors


def plan_job(
    job: Job,
    defaults: GenerationDefaults,
    resolve_image: ResolveImage,
    *,
    path: str,
    line: int,
    source: str,
    with_fingerprint: bool = True,
) -> tuple[PlannedJob | None, list[JobFileError], list[JobWarning]]:
    """Check ``job`` and build what the engine sends; report every problem of the line.

    Args:
        with_fingerprint: False skips hashing the body (validation needs no fingerprint).

    Returns:
        ``(planned, errors, warnings)``: ``planned`` is None when there is any error.
    """
    eff, issues = analyse_job(job, defaults)
    errors = [JobFileError(path, line, i.field, i.message) for i in issues if not i.warning]
    warnings = [JobWarning(path, line, i.field, i.message) for i in issues if i.warning]
    if eff is None or errors:
        return None, errors, warnings
    body, image_errors = _body(job, eff, resolve_image)
    if image_errors:
        errors = [JobFileError(path, line, i.field, i.message) for i in image_errors]
        return None, errors, warnings
    planned = PlannedJob(
        id=job.id if job.id is not None else derive_job_id(job),
        line=line,
        body=body,
        interleave=eff.interleave,
        max_new_images=eff.max_new_images,
        prompt=eff.prompt,
        meta=job.meta,
        fingerprint=fingerprint(body) if with_fingerprint else "",
        source=source,
        size=eff.size,
        seed=eff.seed,
        image_count=len(eff.refs),
        id_derived=job.id is None,
    )
    return planned, errors, warnings


def inline_image_chars(job: Job) -> int:
    """Characters of the line's inline images (``data:`` URIs), wherever the job gives them."""
    refs: list[Any] = list(job.images or ())
    for message in job.messages or ():
        content = message.get("content") if isinstance(message, dict) else None
        for item in content if isinstance(content, list) else ():
            if isinstance(item, dict):
                refs.append(item.get("image"))
    return sum(len(ref) for ref in refs if isinstance(ref, str) and ref.startswith("data:"))


# --------------------------------------------------------------------------- ids & hashes


def canonical_json(value: Any) -> str:
    """Key-sorted, whitespace-free JSON: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def derive_job_id(job: Job) -> str:
    """A stable id for a line without one: ``"j"`` + 16 hex digits of a sha256.

    Hashes the canonical JSON of the line's request fields (``id`` and ``meta`` left out), so
    the same line gives the same id whatever its key order or spacing, and whatever the run
    defaults (a changed body under the same id is caught by :func:`fingerprint`).
    """
    # The fields as parsed (plain JSON values): much faster than model_dump, same content.
    fields = {k: v for k, v in job.__dict__.items() if v is not None and k not in _NOT_HASHED}
    digest = hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()
    return "j" + digest[:16]


def fingerprint(body: dict[str, Any]) -> str:
    """sha256 hex of the canonical request body: a changed job under an existing id shows.

    Inline images (data URIs, possibly megabytes and shared by many jobs) enter as their own
    sha256, memoised, so a shared image is hashed once rather than once per job.
    """
    messages = body.get("input", {}).get("messages")
    if messages:
        content = [
            {"image": "sha256:" + _digest(item["image"])}
            if isinstance(item.get("image"), str) and item["image"].startswith("data:")
            else item
            for item in messages[0].get("content", ())
        ]
        body = {**body, "input": {"messages": [{**messages[0], "content": content}]}}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


_NOT_HASHED = frozenset({"id", "meta"})


@lru_cache(maxsize=64)
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class IdSet:
    """A set of job ids kept as 64-bit hashes in open-addressing arrays, with each id's line.

    12 bytes per slot (about 24 MB for a million ids), where a ``dict`` of ``str`` would take
    well over 100 MB. Two different ids share a hash with odds around 1e-8 in a million-line
    file (and the hash is salted per process, so such a false duplicate would not repeat).
    """

    __slots__ = ("_count", "_keys", "_limit", "_lines", "_mask")

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._count = 0
        self._alloc(1 << max(4, (capacity - 1).bit_length()))

    def _alloc(self, size: int) -> None:
        self._keys = array("Q", bytes(8 * size))
        self._lines = array("I", bytes(4 * size))
        self._mask = size - 1
        self._limit = size * 7 // 10

    def __len__(self) -> int:
        """Number of distinct id hashes held."""
        return self._count

    @staticmethod
    def key(job_id: str) -> int:
        """The id's nonzero 64-bit hash (0 marks an empty slot)."""
        h = hash(job_id) & 0xFFFF_FFFF_FFFF_FFFF
        return h or 1

    def add(self, job_id: str, line: int = 0) -> int:
        """Add ``job_id`` seen on ``line``; return 0 if new, else the line it was first seen on
        (``line`` 0 is stored as 0, so pass real line numbers to tell "new" from "seen")."""
        return self.add_key_line((hash(job_id) & 0xFFFF_FFFF_FFFF_FFFF) or 1, line)

    def add_key_line(self, h: int, line: int) -> int:
        """Add a hash from :meth:`key`; 0 if new, else the first line stored for it (>= 1)."""
        keys, mask = self._keys, self._mask
        i = h & mask
        while True:
            k = keys[i]
            if k == 0:
                keys[i] = h
                self._lines[i] = line
                self._count += 1
                if self._count > self._limit:
                    self._grow()
                return 0
            if k == h:
                return self._lines[i] or 1
            i = (i + 1) & mask

    def __contains__(self, job_id: object) -> bool:
        """True if ``job_id``'s hash was added."""
        return isinstance(job_id, str) and self.get(job_id) > 0

    def get(self, job_id: str) -> int:
        """The line ``job_id`` was first added with (>= 1), or 0 when it was not added."""
        h = self.key(job_id)
        keys, mask = self._keys, self._mask
        i = h & mask
        while True:
            k = keys[i]
            if k == 0:
                return 0
            if k == h:
                return self._lines[i] or 1
            i = (i + 1) & mask

    def _grow(self) -> None:
        old_keys, old_lines = self._keys, self._lines
        self._alloc(2 * len(old_keys))
        keys, lines, mask = self._keys, self._lines, self._mask
        for h, line in zip(old_keys, old_lines, strict=True):
            if h:  # re-insert; the keys are distinct, so only empty slots are looked for
                i = h & mask
                while keys[i]:
                    i = (i + 1) & mask
                keys[i] = h
                lines[i] = line


# --------------------------------------------------------------------------- helpers


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _show_json(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__
