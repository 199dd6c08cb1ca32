"""Checks of an output folder before a run uses it, and of the images its journal records.

- :func:`orphan_images`: images with no journal to account for them (a deleted journal); a run
  would buy every job again and overwrite them, so the engine refuses.
- :func:`service_conflict`: the folder was filled from the mock and the run is against the
  service, or the reverse; mixing them would pass test images for real ones.
"""

from __future__ import annotations

import os
from pathlib import Path

from wanbatch._state import RunState
from wanbatch._urls import endpoint_of, is_loopback_url

__all__ = ["orphan_images", "service_conflict"]


def _count_files(folder: Path) -> tuple[int, str | None]:
    """Entries of a folder and the first name seen (0 when it is missing or unreadable)."""
    count, first = 0, None
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
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
