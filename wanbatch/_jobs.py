"""The job line: its model, how a line of text becomes one, and the job's id.

Owns the job file *format* (one JSON object per line, see ``docs/job-format.md``):

- :class:`Job`, the pydantic model of one line as written (``extra="forbid"``, frozen, strict
  JSON types: ``1.0`` is not an int, ``0`` and ``"true"`` are not booleans);
- :func:`parse_line`, JSON text -> :class:`Job`, raising :class:`~wanbatch._errors.JobFileError`
  with the offending field spelt as in the file (``images[2]``, ``parameters.seed``);
- :class:`Issue` and :class:`JobWarning`, a problem of a line; :class:`PlannedJob`, what the
  engine dispatches;
- :func:`check_id` and :func:`derive_job_id`, the id a line gives or gets.

The service's rules for a job are in :mod:`wanbatch._rules`, the request body built from it in
:mod:`wanbatch._requests`, duplicate ids in :mod:`wanbatch._ids`.

Pure: stdlib + pydantic only. No ``open()``, no clock, no aiohttp/anyio.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ._config import DEFAULT_MODEL
from ._errors import JobFileError

__all__ = [
    "FIELDS",
    "MAX_PLAIN_LINE_CHARS",
    "Issue",
    "Job",
    "JobWarning",
    "PlannedJob",
    "canonical_json",
    "check_id",
    "derive_job_id",
    "file_errors",
    "inline_image_chars",
    "oversize_problem",
    "parse_line",
    "parse_line_issues",
    "show_json",
    "show_text",
]

#: The longest job line without its inline images (``data:`` URIs): prompts, meta, parameters
#: of a real job are a few kilobytes; a megabyte is a mistake.
MAX_PLAIN_LINE_CHARS = 1024 * 1024

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)
#: Windows device names: a file "CON.png" or "nul" cannot be created there, whatever the case.
_RESERVED_IDS = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)


class Job(BaseModel):
    """One job line as written in the job file.

    Types are strict JSON types. Cross-field rules (modes, counts, ranges) are checked by
    :mod:`wanbatch._rules`, which knows the run defaults; this model only checks shapes.
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
    enable_sequential: bool | None = None
    thinking_mode: bool | None = None
    color_palette: list[Any] | None = None
    bbox_list: list[Any] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[Any] | None = None
    model: str = DEFAULT_MODEL
    meta: dict[str, Any] | None = None


#: The compiled validator, called directly: this runs once per line of a million-line file.
_validate_json = Job.__pydantic_validator__.validate_json

#: Every top-level field a job line may have.
FIELDS: tuple[str, ...] = tuple(Job.model_fields)


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
    model: str = DEFAULT_MODEL  #: the model the job runs on (its own, else the run's)


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
            f"invalid id {show_text(job_id)}: use 1-128 characters from A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit (it becomes a file name)"
        )
    if job_id.endswith("."):
        return (
            f"invalid id {show_text(job_id)}: must not end with '.' "
            "(Windows drops it in file names)"
        )
    stem = job_id.partition(".")[0]
    if len(stem) <= 4 and stem.upper() in _RESERVED_IDS:
        return f"invalid id {show_text(job_id)}: a reserved device name on Windows"
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
        return Issue(field, f"{base}, got {show_json(err.get('input'))}")
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


def inline_image_chars(job: Job) -> int:
    """Characters of the line's inline images (``data:`` URIs), wherever the job gives them."""
    refs: list[Any] = list(job.images or ())
    for message in job.messages or ():
        content = message.get("content") if isinstance(message, dict) else None
        for item in content if isinstance(content, list) else ():
            if isinstance(item, dict):
                refs.append(item.get("image"))
    return sum(len(ref) for ref in refs if isinstance(ref, str) and ref.startswith("data:"))


def file_errors(issues: list[Issue], path: str, lineno: int) -> list[JobFileError]:
    """The ``issues`` of line ``lineno`` of ``path`` as errors."""
    return [JobFileError(path, lineno, i.field, i.message) for i in issues]


def oversize_problem(job: Job, text: str) -> str | None:
    """Why a line is too long once its inline images are left out, or None."""
    if len(text) <= MAX_PLAIN_LINE_CHARS:
        return None
    plain = len(text) - inline_image_chars(job)
    if plain <= MAX_PLAIN_LINE_CHARS:
        return None
    return (
        f"is {plain:,} characters without its inline images; a job line may be at most "
        f"{MAX_PLAIN_LINE_CHARS // 1_048_576} MiB besides them (prompt, meta and parameters "
        "of a real job take a few KB)"
    )


# --------------------------------------------------------------------------- ids


def canonical_json(value: Any) -> str:
    """Key-sorted, whitespace-free JSON: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def derive_job_id(job: Job) -> str:
    """A stable id for a line without one: ``"j"`` + 16 hex digits of a sha256.

    Hashes the canonical JSON of the line's request fields (``id`` and ``meta`` left out), so
    the same line gives the same id whatever its key order or spacing, and whatever the run
    defaults (a changed body under the same id is caught by its fingerprint, see
    :func:`wanbatch._requests.fingerprint`).
    """
    # The fields as parsed (plain JSON values): much faster than model_dump, same content.
    fields = {k: v for k, v in job.__dict__.items() if v is not None and k not in _NOT_HASHED}
    digest = hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()
    return "j" + digest[:16]


_NOT_HASHED = frozenset({"id", "meta"})

# --------------------------------------------------------------------------- helpers


def show_text(text: str, limit: int = 60) -> str:
    """``text`` quoted, cut to ``limit`` characters (for messages)."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def show_json(value: Any, limit: int = 60) -> str:
    """``value`` as JSON text, cut to ``limit`` characters (for messages)."""
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
