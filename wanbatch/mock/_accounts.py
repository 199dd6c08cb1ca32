"""Several accounts in one mock: each key its own quota and its own billing state.

With ``MockConfig.keys`` set, only those keys are accepted (any other answers 401
``InvalidApiKey``), and each key is an account of its own: a hidden cap of generation calls in
flight (``max_concurrency``) and a rate (``rps``, a sliding 1 s window), both answered with 429
``Throttling.RateQuota`` beyond them, and a ``budget`` of images after which every call of that
key answers its billing error (``billing_code``, 400 ``Arrearage`` by default, or 429
``PrepaidBillOverdue``/``PostpaidBillOverdue``). Images count as the call is accepted: calls in
flight when the budget runs out finish, as a bill falls due between calls. The server-wide
knobs still apply on top.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from wanbatch.mock._config import MockConfig
from wanbatch.mock._errors import ARREARAGE, RATE_QUOTA, Rejection, documented_message

__all__ = ["Accounts"]

_WINDOW_S = 1.0
_BILLING_STATUS = {"Arrearage": 400, "PrepaidBillOverdue": 429, "PostpaidBillOverdue": 429}


@dataclass
class _Account:
    in_flight: int = 0
    images: int = 0
    calls: int = 0
    throttled: int = 0
    accepted: deque[float] = field(default_factory=deque)


class Accounts:
    """Per-key counts of the keys of ``MockConfig.keys`` (none when it is unset)."""

    def __init__(self) -> None:
        self._by_key: dict[str, _Account] = {}

    def check(self, config: MockConfig, key: str, now: float, *, cap: bool) -> None:
        """Refuse the call if the key's account is out of money or over its quota."""
        if config.keys is None:
            return
        spec = config.keys[key]
        account = self._by_key.setdefault(key, _Account())
        account.calls += 1
        if spec.budget is not None and account.images >= spec.budget:
            code = spec.billing_code
            message = ARREARAGE if code == "Arrearage" else documented_message(code)
            raise Rejection(_BILLING_STATUS[code], code, message)
        if cap and spec.max_concurrency is not None and account.in_flight >= spec.max_concurrency:
            account.throttled += 1
            raise Rejection(429, "Throttling.RateQuota", RATE_QUOTA)
        if spec.rps is not None:
            window = account.accepted
            while window and window[0] <= now - _WINDOW_S:
                window.popleft()
            if len(window) + 1 > spec.rps:
                account.throttled += 1
                raise Rejection(429, "Throttling.RateQuota", RATE_QUOTA)
            window.append(now)

    def enter(self, config: MockConfig, key: str, images: int) -> None:
        """An accepted call of ``key`` making ``images`` images starts."""
        if config.keys is not None:
            account = self._by_key.setdefault(key, _Account())
            account.in_flight += 1
            account.images += images

    def bill(self, config: MockConfig, key: str, images: int) -> None:
        """An accepted task of ``key`` making ``images`` images (its slot is the task's)."""
        if config.keys is not None:
            self._by_key.setdefault(key, _Account()).images += images

    def leave(self, config: MockConfig, key: str) -> None:
        if config.keys is not None and key in self._by_key:
            self._by_key[key].in_flight -= 1
