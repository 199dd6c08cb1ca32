"""Sweeps: every job of the file over a grid of field values, each cell a job of its own.

``--sweep seed=1-4 --sweep size=1024*1024,1280*1280`` makes 8 jobs of each job line: a
:class:`Sweep` is the grid (its axes in the order given), :meth:`Sweep.cells` yields its cells
lazily (``itertools.product``: nothing is materialised, a million jobs times a 16-cell grid
streams), and :func:`cell_id` names a cell from the job's id and the cell's own values only
(``cat.seed-3.size-1024x1024``), so adding values to an axis adds cells and never renames
the cells already there (see ``docs/job-format.md``, "Sweeps").

Pure: stdlib only, no I/O.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._inputs import BOOL_FIELDS, INT_FIELDS, typed_value

__all__ = ["MAX_AXIS_VALUES", "SWEEP_FIELDS", "Sweep", "cell_id", "parse_sweep"]

#: The fields a sweep may vary: one value each (lists, objects and the id cannot be swept).
SWEEP_FIELDS = (
    "seed",
    "size",
    "n",
    "max_images",
    "prompt",
    "negative_prompt",
    "prompt_extend",
    "watermark",
    "enable_interleave",
    "enable_sequential",
    "thinking_mode",
    "model",
)
#: Most values one axis may hold (a range ``1-10000`` included).
MAX_AXIS_VALUES = 10_000
_RANGE = re.compile(r"\s*(\d{1,12})\s*-\s*(\d{1,12})\s*")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", re.ASCII)
_ID_MAX = 128

Cell = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Sweep:
    """A grid: ``axes`` is ``((field, values), ...)`` in the order given on the command line."""

    axes: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.axes)

    @property
    def size(self) -> int:
        """Cells of the grid: the product of the axes' lengths (1 for no sweep)."""
        return math.prod(len(values) for _, values in self.axes)

    def cells(self) -> Iterator[Cell]:
        """Each cell as ``((field, value), ...)``, the last axis varying fastest."""
        fields = [field for field, _ in self.axes]
        for values in itertools.product(*(values for _, values in self.axes)):
            yield tuple(zip(fields, values, strict=True))

    def describe(self) -> str:
        """``8 cells (seed: 4 values × size: 2 values)``."""
        parts = " × ".join(
            f"{field}: {len(values)} value{'s' if len(values) != 1 else ''}"
            for field, values in self.axes
        )
        return f"{self.size} cell{'s' if self.size != 1 else ''} ({parts})"


def parse_sweep(text: str, sweep: Sweep | None = None) -> Sweep:
    """``sweep`` (or an empty grid) with the axis ``FIELD=V1,V2,...`` added.

    Whole-number fields take ranges too (``seed=1-4``). Raises ValueError with a message
    naming what is wrong.
    """
    sweep = sweep or Sweep()
    field, eq, raw = text.partition("=")
    field = field.strip()
    if not eq or not field:
        raise ValueError(f"expected FIELD=V1,V2,... (e.g. seed=1,2,3), got {text!r}")
    if field not in SWEEP_FIELDS:
        raise ValueError(f"cannot sweep {field!r}; a sweep varies one of {', '.join(SWEEP_FIELDS)}")
    if any(f == field for f, _ in sweep.axes):
        raise ValueError(f"{field} is swept twice; give all its values in one --sweep")
    values: list[Any] = []
    for part in raw.split(","):
        if not part.strip():
            raise ValueError(f"{field}: an empty value in {raw!r}")
        span = _RANGE.fullmatch(part) if field in INT_FIELDS else None
        if span is not None:
            low, high = int(span.group(1)), int(span.group(2))
            if low > high or high - low >= MAX_AXIS_VALUES:
                raise ValueError(
                    f"{field}: range {part.strip()!r} must go up, {MAX_AXIS_VALUES:,} values "
                    "at most"
                )
            values.extend(range(low, high + 1))
        else:
            value = typed_value(field, part.strip())
            if field in INT_FIELDS and not isinstance(value, int):
                raise ValueError(f"{field}: {part.strip()!r} is not a whole number")
            if field in BOOL_FIELDS and not isinstance(value, bool):
                raise ValueError(f"{field}: {part.strip()!r} is not true or false")
            values.append(value)
    if len(values) > MAX_AXIS_VALUES:
        raise ValueError(f"{field}: {len(values):,} values; an axis holds {MAX_AXIS_VALUES:,}")
    tokens = [_token(v) for v in values]
    if len(set(tokens)) != len(tokens):
        twice = next(v for v, t in zip(values, tokens, strict=True) if tokens.count(t) > 1)
        raise ValueError(f"{field}: {twice!r} is given twice")
    return Sweep((*sweep.axes, (field, tuple(values))))


def _token(value: Any) -> str:
    """A value as it shows in a cell id: ``1024*1024`` -> ``1024x1024``, ``True`` -> ``true``;
    text that is no short plain word becomes ``h`` and 10 hex digits of its sha256."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).replace("*", "x")
    if _TOKEN.fullmatch(text):
        return text
    return "h" + hashlib.sha256(str(value).encode("utf-8")).hexdigest()[:10]


def cell_id(job_id: str, cell: Cell) -> str:
    """The id of one cell of job ``job_id``: ``JOBID.FIELD-VALUE...``, fields in name order.

    Depends on the job's id and this cell's values only (not on the other values of the grid
    nor on the order of the ``--sweep`` options), so old cells keep their ids when values are
    added. An id that would pass 128 characters ends in a hash of the same parts instead.
    """
    suffix = ".".join(f"{field}-{_token(value)}" for field, value in sorted(cell))
    out = f"{job_id}.{suffix}"
    if len(out) <= _ID_MAX:
        return out
    digest = hashlib.sha256(out.encode("utf-8")).hexdigest()[:16]
    return f"{job_id[: _ID_MAX - 18].rstrip('.')}.g{digest}"
