"""The state of one mock server: knobs, clock, dice, counters, issued objects and tasks.

One :class:`MockState` lives in each aiohttp application and is only touched from its event
loop. The clock is real time plus ``config.clock_offset``, so ``advance_clock`` makes issued
URLs expire (and rate windows slide) without any test sleeping.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from wanbatch.mock._accounts import Accounts
from wanbatch.mock._behaviour import Behaviour
from wanbatch.mock._config import MockConfig
from wanbatch.mock._counters import Counters
from wanbatch.mock._errors import Rejection, documented_message
from wanbatch.mock._picture import draw_picture
from wanbatch.mock._png import PNG_VARIANTS, PngCache, encode_png
from wanbatch.mock._signing import UrlSigner
from wanbatch.mock._validate import MAX_SEED

__all__ = ["BUCKET", "MockState", "StoredObject"]

#: First path segment of result URLs, standing in for ``dashscope-result-intl``.
BUCKET = "dashscope-result-mock"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An issued image: the PNG size served and what it shows.

    A ``picture`` shows ``prompt``, ``seed`` and ``index`` (its place in the answer); a ``noise``
    image has one of a few looks, ``variant``.
    """

    width: int
    height: int
    prompt: str
    seed: int
    index: int
    variant: int


class MockState:
    """Everything the handlers share."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.behaviour = Behaviour(config)
        self.counters = Counters()
        #: Per-key quotas and billing (``MockConfig.keys``).
        self.accounts = Accounts()
        self.signer = UrlSigner()
        self.pngs = PngCache()
        self.objects: dict[str, StoredObject] = {}
        #: Set whenever a generation slot frees up; queued async tasks wait on it.
        self.slot_freed = asyncio.Event()
        #: Successful calls and forced answers since ``force_error`` was last set.
        self._successes = 0
        self._forced = 0

    def now(self) -> float:
        """The mock's clock: Unix seconds, real time plus the configured offset."""
        return time.time() + self.config.clock_offset

    def configure(self, **knobs: Any) -> MockConfig:
        """Change knobs now (validated as :class:`MockConfig`); returns the new config."""
        config = self.config.updated(**knobs)
        if config.force_error != self.config.force_error:
            self._successes = self._forced = 0
        self.config = config
        self.behaviour.reconfigure(self.config)
        self.slot_freed.set()  # a raised cap may let queued tasks run
        return self.config

    def advance_clock(self, seconds: float) -> float:
        """Move the mock's clock forward (or back); returns the new offset."""
        self.configure(clock_offset=self.config.clock_offset + seconds)
        return self.config.clock_offset

    def succeeded(self) -> None:
        """A generation call was answered 200."""
        self.counters.outcome("200")
        self._successes += 1

    def forced_error(self) -> Rejection | None:
        """The ``force_error`` answer for this call, if it applies now."""
        force = self.config.force_error
        if force is None or self._successes < force.after:
            return None
        if force.times is not None and self._forced >= force.times:
            return None
        if not self.behaviour.chance(force.rate):
            return None
        self._forced += 1
        message = force.message if force.message is not None else documented_message(force.code)
        return Rejection(force.status, force.code, message)

    def enter(self) -> None:
        """A generation started."""
        self.counters.enter()

    def leave(self) -> None:
        """A generation ended: free its slot."""
        self.counters.leave()
        self.slot_freed.set()

    def has_free_slot(self) -> bool:
        """Whether one more generation fits under ``max_concurrency``."""
        cap = self.config.max_concurrency
        return cap is None or self.counters.in_flight < cap

    def issue_urls(
        self, origin: str, size: tuple[int, int], count: int, *, prompt: str, seed: int | None
    ) -> list[str]:
        """Register ``count`` new images of ``size`` and return their signed URLs on ``origin``.

        The images show ``prompt``, ``seed`` and their index; without a seed the call gets a
        random one, as the service picks one.
        """
        served = self.config.image_size or size
        if seed is None:
            seed = secrets.randbelow(MAX_SEED + 1)
        now = self.now()
        expires = int(now + self.config.url_ttl)
        day = time.strftime("%Y%m%d", time.gmtime(now))
        urls = []
        for index in range(count):
            name = uuid.uuid4()
            path = f"/{BUCKET}/{day}/{name.hex[:4]}/{name}.png"
            self.objects[path] = StoredObject(
                served[0], served[1], prompt, seed, index, name.int % PNG_VARIANTS
            )
            urls.append(f"{origin}{path}?{self.signer.query(path, expires)}")
        return urls

    def png(self, stored: StoredObject) -> bytes:
        """The PNG of an issued image, in the configured ``image_style`` (cached)."""
        width, height = stored.width, stored.height
        if self.config.image_style == "noise":
            variant = stored.variant
            return self.pngs.get(
                ("noise", width, height, variant), lambda: encode_png(width, height, variant)
            )
        return self.pngs.get(
            stored,
            lambda: draw_picture(
                width, height, prompt=stored.prompt, seed=stored.seed, index=stored.index
            ),
        )
