"""Downloading the images a run bought: the queue (earliest URL expiry first), the
generations of each job (which images may still be saved), and the download workers with their
handling of expired URLs.

Call workers (and the producer, for images an earlier run bought) put items in; download
workers take them out until no producer is left.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from wanbatch import _events as ev
from wanbatch._control import RunControl
from wanbatch._download import SavedImage, Superseded, download_image
from wanbatch._errors import DownloadError, IntegrityError, OutputError, UrlExpired
from wanbatch._jobs import PlannedJob
from wanbatch._journal import Journal
from wanbatch._plan import expiry_cause
from wanbatch._policy import Backoff
from wanbatch._records import SavedInfo, expired_record, saved_record
from wanbatch._summary import ExitCode
from wanbatch._urls import image_filename

__all__ = [
    "DOWNLOAD_ATTEMPTS",
    "DOWNLOAD_BACKLOG_PER_WORKER",
    "MAX_QUEUED_DOWNLOADS",
    "DownloadItem",
    "DownloadQueue",
    "Downloader",
    "Generations",
    "record_saved",
    "saved_info",
    "seed_of",
]

#: Downloads queued before the producer waits (bounds memory when resuming many).
MAX_QUEUED_DOWNLOADS = 10_000
#: Queued downloads (per download worker) before call workers wait for the downloader.
DOWNLOAD_BACKLOG_PER_WORKER = 8
#: Attempts at one image download before the job is given up to regeneration.
DOWNLOAD_ATTEMPTS = 5
#: A fresh URL the store refuses as expired within this many seconds of the answer that
#: brought it expired "on arrival": never normal for URLs valid for a day.
ARRIVAL_WINDOW_S = 300.0
#: Jobs whose fresh URLs expired on arrival, with no fresh image saved between them, after
#: which the run stops buying (what comes next would expire the same way).
ARRIVAL_EXPIRIES_TO_STOP = 3


@dataclass(order=True)
class DownloadItem:
    expires: float
    seq: int
    job: PlannedJob = field(compare=False)
    k: int = field(compare=False)
    url: str = field(compare=False)
    generation: int = field(compare=False)
    info: SavedInfo = field(compare=False)
    #: The run clock's monotonic() when the call that bought it answered; None for an earlier
    #: run's URL.
    arrived: float | None = field(default=None, compare=False)


class DownloadQueue:
    """Earliest-expiry-first queue that knows when no more items can come."""

    def __init__(self) -> None:
        self._heap: list[DownloadItem] = []
        self._producers = 0
        self._changed = anyio.Event()
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def add_producer(self) -> None:
        self._producers += 1

    def producer_done(self) -> None:
        self._producers -= 1
        self._notify()

    def put(self, item: DownloadItem) -> None:
        self._seq += 1
        item.seq = self._seq
        heapq.heappush(self._heap, item)
        self._notify()

    async def get(self) -> DownloadItem | None:
        while True:
            if self._heap:
                item = heapq.heappop(self._heap)
                self._notify()
                return item
            if self._producers <= 0:
                return None
            await self._changed.wait()

    async def wait_below(self, size: int) -> None:
        while len(self._heap) >= size:
            await self._changed.wait()


class Generations:
    """Generation numbers of the jobs with images to save, unique within the run.

    ``queued``: the number a queued image must carry to be fetched (an expiry gives the job a
    fresh one: its queued siblings are dropped). ``accepted``: the job's generation in the
    journal (the last answered call), the only one whose images may still be saved.
    ``remaining``: images still to save of it. ``expiries``: expired generations of the jobs
    that have one, as the journal counts them.
    """

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self.queued: dict[str, int] = {}
        self.accepted: dict[str, int] = {}
        self.remaining: dict[str, int] = {}
        self.expiries: dict[str, int] = {}

    def next_number(self) -> int:
        return next(self._numbers)

    def new(self, job_id: str, images: int) -> int:
        """The journal now holds a new generation of the job, with ``images`` to save."""
        gen = next(self._numbers)
        self.queued[job_id] = self.accepted[job_id] = gen
        self.remaining[job_id] = images
        return gen

    def forget(self, job_id: str) -> None:
        """The job is done: nothing of it is pending any more."""
        self.remaining.pop(job_id, None)
        self.queued.pop(job_id, None)
        self.accepted.pop(job_id, None)
        self.expiries.pop(job_id, None)

    def current(self, job_id: str, generation: int) -> bool:
        """Whether an image of ``generation`` may still be saved: it is the journal's latest
        generation of the job. Once a regeneration is answered, an older image would be
        recorded as the new one's, or overwrite it; a finished job has nothing pending."""
        return self.accepted.get(job_id) == generation


def record_saved(
    control: RunControl,
    journal: Journal,
    job_id: str,
    k: int,
    saved: SavedImage,
    info: SavedInfo,
) -> None:
    """Image ``k`` of the job is on disk: journal it (with its metadata row's fields)."""
    file = f"images/{saved.path.name}"
    record = saved_record(
        job_id=job_id,
        k=k,
        file=file,
        size=saved.size,
        sha256=saved.sha256,
        width=saved.width,
        height=saved.height,
        info=info,
    )
    control.journal(journal, record)
    control.summary.images_saved_this_run += 1
    control.emit(ev.ImageSaved(job_id, k, file, saved.size))


def seed_of(job: PlannedJob) -> int | None:
    """The job's seed, when its request sets one."""
    params = job.body.get("parameters") or {}
    seed = params.get("seed")
    return seed if isinstance(seed, int) else None


def saved_info(job: PlannedJob, request_id: str | None, size: Any) -> SavedInfo:
    """The fields a saved image's journal record (and metadata row) carries."""
    return SavedInfo(
        prompt=job.prompt,
        seed=seed_of(job),
        size=size,
        request_id=request_id,
        meta=job.meta,
        model=job.model,
    )


#: What the run does once a job's URLs expired: (job, its expiries so far, the likely cause).
OnExpiry = Callable[[PlannedJob, int, str], None]


class Downloader:
    """The download workers: each image fetched, verified and journaled as saved."""

    def __init__(
        self,
        out_dir: Path,
        control: RunControl,
        queue: DownloadQueue,
        generations: Generations,
        *,
        on_expiry: OnExpiry,
    ) -> None:
        self._images_dir = out_dir / "images"
        self._tmp_dir = out_dir / ".tmp"
        self._control = control
        self._config = control.config
        self._summary = control.summary
        self._queue = queue
        self._generations = generations
        self._on_expiry = on_expiry
        #: Jobs whose fresh URLs expired on arrival since the last fresh image was saved.
        self._expired_on_arrival: set[str] = set()

    async def worker(
        self, session: aiohttp.ClientSession, journal: Journal, backoff: Backoff
    ) -> None:
        """Fetch queued images until no producer is left."""
        downloads = self._queue
        while True:
            item = await downloads.get()
            if item is None:
                return
            if self._generations.queued.get(item.job.id) != item.generation:
                continue  # superseded by a newer generation of the same job
            try:
                await self._download_one(session, item, journal, backoff)
            except OutputError:
                continue  # the journal failed; the run is stopping (see RunControl.journal)

    async def _download_one(
        self,
        session: aiohttp.ClientSession,
        item: DownloadItem,
        journal: Journal,
        backoff: Backoff,
    ) -> None:
        job = item.job
        name = image_filename(job.id, item.k)
        dest = self._images_dir / name
        last: DownloadError | None = None
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                saved = await download_image(
                    session,
                    item.url,
                    dest,
                    self._tmp_dir,
                    timeout=self._config.download_timeout,
                    max_bytes=self._config.max_download_bytes,
                    label=f"job {job.id} image {item.k}",
                    keep=lambda: self._generations.current(job.id, item.generation),
                )
            except Superseded:
                return  # its job was generated again meanwhile: the new images count, not this
            except UrlExpired:
                self._expired(item, journal)
                return
            except OutputError as exc:
                self._control.request_stop(str(exc), ExitCode.FATAL)
                return
            except DownloadError as exc:
                last = exc
                if isinstance(exc, IntegrityError) and "cap" in str(exc):
                    break
                await self._control.clock.sleep(
                    backoff.delay(attempt, rand=self._control.rand.random()) / 4
                )
                continue
            record_saved(self._control, journal, job.id, item.k, saved, item.info)
            if item.arrived is not None:
                self._expired_on_arrival.clear()  # fresh URLs work: the expiries were not a rule
            left = self._generations.remaining.get(job.id)
            if left is None:
                return  # a sibling expired: this generation is not finished by this run
            left -= 1
            if left <= 0:
                self._generations.forget(job.id)
                self._summary.jobs_done += 1
                self._control.emit(ev.JobDone(job.id, item.k + 1))
            else:
                self._generations.remaining[job.id] = left
            return
        assert last is not None
        # The image was paid for; leave the job GENERATED so a later run retries the download.
        self._control.emit(ev.CallFailed(job.id, 0, type(last).__name__, str(last), False, False))

    def _expired(self, item: DownloadItem, journal: Journal) -> None:
        """The store refused the URL as expired: generate the job again, within its bound."""
        job = item.job
        if self._generations.queued.get(job.id) != item.generation:
            return  # a sibling image of the same generation reported its expiry already
        self._control.journal(journal, expired_record(job_id=job.id, k=item.k))
        self._summary.urls_expired += 1
        self._control.emit(ev.UrlExpiredEvent(job.id, item.k))
        gens = self._generations
        gens.queued[job.id] = gens.next_number()  # drop its queued siblings
        gens.remaining.pop(job.id, None)
        expiries = gens.expiries[job.id] = gens.expiries.get(job.id, 0) + 1
        waited = None if item.arrived is None else self._control.clock.monotonic() - item.arrived
        lifetime = None
        if waited is not None and not math.isinf(item.expires):
            lifetime = item.expires - (self._control.service_now() - waited)
        cause = expiry_cause(
            lifetime=lifetime, waited=waited, clock_offset=self._control.clock_offset
        )
        if waited is not None and waited < ARRIVAL_WINDOW_S:
            self._expired_on_arrival.add(job.id)
            if len(self._expired_on_arrival) >= ARRIVAL_EXPIRIES_TO_STOP:
                self._control.request_stop(
                    f"no more calls: the result URLs of {len(self._expired_on_arrival)} jobs "
                    "expired on arrival (the store refused them right after the call); "
                    f"likely cause: {cause}",
                    ExitCode.FATAL,
                )
        self._on_expiry(job, expiries, cause)
