"""The report page: ``DIR/report.html``, a static page of a run folder that opens from disk.

Reads what the folder holds (the journal's state, ``metadata.jsonl``, ``failed.jsonl``, and the
journal's timestamps for the chart) and renders ``templates/report.html.j2`` with Jinja2,
escaping every value (a prompt is user text). The page references nothing on the network:
images by relative path, the chart inline SVG, a little inline script for search and pages.
Jinja2 is imported only when a report is written.

Memory stays flat whatever the folder's size: the grid's rows are read from ``metadata.jsonl``
as the page is written, a thousand at a time, and the page is streamed to disk.
"""

from __future__ import annotations

import json
import os
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wanbatch._config import DEFAULT_MODEL, DEFAULT_REGION
from wanbatch._journal import read_journal
from wanbatch._models import price_of, region_of_url
from wanbatch._timeplan import format_duration

__all__ = [
    "FAILED_SHOWN",
    "PAGE_SIZE",
    "REPORT_NAME",
    "report_data",
    "try_write_report",
    "write_report",
]

REPORT_NAME = "report.html"
#: Images a page of the grid shows.
PAGE_SIZE = 200
#: Failed jobs listed on the page (all of them are in failed.jsonl).
FAILED_SHOWN = 1000
#: Points of the images-over-time chart at most.
CHART_POINTS = 400
CHART_W, CHART_H = 720, 180

# Records start {"v":1,"ts":...,"event":"..." (written so by Journal.append).
_HEAD = re.compile(rb'\{"v":\d+,"ts":([0-9.eE+-]+),"event":"(\w+)"')
_GEN_MODEL = re.compile(rb',"id":"(?:[^"\\]|\\.)*","model":"([^"\\]*)"')


@dataclass
class _Timeline:
    """What the journal's timestamps say: the runs, and when each image was saved."""

    runs: list[tuple[float, float]] = field(default_factory=list)  # (start, last record)
    #: When each image was saved, in active seconds since the first run (8 bytes an image).
    saved: array[float] = field(default_factory=lambda: array("d"))
    endpoint: object = None  # the last run's
    bought: dict[str, int] = field(default_factory=dict)  # model -> images generated

    @property
    def duration(self) -> float:
        return sum(end - start for start, end in self.runs)


def _timeline(journal: Path) -> _Timeline:
    """One pass over the journal, parsing only each line's head (and a generation's model)."""
    line = _Timeline()
    offset = 0.0  # active seconds of the runs before the current one
    start = last = None
    with journal.open("rb") as fh:
        for raw in fh:
            head = _HEAD.match(raw)
            if head is None:
                continue
            try:
                ts = float(head.group(1))
            except ValueError:
                continue
            event = head.group(2)
            if event == b"run":
                try:
                    line.endpoint = json.loads(raw).get("endpoint")
                except (ValueError, AttributeError):
                    pass
                if start is not None and last is not None:
                    line.runs.append((start, last))
                    offset += last - start
                start = last = ts
                continue
            if start is None:
                continue
            last = max(last or ts, ts)
            if event == b"saved":
                line.saved.append(offset + ts - start)
            elif event == b"generated":
                gen = _GEN_MODEL.match(raw, head.end())
                model = gen.group(1).decode() if gen is not None else DEFAULT_MODEL
                line.bought[model] = line.bought.get(model, 0) + _image_count(raw)
    if start is not None and last is not None:
        line.runs.append((start, last))
    return line


def _image_count(raw: bytes) -> int:
    """Images a ``generated`` line lists: its ``"images":[...]`` holds one ``{"url":`` each
    (inside JSON strings quotes are escaped, so neither marker can come from text)."""
    start = raw.find(b'"images":[')
    if start < 0:
        return 0
    end = raw.find(b'],"', start)
    return raw.count(b'{"url":', start, end if end >= 0 else len(raw))


def _chart(line: _Timeline) -> dict[str, Any]:
    """The images-over-time chart as SVG numbers: a polyline's points, axis labels, and the
    x of each run's start after the first."""
    total = max(line.duration, 1e-9)
    saved = line.saved
    step = max(1, len(saved) // CHART_POINTS)
    points = [f"0,{CHART_H}"]
    peak = max(1, len(saved))
    for i in range(step - 1, len(saved), step):
        x = saved[i] / total * CHART_W
        y = CHART_H - (i + 1) / peak * CHART_H
        points.append(f"{x:.1f},{y:.1f}")
    if saved:
        points.append(f"{saved[-1] / total * CHART_W:.1f},0.0")
    marks, offset = [], 0.0
    for start, end in line.runs[:-1]:
        offset += end - start
        marks.append(round(offset / total * CHART_W, 1))
    return {
        "points": " ".join(points),
        "width": CHART_W,
        "height": CHART_H,
        "images": len(saved),
        "duration": format_duration(line.duration),
        "run_marks": marks[:100],
    }


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        for raw in fh:
            try:
                row = json.loads(raw)
            except ValueError:
                continue
            if isinstance(row, dict):
                yield row


def _money(line: _Timeline, price: float | None, region: str | None) -> tuple[float, str, float]:
    """What the images bought cost, how that was priced, and the price of one image (average)
    for the possibly billed calls: ``price`` for every image if given, else each model's list
    price in ``region`` (else the region of the last run's endpoint, else the default)."""
    images = sum(line.bought.values())
    if price is not None:
        return images * price, f"at {price:g} CNY", price
    if region is None:
        endpoint = line.endpoint if isinstance(line.endpoint, str) else ""
        region = region_of_url(endpoint) or DEFAULT_REGION
    spent = sum(n * price_of(model, region) for model, n in line.bought.items())
    models = sorted(line.bought) or [DEFAULT_MODEL]
    if len(models) == 1:
        one = price_of(models[0], region)
        return spent, f"at {one:g} CNY ({models[0]}, {region})", one
    return spent, f"at each model's list price ({region})", spent / images if images else 0.0


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _count_lines(path: Path) -> int:
    """Rows of a view (one JSON object a line, as wanbatch writes them)."""
    lines = 0
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                lines += chunk.count(b"\n")
    except FileNotFoundError:
        pass
    return lines


def _grid_row(row: dict[str, Any]) -> tuple[str, str, int, str, str, str, int | None]:
    """A ``metadata.jsonl`` row as the grid shows it: file, id, index, prompt, model, size, seed."""
    index, seed, model = row.get("index"), row.get("seed"), row.get("model")
    return (
        _text(row.get("file_name")),
        _text(row.get("id")),
        index if isinstance(index, int) else 0,
        _text(row.get("prompt")),
        model if isinstance(model, str) and model else DEFAULT_MODEL,
        _text(row.get("size")),
        seed if isinstance(seed, int) else None,
    )


#: Grid rows encoded a chunk at a time.
_CHUNK_ROWS = 1000


def _grid_chunks(metadata: Path, models: list[str]) -> Iterator[str]:
    """The grid's rows as pieces of a JSON array's body (``[file, id, index, prompt, model
    number, size, seed]`` each), escaped for an HTML script element; appends to ``models``
    each model name as it first appears (a row holds its number in that list)."""
    from jinja2.utils import htmlsafe_json_dumps  # escapes < > & ' inside the strings

    model_index = {name: i for i, name in enumerate(models)}
    batch: list[list[Any]] = []
    separator = ""

    def encoded() -> str:
        return separator + str(htmlsafe_json_dumps(batch, separators=(",", ":")))[1:-1]

    for row in _jsonl(metadata):
        file, job_id, index, prompt, model, size, seed = _grid_row(row)
        number = model_index.get(model)
        if number is None:
            number = model_index[model] = len(models)
            models.append(model)
        batch.append([file, job_id, index, prompt, number, size, seed])
        if len(batch) == _CHUNK_ROWS:
            yield encoded()
            batch, separator = [], ","
    if batch:
        yield encoded()


def report_data(
    out_dir: Path, *, price: float | None = None, region: str | None = None
) -> dict[str, Any]:
    """Everything the page shows, read from ``out_dir`` (a run folder with a journal)."""
    journal = out_dir / "journal.jsonl"
    state = read_journal(out_dir)
    line = _timeline(journal)
    spent, priced, one = _money(line, price, region)
    by_status = state.status_counts()
    done, failed = by_status.get("done", 0), by_status.get("failed", 0)
    pending = max(0, max(state.jobs_in_file, sum(by_status.values())) - done - failed)
    metadata = out_dir / "metadata.jsonl"
    images = _count_lines(metadata)
    first_page: list[dict[str, Any]] = []
    for row in _jsonl(metadata):
        if len(first_page) == PAGE_SIZE:
            break
        file, job_id, index, prompt, model, size, seed = _grid_row(row)
        first_page.append(
            {
                "file": file,
                "id": job_id,
                "index": index,
                "prompt": prompt,
                "model": model,
                "size": size,
                "seed": seed,
            }
        )
    models: list[str] = [DEFAULT_MODEL]
    failures: list[dict[str, str]] = []
    failed_rows = 0
    for row in _jsonl(out_dir / "failed.jsonl"):
        failed_rows += 1
        if len(failures) < FAILED_SHOWN:
            error = row.get("error")
            if not isinstance(error, dict):
                error = {}
            failures.append(
                {
                    "id": _text(row.get("id")),
                    "prompt": _text(row.get("prompt")),
                    "code": _text(error.get("code")),
                    "message": _text(error.get("message")),
                }
            )
    hours = line.duration / 3600
    if state.run_ended:
        last_run = f"stopped: {state.stop_reason}" if state.stop_reason else "finished"
    else:
        last_run = "did not finish (killed, crashed or still running)"
    return {
        "folder": out_dir.name or str(out_dir),
        "runs": state.runs,
        "last_run": last_run,
        "jobs": {"done": done, "failed": failed, "pending": pending},
        "images": images,
        "images_generated": state.images_generated,
        "priced": priced,
        "spent": spent,
        "possibly_billed": state.possibly_billed,
        "possibly_billed_cost": state.possibly_billed * one,
        "duration": format_duration(line.duration),
        "images_per_hour": round(len(line.saved) / hours) if hours > 0 else 0,
        "chart": _chart(line),
        # Filled as grid_chunks runs: the page writes the model names after the rows.
        "models": models,
        "grid_chunks": _grid_chunks(metadata, models),
        "first_page": first_page,
        "failures": failures,
        "failed_more": failed_rows - len(failures),
        "page_size": PAGE_SIZE,
    }


def write_report(
    out_dir: str | Path, *, price: float | None = None, region: str | None = None
) -> Path:
    """Write ``out_dir/report.html`` (temp file, then rename) and return its path.

    ``price``: CNY an image for the money shown (default: each model's list price in
    ``region``, by default the region the last run called). Raises ``OSError`` when the
    folder cannot be read or written.
    """
    import jinja2  # only here: a run that writes no report never loads it

    out = Path(out_dir)
    data = report_data(out, price=price, region=region)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("wanbatch", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    pieces = env.get_template("report.html.j2").generate(**data)
    path = out / REPORT_NAME
    tmp = out / f".{REPORT_NAME}.tmp"
    try:
        # errors="replace": a damaged view row (a lone surrogate) must not stop the page.
        with tmp.open("w", encoding="utf-8", errors="replace", newline="\n") as fh:
            fh.writelines(pieces)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def try_write_report(
    out_dir: Path, *, price: float | None = None, region: str | None = None
) -> str | None:
    """:func:`write_report` at the end of a run: never fails it; returns what went wrong."""
    try:
        write_report(out_dir, price=price, region=region)
    except Exception as exc:  # the report is a courtesy: the run's result stands without it
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"cannot write {Path(out_dir) / REPORT_NAME}: {reason or type(exc).__name__}"
    return None
