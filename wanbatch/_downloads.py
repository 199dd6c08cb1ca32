"""The download queue: images waiting to be fetched, earliest URL expiry first.

Call workers (and the producer, for images an earlier run bought) put items in; download
workers take them out until no producer is left.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import anyio

from wanbatch._jobs import PlannedJob

__all__ = [
    "DOWNLOAD_ATTEMPTS",
    "DOWNLOAD_BACKLOG_PER_WORKER",
    "MAX_QUEUED_DOWNLOADS",
    "DownloadItem",
    "DownloadQueue",
]

#: Downloads queued before the producer waits (bounds memory when resuming many).
MAX_QUEUED_DOWNLOADS = 10_000
#: Queued downloads (per download worker) before call workers wait for the downloader.
DOWNLOAD_BACKLOG_PER_WORKER = 8
#: Attempts at one image download before the job is given up to regeneration.
DOWNLOAD_ATTEMPTS = 5


@dataclass(order=True)
class DownloadItem:
    expires: float
    seq: int
    job: PlannedJob = field(compare=False)
    k: int = field(compare=False)
    url: str = field(compare=False)
    generation: int = field(compare=False)
    info: dict[str, Any] = field(compare=False)
    #: time.monotonic() when the call that bought it answered; None for an earlier run's URL.
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
