"""The command line's job-file options: ``--format``, ``--map FIELD=COLUMN``, ``--sweep``.

Shared by ``run`` and ``validate``; they build ``args.job_input``, a
:class:`~wanbatch._jobinput.JobInput`, checking each value as it is given (a message naming
the option and what it takes, never an internal name).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from wanbatch._jobinput import FORMATS, JobInput
from wanbatch._sweep import SWEEP_FIELDS

__all__ = ["add_input_options"]


class _InputAction(argparse.Action):
    """Folds ``--format``, ``--map`` and ``--sweep`` into one ``JobInput`` (``args.job_input``)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        current: JobInput = getattr(namespace, "job_input", None) or JobInput()
        text = str(values)
        try:
            if option_string == "--map":
                current = current.with_map(text)
            elif option_string == "--sweep":
                current = current.with_sweep(text)
            else:
                current = JobInput(text, current.mapping, current.sweep)  # type: ignore[arg-type]
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        namespace.job_input = current


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """The job-file options of ``run`` and ``validate``."""
    parser.set_defaults(job_input=JobInput())
    group = parser.add_argument_group("job file (see docs/job-format.md)")
    group.add_argument(
        "--format",
        choices=FORMATS,
        action=_InputAction,
        dest="job_input_format",
        help="how to read JOBS (default: by extension: .csv, .tsv, .parquet, .txt; else jsonl)",
    )
    group.add_argument(
        "--map",
        action=_InputAction,
        dest="job_input_map",
        metavar="FIELD=COLUMN",
        help="read job field FIELD from column COLUMN of a CSV, TSV or Parquet file, e.g. "
        "prompt=caption (repeatable; default: columns named as fields fill them, the others "
        "go to meta)",
    )
    group.add_argument(
        "--sweep",
        action=_InputAction,
        dest="job_input_sweep",
        metavar="FIELD=V1,V2,...",
        help="run every job once per value (repeatable: the grid of all combinations), e.g. "
        f"seed=1-4 or size=1024*1024,1280*1280; FIELD is one of {', '.join(SWEEP_FIELDS)} "
        "(default: no sweep)",
    )
