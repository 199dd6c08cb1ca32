"""Run configuration: :class:`BatchConfig`, :class:`GenerationDefaults`, ``DEFAULT_*`` constants.

Pure: no I/O, no environment reads (``_cli`` reads the environment and builds a config).
The API key is held as a :class:`Secret` whose ``repr``/``str`` never show it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict

from wanbatch._shards import Shard

from ._jobinput import JobInput

__all__ = [
    "DEFAULT_CALL_TIMEOUT_S",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_DOWNLOAD_CONCURRENCY",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MODEL",
    "DEFAULT_REGION",
    "DEFAULT_RPS",
    "PRICE_PER_IMAGE",
    "REGION_BASE_URLS",
    "BatchConfig",
    "GenerationDefaults",
    "Region",
    "Secret",
]

DEFAULT_MODEL = "wan2.6-image"
#: wan2.6-image allows 5 task submissions per second and 5 in flight per account
#: (docs/service.md, Rate limits).
DEFAULT_CONCURRENCY = 5
DEFAULT_RPS = 5.0
DEFAULT_DOWNLOAD_CONCURRENCY = 8
DEFAULT_MAX_ATTEMPTS = 6
#: One call holds its connection for 1-4 minutes; the official SDK waits 300 s too.
DEFAULT_CALL_TIMEOUT_S = 300.0
#: Task mode: seconds between polls of a task, at least (jittered up to twice it); the
#: service suggests polling every 5 to 10 s.
DEFAULT_POLL_INTERVAL_S = 5.0
#: ``sync``: one HTTP call per generation, held open until the answer; ``async``: task mode.
Mode = Literal["sync", "async"]
DEFAULT_DOWNLOAD_TIMEOUT_S = 120.0
#: Largest image file we accept from a result URL; a 2K PNG is well under this.
DEFAULT_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024

Region = Literal["intl", "us", "cn"]
DEFAULT_REGION: Region = "intl"
REGION_BASE_URLS: dict[str, str] = {
    "intl": "https://dashscope-intl.aliyuncs.com/api/v1",
    "us": "https://dashscope-us.aliyuncs.com/api/v1",
    "cn": "https://dashscope.aliyuncs.com/api/v1",
}
#: Price of one generated image by region, CNY (docs/service.md, Prices by region).
PRICE_PER_IMAGE: dict[str, float] = {"intl": 0.220177, "us": 0.20, "cn": 0.20}


class Secret:
    """A string that never shows itself in ``repr``, ``str`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: call only where it is put on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:  # never pickle the key by accident
        raise TypeError("Secret values cannot be pickled")


class GenerationDefaults(BaseModel):
    """Run-wide generation parameters; a job's own value overrides each of them.

    ``n`` and ``max_images`` default to 1 (the service defaults to 4 and 5, each billed per
    image). ``None`` means "do not send; let the service decide".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The model of jobs that name none (None: ``DEFAULT_MODEL``).
    model: str | None = None
    size: str | None = None
    n: int = 1
    max_images: int = 1
    seed: int | None = None
    prompt_extend: bool | None = None
    watermark: bool | None = None
    negative_prompt: str | None = None


@dataclass(frozen=True, kw_only=True)
class BatchConfig:
    """Everything one run needs besides the job file and the output folder.

    Keyword-only. ``api_key`` is a :class:`Secret` (its repr is masked).
    """

    base_url: str = REGION_BASE_URLS[DEFAULT_REGION]
    api_key: Secret | None = None
    #: A key pool: several keys, each of its own account (see ``_pool``); when given, it is
    #: used instead of ``api_key``. ``concurrency`` and ``rps`` are each key's.
    api_keys: tuple[Secret, ...] = ()
    region: Region = DEFAULT_REGION
    concurrency: int = DEFAULT_CONCURRENCY
    rps: float | None = DEFAULT_RPS
    download_concurrency: int = DEFAULT_DOWNLOAD_CONCURRENCY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    call_timeout: float = DEFAULT_CALL_TIMEOUT_S
    download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT_S
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    #: Stop buying once this many images were generated in this output folder (None: no cap).
    max_images: int | None = None
    retry_failed: bool = False
    skip_invalid: bool = False
    #: Generate again when a result URL expired before it could be downloaded.
    regenerate_expired: bool = True
    #: Price per image for the dry-run plan; None: the region's list price.
    price_per_image: float | None = None
    defaults: GenerationDefaults = field(default_factory=GenerationDefaults)
    #: How the job file is read: format, column mapping, sweep (default: JSONL by extension).
    job_input: JobInput = field(default_factory=JobInput)
    #: Backoff: first delay and cap, seconds (full jitter in between).
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    #: Shared pause after a 429 before any worker calls again, seconds.
    throttle_cooldown: float = 1.0
    #: ``"async"``: submit tasks, journal them, poll them (see ``_taskcalls``).
    mode: Mode = "sync"
    #: Task mode: seconds between polls, at least (jittered up to twice it).
    poll_interval: float = DEFAULT_POLL_INTERVAL_S
    #: Run only the jobs of this shard of the job file (``--shard I/N``; None: every job).
    shard: Shard | None = None

    @property
    def keys(self) -> tuple[Secret, ...]:
        """The keys of the run: the pool, or the one ``api_key`` (none for a dry run)."""
        if self.api_keys:
            return self.api_keys
        return () if self.api_key is None else (self.api_key,)

    def replace(self, **changes: object) -> BatchConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def price(self) -> float:
        """Price of one image for cost estimates."""
        if self.price_per_image is not None:
            return self.price_per_image
        return PRICE_PER_IMAGE[self.region]
