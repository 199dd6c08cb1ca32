"""Behaviour knobs of the mock server: :class:`MockConfig`.

Every knob is off by default, so a default mock is a fast, always-successful, unlimited service.
The same knobs are CLI flags (``_cli``) and can be changed at run time (``MockServer.configure``,
``POST /mock/config``). The API key is a plain ``str`` (so typed callers can pass one) that is
kept out of ``repr``; no answer and no ``public_dict`` shows it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_URL_TTL_S", "ForcedError", "MockConfig", "MockKey"]

#: Result URLs are valid for 24 hours (docs/service.md, Result URLs and their expiry).
DEFAULT_URL_TTL_S = 86400.0


class ForcedError(BaseModel):
    """An error answer the mock gives instead of its own, as ``{"request_id","code","message"}``.

    It starts after ``after`` successful calls (counted from when the knob was set), answers each
    generation call with probability ``rate`` and, with ``times``, at most that many calls; then
    the mock answers as usual again. It is checked right after the API key, before everything
    else, and answers at once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: HTTP status of the answer, 400-599.
    status: int = Field(ge=400, le=599)
    #: The body's ``code``, e.g. ``PrepaidBillOverdue`` or ``NOT AUTHORIZED``.
    code: str = Field(min_length=1, max_length=200)
    #: The body's ``message``; ``None``: the service's documented text for the code, if known.
    message: str | None = Field(default=None, max_length=2000)
    #: Successful calls answered first (since this knob was set).
    after: int = Field(default=0, ge=0)
    #: Calls answered with the error at most; ``None``: no limit.
    times: int | None = Field(default=None, ge=1)
    #: Probability that a call, once the error is active, gets it.
    rate: float = Field(default=1.0, ge=0.0, le=1.0)


class MockKey(BaseModel):
    """One account of a mock holding several keys (``MockConfig.keys``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: This key's hidden cap of generation calls in flight; beyond it 429 ``RateQuota``.
    max_concurrency: int | None = Field(default=None, ge=1)
    #: This key's accepted calls per sliding 1 s window; beyond it 429 ``RateQuota``.
    rps: float | None = Field(default=None, gt=0.0)
    #: Images after which every call of this key answers ``billing_code``.
    budget: int | None = Field(default=None, ge=0)
    #: The billing error of a spent budget.
    billing_code: Literal["Arrearage", "PrepaidBillOverdue", "PostpaidBillOverdue"] = "Arrearage"


class MockConfig(BaseModel):
    """How the mock misbehaves. Frozen; change a running server with ``configure(**knobs)``.

    Rates are probabilities in [0, 1] drawn per call (per download for ``truncate_rate``) from
    one RNG seeded by ``seed``, so a run with a seed replays the same faults in the same order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Mean seconds a generation call takes; SSE events are spread over it.
    latency: float = Field(default=0.0, ge=0.0)
    #: Uniform jitter (±seconds) added to ``latency``; the result is clamped at 0.
    latency_jitter: float = Field(default=0.0, ge=0.0)
    #: In-flight generation calls beyond this answer 429 ``Throttling.RateQuota`` at once.
    max_concurrency: int | None = Field(default=None, ge=1)
    #: Accepted generation calls per sliding 1 s window; beyond it 429 ``Throttling.RateQuota``.
    rps: float | None = Field(default=None, gt=0.0)
    #: Seconds sent as ``Retry-After`` on 429s (the real service documents none).
    retry_after: int | None = Field(default=None, ge=0)
    #: Probability of an injected 500 ``InternalError`` JSON answer.
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    #: Probability of a non-JSON 502/503 text/html gateway answer.
    gateway_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    #: Probability that the connection is aborted after the request was read (not billed).
    reset_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    #: Probability that an image download sends the full Content-Length but only part of the body.
    truncate_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    #: Seconds an issued image URL stays valid.
    url_ttl: float = Field(default=DEFAULT_URL_TTL_S, gt=0.0)
    #: Prompt substrings that make a call answer 400 ``DataInspectionFailed``.
    inspection_triggers: tuple[str, ...] = ()
    #: The only API key accepted; ``None`` accepts any non-empty bearer key.
    api_key: str | None = Field(default=None, repr=False)
    #: Several accounts: the keys accepted, each with its own quota and billing state
    #: (``_accounts``); ``None``: one account (``api_key``). Never shown: ``public_dict``
    #: and ``repr`` hide the keys.
    keys: dict[str, MockKey] | None = Field(default=None, repr=False)
    #: Images after which every generation call answers 400 ``Arrearage``.
    budget: int | None = Field(default=None, ge=0)
    #: Images after which every generation call answers 429 ``Throttling.AllocationQuota``.
    free_quota: int | None = Field(default=None, ge=0)
    #: Stand-in (width, height) of the served PNGs, for speed; ``usage.size`` is unaffected.
    image_size: tuple[int, int] | None = None
    #: What served PNGs show: ``"picture"``, a few kilobytes telling prompt, seed and index
    #: apart; ``"noise"``, photo-sized noise (1280² -> 4.9 MB) for download benchmarks.
    image_style: Literal["picture", "noise"] = "picture"
    #: Seed of the RNG behind every rate and the jitter; ``None`` = unpredictable.
    seed: int | None = None
    #: Seconds added to real time on the mock's clock (URL expiry, rate window, task times).
    clock_offset: float = 0.0
    #: An error to answer instead (see :class:`ForcedError`); ``None`` = off.
    force_error: ForcedError | None = None
    #: Cut every interleaved stream right after its first image event: ``"reset"`` drops the
    #: connection, ``"stall"`` sends nothing more until the client gives up. The image is billed.
    cut_stream_after_image: Literal["reset", "stall"] | None = None
    #: A FAILED task carries ``code``/``message`` inside ``output`` (the older task docs' shape)
    #: instead of at the top level (the documented example's).
    task_error_in_output: bool = False

    @field_validator("image_size")
    @classmethod
    def _positive_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and (value[0] < 1 or value[1] < 1):
            raise ValueError("image_size sides must be >= 1")
        return value

    @field_validator("inspection_triggers", mode="before")
    @classmethod
    def _one_trigger_is_a_list(cls, value: Any) -> Any:
        # A single string would otherwise be read as a tuple of its characters.
        return (value,) if isinstance(value, str) else value

    def updated(self, **knobs: Any) -> MockConfig:
        """A validated copy with ``knobs`` changed (unknown knobs raise ``ValidationError``)."""
        current = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self).model_validate({**current, **knobs})

    def public_dict(self) -> dict[str, Any]:
        """The knobs as JSON-able values, the API key masked."""
        data = self.model_dump(mode="json")
        if self.api_key is not None:
            data["api_key"] = "**********"
        if self.keys is not None:
            data["keys"] = {f"key{i}": spec for i, spec in enumerate(data["keys"].values(), 1)}
        return data
