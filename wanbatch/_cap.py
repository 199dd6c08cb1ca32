"""The ``--max-images`` cap: images generated in the folder, plus those reserved by calls in
flight, stay within it.

A call reserves its job's most images before it starts and releases the reservation once it
is answered (the images then count as bought) or failed; a call that finds no room waits for
a release, and when nothing is reserved the cap is reached.
"""

from __future__ import annotations

import anyio

__all__ = ["ImageCap"]


class ImageCap:
    """Images bought and reserved against ``--max-images`` (``None``: no cap)."""

    def __init__(self, cap: int | None, *, bought: int) -> None:
        self.cap = cap
        #: Images generated in the folder: the journal's count, then this run's answers.
        self.bought = bought
        self.reserved = 0
        self._released = anyio.Event()

    def reserve(self, images: int) -> bool:
        """Reserve room for ``images``; False when it would pass the cap."""
        if self.cap is not None and self.bought + self.reserved + images > self.cap:
            return False
        self.reserved += images
        return True

    def release(self, images: int) -> None:
        self.reserved -= images
        self._released.set()
        self._released = anyio.Event()

    async def wait_release(self) -> None:
        """Wait until a call releases its reservation."""
        await self._released.wait()
