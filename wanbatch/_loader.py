"""Stage 1, jobs: stream a job file into planned jobs, in line order, in constant memory.

:func:`iter_jobs` is what the engine sends from: each line is read (:mod:`wanbatch._lines`),
parsed (:mod:`wanbatch._jobs`), checked (:mod:`wanbatch._rules`), its local images read once
each (:mod:`wanbatch._imagefiles`), its request body built (:mod:`wanbatch._requests`) and its
id checked against the lines before it (:mod:`wanbatch._ids`). The whole-file check before a
run is :mod:`wanbatch._validate`; the done prefix a resume starts after is
:mod:`wanbatch._prefixscan`.

Synchronous on purpose: the engine runs :func:`iter_jobs` in a worker thread, in chunks.
Imports the jobs stage's I/O helpers, the pure core and the stdlib.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

from ._config import GenerationDefaults
from ._donejobs import DoneLines
from ._errors import JobFileError
from ._ids import JobIds, check_done_id, check_new_id, given_id
from ._imagefiles import DEFAULT_IMAGE_CACHE_BYTES, ImageResolver
from ._jobinput import JobInput
from ._jobs import PlannedJob, file_errors, oversize_problem, parse_line_issues
from ._jobsource import open_jobs
from ._requests import build_planned_job

__all__ = ["iter_jobs"]


class _Planner:
    """Turns line texts into planned jobs, with one image cache and one id set per file."""

    def __init__(
        self,
        path: str,
        defaults: GenerationDefaults,
        *,
        cache_bytes: int,
        done: DoneLines | None = None,
    ) -> None:
        self.path = path
        self.defaults = defaults
        self.resolver = ImageResolver(
            os.path.dirname(os.path.abspath(path)), embed=True, max_bytes=cache_bytes
        )
        self.ids = JobIds(done)

    def plan(
        self, lineno: int, text: str
    ) -> tuple[PlannedJob | None, list[JobFileError], str | None]:
        """Plan one line for sending (body built, images read and inlined, fingerprinted).

        Returns ``(planned, errors, id)``: ``id`` is the id a line with errors gives, if any.
        """
        job = parse_line_issues(text)
        if isinstance(job, list):
            return None, file_errors(job, self.path, lineno), given_id(text, None)
        oversize = oversize_problem(job, text)
        planned, errors, _warnings = build_planned_job(
            job, self.defaults, self.resolver, path=self.path, line=lineno, source=text
        )
        if oversize is not None:
            planned, errors = None, [*errors, JobFileError(self.path, lineno, "line", oversize)]
        return planned, errors, given_id(text, job) if planned is None else None


def iter_jobs(
    path: str | os.PathLike[str],
    defaults: GenerationDefaults,
    *,
    skip_invalid: bool = False,
    cache_bytes: int = DEFAULT_IMAGE_CACHE_BYTES,
    done: DoneLines | None = None,
    start: tuple[int, int] = (1, 0),
    check_duplicates: bool = True,
    spec: JobInput | None = None,
) -> Generator[PlannedJob | JobFileError, None, None]:
    """Stream the job file as planned jobs, in line order, in constant memory.

    Invalid lines (and the second and later lines of a duplicate id, also of an invalid line's
    id or of an id in other letter case, as :func:`~wanbatch._validate.validate_file` finds
    them) come out as :class:`~wanbatch._errors.JobFileError` values, never raised. With
    ``skip_invalid=False`` iteration ends right after the first error (a broken file must not
    be half run: the engine validates first); with ``skip_invalid=True`` it goes on past them.
    Warnings are not yielded (see :func:`~wanbatch._validate.validate_file`).

    Local images are read once each and sent as data URIs (bounded LRU of ``cache_bytes``).
    Lines ``done`` matches (done and unchanged) are passed over (their ids still count for
    duplicate detection). ``start`` (line number, byte offset, e.g. a validation report's
    ``work_starts_at``) begins at that line. ``check_duplicates=False`` (for a file that
    :func:`~wanbatch._validate.validate_file` just passed) keeps no id set: 17 bytes a line less.
    ``spec``: how to read the file (format, column mapping, sweep; default JSONL as written).
    """
    spath = os.fspath(path)
    opened = open_jobs(spath, spec)
    if isinstance(opened, JobFileError):
        yield opened
        return
    planner = _Planner(
        spath, defaults, cache_bytes=cache_bytes, done=done if check_duplicates else None
    )
    ids = planner.ids
    seen: list[Any] = [0, 0, b""]
    with opened as source:
        for lineno, text in source.items(seen, start=start, done=done):
            if isinstance(text, int):  # done and unchanged
                if check_duplicates:
                    dup = check_done_id(ids, spath, lineno, text, seen[2])
                    if dup is not None:
                        yield dup
                        if not skip_invalid:
                            return
                continue
            if isinstance(text, JobFileError):
                yield source.relabel(text)
                if not skip_invalid:
                    return
                continue
            planned, errors, line_id = planner.plan(lineno, text)
            if planned is not None:
                if check_duplicates:
                    dup = check_new_id(ids, spath, lineno, planned.id, planned.id_derived)
                    if dup is not None:
                        yield dup
                        if not skip_invalid:
                            return
                        continue
                yield planned
            elif errors:
                if check_duplicates and line_id is not None:  # later lines may repeat it
                    check_new_id(ids, spath, lineno, line_id)
                yield from map(source.relabel, errors)
                if not skip_invalid:
                    return
