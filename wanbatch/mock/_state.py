"""The state of one mock server: knobs, clock, dice, counters, issued objects and tasks.

One :class:`MockState` lives in each aiohttp application and is only touched from its event
loop. The clock is real time plus ``config.clock_offset``, so ``advance_clock`` makes issued
URLs expire (and rate windows slide) without any test sleeping.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from wanbatch.mock._behaviour import Behaviour
from wanbatch.mock._config import MockConfig
from wanbatch.mock._counters import Counters
from wanbatch.mock._png import PNG_VARIANTS, PngCache
from wanbatch.mock._signing import UrlSigner

__all__ = ["BUCKET", "MockState", "StoredObject"]

#: First path segment of result URLs, standing in for ``dashscope-result-intl`` (§3.3).
BUCKET = "dashscope-result-mock"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An issued image: the PNG size served and which look it has."""

    width: int
    height: int
    variant: int


class MockState:
    """Everything the handlers share."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.behaviour = Behaviour(config)
        self.counters = Counters()
        self.signer = UrlSigner()
        self.pngs = PngCache()
        self.objects: dict[str, StoredObject] = {}
        #: Set whenever a generation slot frees up; queued async tasks wait on it.
        self.slot_freed = asyncio.Event()

    def now(self) -> float:
        """The mock's clock: Unix seconds, real time plus the configured offset."""
        return time.time() + self.config.clock_offset

    def configure(self, **knobs: Any) -> MockConfig:
        """Change knobs now (validated as :class:`MockConfig`); returns the new config."""
        self.config = self.config.updated(**knobs)
        self.behaviour.reconfigure(self.config)
        self.slot_freed.set()  # a raised cap may let queued tasks run
        return self.config

    def advance_clock(self, seconds: float) -> float:
        """Move the mock's clock forward (or back); returns the new offset."""
        self.configure(clock_offset=self.config.clock_offset + seconds)
        return self.config.clock_offset

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

    def issue_urls(self, origin: str, size: tuple[int, int], count: int) -> list[str]:
        """Register ``count`` new images of ``size`` and return their signed URLs on ``origin``."""
        served = self.config.image_size or size
        now = self.now()
        expires = int(now + self.config.url_ttl)
        day = time.strftime("%Y%m%d", time.gmtime(now))
        urls = []
        for _ in range(count):
            name = uuid.uuid4()
            path = f"/{BUCKET}/{day}/{name.hex[:4]}/{name}.png"
            self.objects[path] = StoredObject(served[0], served[1], name.int % PNG_VARIANTS)
            urls.append(f"{origin}{path}?{self.signer.query(path, expires)}")
        return urls
