"""Checks of an output folder before a run uses it, and of the images its journal records.

- :func:`check_folder`: refuses a folder for either of the two reasons below.
- :func:`orphan_images`: images with no journal to account for them (a deleted journal); a run
  would buy every job again and overwrite them, so the engine refuses.
- :func:`service_conflict`: the folder was filled from the mock and the run is against the
  service, or the reverse; mixing them would pass test images for real ones.
- :func:`check_saved_images`: the images the journal records as saved that are missing or
  damaged (not of their recorded size), with the URLs of those still valid to fetch again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from wanbatch._errors import JournalError, UnusableOutput
from wanbatch._records import SavedInfo
from wanbatch._saved import JOURNAL_NAME, current_saved, image_on_disk
from wanbatch._state import RunState
from wanbatch._urls import endpoint_of, image_filename, is_loopback_url

__all__ = [
    "ImageCheck",
    "Refetch",
    "check_folder",
    "check_saved_images",
    "orphan_images",
    "prepare_out_dir",
    "service_conflict",
]

#: Missing images one run fetches again at most (the rest: the next run). Bounds the memory of
#: a folder whose images were all deleted: only missing ones are held, each a small record.
MAX_REFETCH = 10_000
#: Missing files named in the check's report.
SAMPLE = 5


@dataclass(frozen=True, slots=True)
class Refetch:
    """A missing image whose result URL may still be valid: fetching it again is free."""

    job_id: str
    k: int
    url: str
    expires: float | None
    #: The ``saved`` record's fields for metadata.jsonl (prompt, seed, size, request_id, meta).
    info: SavedInfo


@dataclass
class ImageCheck:
    """What :func:`check_saved_images` found."""

    checked: int = 0
    #: Images of done jobs whose file is missing or of another size than recorded.
    missing: int = 0
    sample: list[str] = field(default_factory=list)
    refetch: list[Refetch] = field(default_factory=list)


def check_saved_images(
    out_dir: Path, state: RunState, *, now: float | None = None, limit: int = MAX_REFETCH
) -> ImageCheck:
    """Stat every image the journal records as saved (done jobs, current generation).

    One ``stat`` per image and nothing kept per image but the missing ones (at most ``limit``
    of them, ``limit=0`` to only count). With ``now``, ``refetch`` lists those whose URL has
    not expired by the local clock (a download costs nothing; the store's answer decides).
    Blocking: run it in a worker thread.
    """
    check = ImageCheck()
    path = out_dir / JOURNAL_NAME
    if not path.exists() or not len(state.done):
        return check
    wanted: dict[int, list[int]] = {}  # generation line -> missing k
    base = str(out_dir)
    for rec, k, gen_line in current_saved(path, state, heads=True):
        check.checked += 1
        if image_on_disk(base, rec):
            continue
        check.missing += 1
        if len(check.sample) < SAMPLE:
            check.sample.append(str(rec.get("file")))
        if now is not None and check.missing <= limit:
            wanted.setdefault(gen_line, []).append(k)
    if wanted:
        check.refetch = _still_valid(path, wanted, now or 0.0)
    return check


def _still_valid(path: Path, wanted: dict[int, list[int]], now: float) -> list[Refetch]:
    """The URLs of the wanted images from their ``generated`` records, unless expired."""
    found: list[Refetch] = []
    last = max(wanted)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno > last:
                break
            ks = wanted.get(lineno)
            if ks is None:
                continue
            try:
                rec = json.loads(raw)
                job_id, images = rec["id"], rec["images"]
                info = SavedInfo.of_record(rec)
                for k in ks:
                    url, expires = images[k]["url"], images[k].get("expires")
                    image_filename(job_id, k)  # a safe file name, or ValueError
                    if not isinstance(expires, (int, float)) or isinstance(expires, bool):
                        expires = None
                    if isinstance(url, str) and (expires is None or expires > now):
                        found.append(Refetch(job_id, k, url, expires, info))
            except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                continue  # a damaged record: the image stays missing
    return found


def _count_files(folder: Path) -> tuple[int, str | None]:
    """Regular files in a folder (what runs write there) and the first name seen (0 when it is
    missing or unreadable)."""
    count, first = 0, None
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    count += 1
                    first = first or entry.name
    except OSError:
        return 0, None
    return count, first


def orphan_images(out_dir: Path, state: RunState) -> str | None:
    """Why the folder must not be used, when ``images/`` holds files its journal knows nothing
    of (the journal was deleted or replaced), else None."""
    if len(state):
        return None
    images = out_dir / "images"
    if images.is_symlink():
        return None  # refused later for what it is
    count, first = _count_files(images)
    if not count:
        return None
    journal = out_dir / "journal.jsonl"
    why = "no journal.jsonl" if not journal.exists() else "a journal.jsonl that records no job"
    return (
        f"{images} holds {count} file(s) (e.g. {first}) but {out_dir} has {why}: a run here "
        f"would generate every job again, paying for it, and overwrite them. To resume, put "
        f"the folder's journal.jsonl back; to start over, move {images} away or use another "
        f"--out folder"
    )


def service_conflict(state: RunState, base_url: str) -> str | None:
    """Why a run against ``base_url`` must not use a folder the journal says was filled from the
    other kind of service (the mock or the real one), else None.

    A loopback base URL is the mock (see :func:`wanbatch._urls.is_loopback_url`). Moving between
    real hosts (a region's host, a workspace host) is allowed: the account's images are real.
    """
    if state.mock is None or not len(state):
        return None  # a new folder, or a journal from before runs named their service
    mock = is_loopback_url(base_url)
    if mock == state.mock:
        return None
    before, now = state.endpoint or "?", endpoint_of(base_url)
    if state.mock:
        return (
            f"the images in this folder were made by the mock service ({before}); a run "
            f"against {now} would mix them with real ones. Use another --out folder for the "
            f"service (or delete this one to start over)"
        )
    return (
        f"the images in this folder were made by the service at {before}; a run against the "
        f"mock ({now}) would mix test images into them. Use another --out folder for the mock"
    )


def check_folder(out_dir: Path, state: RunState, base_url: str) -> None:
    """Raise JournalError for a folder whose images the journal cannot account for, or made by
    the other kind of service (mock or real)."""
    problem = orphan_images(out_dir, state) or service_conflict(state, base_url)
    if problem is not None:
        raise JournalError(f"{out_dir}: {problem}")


def prepare_out_dir(out: Path) -> None:
    """Create the folder with its images/ and .tmp/, and drop partial downloads left over."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        for sub in ("images", ".tmp"):
            path = out / sub
            if path.is_symlink():
                raise UnusableOutput(
                    f"{path} is a symbolic link; refusing to write images outside {out}"
                )
            path.mkdir(exist_ok=True)
        for stale in (out / ".tmp").glob("*.part"):
            stale.unlink(missing_ok=True)
    except OSError as exc:
        raise UnusableOutput(
            f"cannot prepare the output folder {out}: {exc.strerror or exc}"
        ) from exc
