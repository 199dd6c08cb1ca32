"""The whole job file checked in one streaming pass, before any money is spent.

:func:`validate_file` reports every problem of the file (errors and warnings, in line order,
each naming its line and field) in constant memory; :func:`format_report`,
:func:`first_problems` and :func:`validate_command` print it as ``wanbatch validate`` does.
A line is checked as :func:`wanbatch._loader.iter_jobs` would plan it, without building its
request body: local images are checked, not kept.

Stage (jobs): imports the jobs stage's I/O helpers, the pure core and the stdlib.
"""

from __future__ import annotations

import heapq
import itertools
import os
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from ._columns import MAX_COLUMNS, TEXT, Kind, describe, kind_of, unify
from ._config import DEFAULT_MODEL, GenerationDefaults
from ._donejobs import DoneLines
from ._doneprefix import DonePrefix
from ._errors import JobFileError
from ._ids import JobIds, check_done_id, check_new_id, given_id
from ._imagefiles import ImageResolver
from ._jobinput import JobInput
from ._jobs import (
    Issue,
    JobWarning,
    derive_job_id,
    file_errors,
    oversize_problem,
    parse_line_issues,
)
from ._jobsource import open_jobs
from ._models import PROFILES, not_offered_problem
from ._rules import analyse_job

__all__ = [
    "ValidationReport",
    "first_problems",
    "format_report",
    "validate_command",
    "validate_file",
]


@dataclass(slots=True)
class ValidationReport:
    """The result of :func:`validate_file`: every problem of the file, in line order."""

    path: str
    errors: list[JobFileError] = field(default_factory=list)  #: the first ``max_errors``
    warnings: list[JobWarning] = field(default_factory=list)  #: the first ``max_errors``
    error_count: int = 0  #: all errors, including those past the cap
    warning_count: int = 0
    invalid_lines: int = 0  #: lines with at least one error (what ``skip_invalid`` skips)
    lines: int = 0  #: physical lines read
    jobs: int = 0  #: non-blank lines, valid or not
    valid_jobs: int = 0
    interleaved: int = 0  #: valid jobs in interleaved mode (the rest edit)
    other_models: int = 0  #: valid jobs on another model than wan2.6-image (no such modes)
    images: int = 0  #: most images a run may buy: sum of max_new_images of valid jobs
    skipped_done: int = 0  #: valid lines passed over as done and unchanged (``done``)
    #: (line number, byte offset) of the first line ``done`` did not pass over: a later pass
    #: can start there (None: every line was passed over).
    work_starts_at: tuple[int, int] | None = None
    image_reads: int = 0  #: local image files read (each once, when the cache holds it)

    @property
    def ok(self) -> bool:
        """True when the file has no error (warnings allowed)."""
        return self.error_count == 0

    @property
    def truncated(self) -> bool:
        """True when more problems were found than the lists hold."""
        return self.error_count > len(self.errors) or self.warning_count > len(self.warnings)


#: Kinds of plain values, looked up by type: this runs for every meta key of every line.
_SCALAR_KINDS: dict[type, Kind] = {str: "str", int: "int", float: "float", bool: "bool"}


class _MetaTypes:
    """The type each ``meta`` key had so far (and on which line), to warn when it changes:
    a column of mixed types does not load as a dataset, so ``metadata.jsonl`` writes it as
    text (see :mod:`wanbatch._columns`)."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[str, tuple[Kind, int]] = {}

    def check(self, meta: dict[str, Any], lineno: int) -> list[Issue]:
        """Note the line's meta; a warning for each key whose values no longer share a type."""
        out: list[Issue] = []
        seen = self._seen
        for key, value in meta.items():
            kind = _SCALAR_KINDS.get(type(value)) or kind_of(value)
            old = seen.get(key)
            if old is None:
                if kind != "null" and len(seen) < MAX_COLUMNS:
                    seen[key] = (kind, lineno)
                continue
            if old[0] is kind or old[0] == kind or old[0] == TEXT:  # `is`: the usual case
                continue
            both = unify(old[0], kind)
            if both == TEXT:
                here, there = describe(kind), describe(old[0])
                what = (
                    f"{here} here, {there} on line {old[1]}"
                    if here != there
                    else f"{here} whose values differ in type from line {old[1]}'s"
                )
                out.append(
                    Issue(
                        f"meta.{key}",
                        f"{what}: a column of mixed types does not load as a dataset, so "
                        "metadata.jsonl writes this one as text (JSON)",
                        warning=True,
                    )
                )
            seen[key] = (both, old[1])
        return out


class _Checker:
    """Checks line texts as :func:`~wanbatch._loader.iter_jobs` plans them, without building
    bodies: one image check cache, one id set and one meta type table per file."""

    def __init__(
        self,
        path: str,
        defaults: GenerationDefaults,
        *,
        done: DoneLines | None = None,
        first: array[int] | None = None,
        region: str | None = None,
    ) -> None:
        self.path = path
        self.region = region  #: the run's region: a model not offered there is an error
        self.defaults = defaults
        self.resolver = ImageResolver(
            os.path.dirname(os.path.abspath(path)), embed=False, max_bytes=0
        )
        self.ids = JobIds(done, first)
        self.meta_types = _MetaTypes()

    def check(
        self, lineno: int, text: str
    ) -> tuple[_Checked | None, list[JobFileError], list[JobWarning], str | None]:
        """Check one line as the loader would plan it, without building a body.

        Returns ``(checked, errors, warnings, id)``: ``id`` is the id a line with errors gives,
        if any.
        """
        job = parse_line_issues(text)
        if isinstance(job, list):
            return None, file_errors(job, self.path, lineno), [], given_id(text, None)
        settings, issues = analyse_job(job, self.defaults)
        warnings: list[JobWarning] = []
        errors: list[JobFileError] = []
        oversize = oversize_problem(job, text)
        if oversize is not None:
            issues = [*issues, Issue("line", oversize)]
        if issues:
            for i in issues:
                if i.warning:
                    warnings.append(JobWarning(self.path, lineno, i.field, i.message))
                else:
                    errors.append(JobFileError(self.path, lineno, i.field, i.message))
        if settings is None:
            return None, errors, warnings, job.id
        offer = not_offered_problem(settings.model, self.region)
        if offer is not None:
            errors.append(JobFileError(self.path, lineno, "model", offer))
        ratio = PROFILES[settings.model].max_image_ratio
        for field_name, ref in settings.refs:
            try:
                self.resolver(ref)
            except ValueError as exc:
                errors.append(JobFileError(self.path, lineno, field_name, str(exc)))
                continue
            size = self.resolver.last_size
            if ratio and size is not None and max(size) > ratio * min(size):
                msg = (
                    f"image is {size[0]}x{size[1]} px; {settings.model} takes reference images "
                    f"with an aspect ratio within 1:{ratio} to {ratio}:1"
                )
                errors.append(JobFileError(self.path, lineno, field_name, msg))
        if errors:
            return None, errors, warnings, job.id
        job_id, derived = job.id, False
        if job_id is None:
            job_id, derived = derive_job_id(job), True
        checked = _Checked(
            job_id, derived, settings.interleave, settings.max_new_images, job.meta, settings.model
        )
        return checked, [], warnings, None


@dataclass(frozen=True, slots=True)
class _Checked:
    """What validation keeps of a valid line."""

    id: str
    id_derived: bool
    interleave: bool
    max_new_images: int
    meta: dict[str, Any] | None
    model: str


def validate_file(
    path: str | os.PathLike[str],
    defaults: GenerationDefaults,
    *,
    max_errors: int = 1000,
    done: DoneLines | None = None,
    prefix: DonePrefix | None = None,
    on_job: Callable[[str, int, str], None] | None = None,
    region: str | None = None,
    spec: JobInput | None = None,
) -> ValidationReport:
    """Check the whole file in one streaming pass and report every problem.

    Reads each local image once (checking it, keeping no bytes). Duplicate ids are errors on
    the later line, naming the first ("duplicate id 'x' (first on line 3)"), also when the first
    line is invalid and when the two differ only in letter case. A file with no job line is an
    error. Memory stays flat:
    ids are kept as 8-byte hashes, and only the first ``max_errors`` errors and warnings are
    kept (all are counted). Lines ``done`` matches (done and unchanged) count as valid without
    a second look (``skipped_done``); ``on_job(id, max_new_images, model)`` is called for every
    other valid line, so a caller can plan in the same pass. A ``prefix`` (checked by
    :func:`~wanbatch._prefixscan.usable_prefix` against this file and ``done``'s state) is not
    read at all: its lines count as done, and reading starts where it ends. ``spec``: how to
    read the file (format, column mapping, sweep; default JSONL as written).
    """
    spath = os.fspath(path)
    report = ValidationReport(spath)

    def error(err: JobFileError) -> None:
        report.error_count += 1
        if len(report.errors) < max_errors:
            report.errors.append(err)

    opened = open_jobs(spath, spec)
    if isinstance(opened, JobFileError):
        error(opened)
        return report
    start = (1, 0)
    first_lines = None
    if prefix is not None and done is not None:
        start, first_lines = (prefix.next_line, prefix.size), prefix.first
        report.jobs = report.valid_jobs = report.skipped_done = prefix.jobs
    checker = _Checker(spath, defaults, done=done, first=first_lines, region=region)
    ids = checker.ids
    seen: list[Any] = [start[0] - 1, start[1], b""]
    relabel = opened.relabel
    with opened as source:
        for lineno, text in source.items(seen, start=start, done=done):
            report.jobs += 1
            if isinstance(text, int):  # done and unchanged: nothing will be sent for it
                dup = check_done_id(ids, spath, lineno, text, seen[2])
                if dup is not None:
                    error(dup)
                    report.invalid_lines += 1
                    continue
                report.valid_jobs += 1
                report.skipped_done += 1
                continue
            if report.work_starts_at is None:
                report.work_starts_at = (lineno, seen[1])
            if isinstance(text, JobFileError):
                error(relabel(text))
                report.invalid_lines += 1
                continue
            planned, errors, warnings, line_id = checker.check(lineno, text)
            for w in warnings:
                report.warning_count += 1
                if len(report.warnings) < max_errors:
                    report.warnings.append(relabel(w))
            if planned is None:
                for err in errors:
                    error(relabel(err))
                report.invalid_lines += 1
                if line_id is not None:  # a duplicate of it is reported all the same
                    dup = check_new_id(ids, spath, lineno, line_id)
                    if dup is not None:
                        error(dup)
                continue
            dup = check_new_id(ids, spath, lineno, planned.id, planned.id_derived)
            if dup is not None:
                error(dup)
                report.invalid_lines += 1
                continue
            if planned.meta:
                for issue in checker.meta_types.check(planned.meta, lineno):
                    report.warning_count += 1
                    if len(report.warnings) < max_errors:
                        report.warnings.append(
                            relabel(JobWarning(spath, lineno, issue.field, issue.message))
                        )
            report.valid_jobs += 1
            report.images += planned.max_new_images
            report.interleaved += planned.interleave
            report.other_models += planned.model != DEFAULT_MODEL
            if on_job is not None:
                on_job(planned.id, planned.max_new_images, planned.model)
    report.lines = seen[0]
    report.image_reads = checker.resolver.stats().reads
    if report.jobs == 0:
        error(
            JobFileError(spath, 0, "file", "no jobs: the file is empty or holds only blank lines")
        )
    return report


def format_report(report: ValidationReport) -> list[str]:
    """The lines ``wanbatch validate`` prints: ``FILE:LINE: field: message`` per problem in
    line order (warnings as ``FILE:LINE: field: warning: message``), then a count line like
    ``jobs.jsonl: 3 errors, 1 warning in 120 jobs``."""
    out = list(_problems(report))
    summary = (
        f"{report.path}: {_plural(report.error_count, 'error')}, "
        f"{_plural(report.warning_count, 'warning')} in {_plural(report.jobs, 'job')}"
    )
    if report.truncated:
        summary += f" (first {len(report.errors)} errors and {len(report.warnings)} warnings shown)"
    if report.ok:
        editing = report.valid_jobs - report.interleaved - report.other_models
        others = f", {report.other_models} on wan2.7 models" if report.other_models else ""
        summary += (
            f"; a run buys at most {_plural(report.images, 'image')} "
            f"({report.interleaved} interleaved, {editing} editing{others})"
        )
    out.append(summary)
    return out


def _problems(report: ValidationReport, errors: bool = True) -> Iterator[str]:
    """Each problem kept, formatted, in line order (at one line, errors first)."""
    problems = heapq.merge(
        ((e.line, 0, str(e)) for e in (report.errors if errors else ())),
        ((w.line, 1, str(w)) for w in report.warnings),
    )
    return (text for _line, _kind, text in problems)


def first_problems(report: ValidationReport, limit: int, *, errors: bool = True) -> list[str]:
    """The first ``limit`` problems (only warnings with ``errors=False``) as ``wanbatch
    validate`` prints them, in line order."""
    return list(itertools.islice(_problems(report, errors), limit))


def validate_command(
    path: str, defaults: GenerationDefaults, out: TextIO, spec: JobInput | None = None
) -> int:
    """``wanbatch validate JOBS``: print the report to ``out``; return 0 if valid, else 2."""
    report = validate_file(path, defaults, spec=spec)
    for line in format_report(report):
        out.write(line + "\n")
    return 0 if report.ok else 2


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
