"""The checks a generation call passes before it is accepted: key, forced error, account, rate.

Each raises :class:`Rejection`; the routes call them in the documented order (key, then
``force_error``, then the account's free quota and budget, then the concurrency cap and the
rate) and validate the request after them. Refused calls take no room in the rate window.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from wanbatch.mock._errors import (
    ARREARAGE,
    FREE_QUOTA,
    INSPECTION,
    INVALID_API_KEY,
    RATE_QUOTA,
    Rejection,
)
from wanbatch.mock._state import MockState
from wanbatch.mock._validate import GenerationRequest

__all__ = ["check_account", "check_forced", "check_key", "check_rate", "inspection"]


def check_key(request: web.Request, state: MockState) -> str:
    """``Authorization: Bearer <key>``; the key never appears in any answer. Returns it."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Rejection(401, "InvalidApiKey", INVALID_API_KEY)
    wanted = state.config.api_key
    if wanted is not None and not hmac.compare_digest(key.encode(), wanted.encode()):
        raise Rejection(401, "InvalidApiKey", INVALID_API_KEY)
    if state.config.keys is not None and key not in state.config.keys:
        raise Rejection(401, "InvalidApiKey", INVALID_API_KEY)
    return key


def check_forced(state: MockState) -> None:
    """The ``force_error`` knob: any documented (or made-up) error answer, on demand."""
    forced = state.forced_error()
    if forced is not None:
        raise forced


def check_account(state: MockState) -> None:
    """Free quota and budget are account states: every call fails once they are used up."""
    generated = state.counters.images_generated
    if state.config.free_quota is not None and generated >= state.config.free_quota:
        raise Rejection(429, "Throttling.AllocationQuota", FREE_QUOTA)
    if state.config.budget is not None and generated >= state.config.budget:
        raise Rejection(400, "Arrearage", ARREARAGE)


def check_rate(state: MockState, *, cap: bool) -> None:
    """429 over the concurrency cap (sync calls only) or over the rate; refusals use no quota."""
    if cap and not state.has_free_slot():
        raise Rejection(429, "Throttling.RateQuota", RATE_QUOTA)
    if not state.behaviour.admit_rate(state.now()):
        raise Rejection(429, "Throttling.RateQuota", RATE_QUOTA)


def inspection(state: MockState, request: GenerationRequest) -> Rejection | None:
    """Content inspection: a prompt holding a trigger fails (deferred: a task FAILS instead)."""
    for trigger in state.config.inspection_triggers:
        if trigger and trigger in request.prompt:
            return Rejection(400, "DataInspectionFailed", INSPECTION, deferred=True)
    return None
