"""Images of done jobs that are missing on disk at the start of a run, fetched again.

The journal records every saved image; at the start a worker thread checks them beside the
first calls. A missing or damaged one is downloaded again while its URL is valid (free); an
expired one stays missing: a done job is never generated again on its own.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path

import aiohttp
import anyio

from wanbatch._control import RunControl
from wanbatch._download import download_image
from wanbatch._downloads import record_saved
from wanbatch._errors import DownloadError, OutputError, UrlExpired
from wanbatch._folder import Refetch, check_saved_images
from wanbatch._journal import Journal
from wanbatch._policy import Backoff
from wanbatch._state import RunState
from wanbatch._summary import ExitCode
from wanbatch._urls import image_filename

__all__ = ["RESTORE_ATTEMPTS", "RESTORE_FAILURES", "ImageRestorer"]

#: Attempts at downloading a missing image of a done job again, and failures in a row (not
#: expiries) after which a run stops trying (the store is out of reach; the next run tries).
RESTORE_ATTEMPTS = 2
RESTORE_FAILURES = 20


class ImageRestorer:
    """Checks the saved images at the start of a run and fetches missing ones again."""

    def __init__(self, out_dir: Path, control: RunControl) -> None:
        self.out_dir = out_dir
        self._images_dir = out_dir / "images"
        self._tmp_dir = out_dir / ".tmp"
        self._control = control
        self._config = control.config
        self._summary = control.summary
        #: Missing images of done jobs found at the start, and those to fetch again.
        self.missing_at_start = 0
        self._refetch: list[Refetch] = []
        self._restore_failures = 0

    async def check(
        self,
        state: RunState,
        session: aiohttp.ClientSession,
        journal: Journal,
        backoff: Backoff,
    ) -> None:
        """Stat the images the journal records as saved, in a worker thread beside the first
        calls (a million take seconds); fetch missing ones again while their URL is valid."""
        try:
            check = await anyio.to_thread.run_sync(
                functools.partial(
                    check_saved_images, self.out_dir, state, now=self._control.service_now()
                ),
                abandon_on_cancel=True,  # an abort does not wait for it
            )
        except (OSError, ValueError) as exc:  # the run goes on; the next one checks again
            logging.getLogger("wanbatch").warning("could not check the saved images: %s", exc)
            return
        self.missing_at_start = self._summary.images_missing = check.missing
        self._refetch = check.refetch
        if check.missing:
            logging.getLogger("wanbatch").warning(
                "%d image(s) recorded as saved are missing or damaged in %s (e.g. %s); %d will "
                "be downloaded again while their URLs are valid, the others are not bought "
                "again and are left out of metadata.jsonl",
                check.missing,
                self._images_dir,
                ", ".join(check.sample),
                len(check.refetch),
            )
        if self._refetch:
            await self._restore_images(session, journal, backoff)

    async def _restore_images(
        self, session: aiohttp.ClientSession, journal: Journal, backoff: Backoff
    ) -> None:
        """Download missing images of done jobs again from their still-valid URLs (free).

        An expired one stays missing: a done job is never generated again on its own. After
        RESTORE_FAILURES failures in a row the store is taken as out of reach: the rest wait.
        """
        pending = iter(self._refetch)

        async def worker() -> None:
            for item in pending:
                if self._control.stopping or self._restore_failures >= RESTORE_FAILURES:
                    return
                with contextlib.suppress(OutputError):  # the journal failed: stopping
                    await self._restore_one(session, item, journal, backoff)

        async with anyio.create_task_group() as tg:
            for _ in range(min(self._config.download_concurrency, len(self._refetch))):
                tg.start_soon(worker)

    async def _restore_one(
        self,
        session: aiohttp.ClientSession,
        item: Refetch,
        journal: Journal,
        backoff: Backoff,
    ) -> None:
        name = image_filename(item.job_id, item.k)
        for attempt in range(1, RESTORE_ATTEMPTS + 1):
            try:
                saved = await download_image(
                    session,
                    item.url,
                    self._images_dir / name,
                    self._tmp_dir,
                    timeout=self._config.download_timeout,
                    max_bytes=self._config.max_download_bytes,
                    label=f"job {item.job_id} image {item.k} (missing)",
                    keep=lambda: True,
                )
            except UrlExpired:
                return
            except OutputError as exc:
                self._control.request_stop(str(exc), ExitCode.FATAL)
                return
            except DownloadError:
                if attempt < RESTORE_ATTEMPTS:
                    await self._control.clock.sleep(
                        backoff.delay(attempt, rand=self._control.rand.random()) / 4
                    )
                else:
                    self._restore_failures += 1
                continue
            self._restore_failures = 0
            record_saved(self._control, journal, item.job_id, item.k, saved, item.info)
            self._summary.images_missing -= 1
            return
