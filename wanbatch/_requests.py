"""The API request body built from a job, and what the engine dispatches.

- :func:`build_body`, the exact request body, run defaults applied (cost-safe: ``n`` and
  ``max_images`` come from :class:`~wanbatch._config.GenerationDefaults`, both 1);
- :func:`build_planned_job`, a parsed line checked (:mod:`wanbatch._rules`) and turned into the
  :class:`~wanbatch._jobs.PlannedJob` the engine sends;
- :func:`fingerprint`, the body's hash: a changed job under an existing id shows.

Pure: stdlib only. Reading local images is the loader's job: it passes a ``resolve_image``
callable in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ._config import GenerationDefaults
from ._errors import JobFileError
from ._jobs import Issue, Job, JobWarning, PlannedJob, canonical_json, derive_job_id
from ._models import PROFILES
from ._rules import JobSettings, analyse_job

__all__ = ["ResolveImage", "build_body", "build_planned_job", "fingerprint"]

ResolveImage = Callable[[str], str]
"""Turns an ``images`` entry into what is sent (URL as-is, data URI checked, local file read).

Raises :class:`ValueError` (e.g. :class:`~wanbatch._images.ImageError`) with a message when the
image breaks a rule."""


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
    if PROFILES[eff.model].event_stream:  # wan2.6-image: the mode flag is always sent
        params["enable_interleave"] = eff.interleave
    if eff.interleave:
        params["stream"] = True
    body = {
        "model": eff.model,
        "input": {"messages": [{"role": "user", "content": content}]},
        "parameters": params,
    }
    return body, errors


def build_planned_job(
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
        model=eff.model,
    )
    return planned, errors, warnings


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


@lru_cache(maxsize=64)
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
