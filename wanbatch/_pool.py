"""A pool of API keys: each key its own limiter and state; a call goes to a key with room.

Every key of the pool stands for one account: it has its own :class:`~wanbatch._pacing.Pacer`
(the account's quota: slots, rate, AIMD, cool-down) and its own client. The run starts
``concurrency`` call workers per key, each with a *home* key whose slot it waits for; a job is
taken from the shared stream by whichever worker is free, and waits only for its worker's key,
so jobs flow to the keys that have room, in proportion to what each account allows (not round
robin).

A fatal answer that concerns one account (bad key, overdue bill, no access:
:func:`~wanbatch._keys.account_fatal`) *retires* that key: no call starts on it again, the
workers waiting on it move to the active key with the most room, and the job that got the answer
goes back to the others. The images the key already bought are kept. The run stops (exit 3)
only when no key is left, or on an answer that is fatal whatever the key (no such model, wrong
host). A pool of one key behaves exactly as a single key.

What users see of a key is its label (:func:`~wanbatch._keys.key_label`); never the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

from wanbatch._pacing import Pacer
from wanbatch._taskcalls import TaskClient

__all__ = ["KeyPool", "PoolKey"]


@dataclass(eq=False)
class PoolKey:
    """One key of the pool: its label, limiter, client, state and counts."""

    label: str
    pacer: Pacer
    client: TaskClient
    #: Why the key was retired (the service's code and message), or None while active.
    retired: str | None = None
    calls: int = 0
    succeeded: int = 0
    images: int = 0
    throttled: int = 0
    _waits: set[anyio.CancelScope] = field(default_factory=set, repr=False)

    def room(self) -> int:
        """Slots free now (negative when callers queue for it)."""
        stats = self.pacer.statistics()
        return stats.limit - stats.in_flight - stats.waiting

    def report(self) -> dict[str, Any]:
        """The key's line of ``summary.json`` (its label, never the key)."""
        return {
            "key": self.label,
            "state": "retired" if self.retired else "active",
            "calls": self.calls,
            "succeeded": self.succeeded,
            "images": self.images,
            "throttled": self.throttled,
            "limit": self.pacer.statistics().limit,
            **({"retired_by": self.retired} if self.retired else {}),
        }


class KeyPool:
    """The run's keys, in the order given (positions start at 1)."""

    def __init__(self, keys: list[PoolKey]) -> None:
        if not keys:
            raise ValueError("a key pool needs at least one key")
        self.keys = keys
        self.active = len(keys)

    @property
    def several(self) -> bool:
        return len(self.keys) > 1

    def roomiest(self) -> PoolKey | None:
        """The active key with the most room, or None when every key is retired."""
        best: PoolKey | None = None
        best_room = 0
        for key in self.keys:
            if key.retired is None:
                room = key.room()
                if best is None or room > best_room:
                    best, best_room = key, room
        return best

    def try_acquire(self, home: PoolKey) -> tuple[PoolKey, object] | None:
        """A slot of ``home`` now, if it is active and has one free without waiting."""
        if home.retired is not None:
            return None
        token = home.pacer.try_acquire()
        return None if token is None else (home, token)

    async def acquire(self, home: PoolKey) -> tuple[PoolKey, object] | None:
        """Wait for a slot of ``home``, or, once it is retired, of the active key with the most
        room. None when no key is left. Cancellation-safe (cancelled, it holds nothing)."""
        key: PoolKey | None = home
        while True:
            if key is None or key.retired is not None:
                key = self.roomiest()
                if key is None:
                    return None
            token = key.pacer.try_acquire()
            if token is not None:
                return key, token
            with anyio.CancelScope() as scope:
                key._waits.add(scope)
                try:
                    token = await key.pacer.acquire()
                finally:
                    key._waits.discard(scope)
            if token is None:
                continue  # the key was retired while we waited
            if key.retired is not None:
                key.pacer.release(token)
                continue
            return key, token

    def retire(self, key: PoolKey, why: str) -> None:
        """No call starts on ``key`` again; callers waiting for it go to the other keys."""
        if key.retired is not None:
            return
        key.retired = why
        self.active -= 1
        for scope in list(key._waits):
            scope.cancel()

    def limit(self) -> int:
        """The combined limit of the active keys (of all of them once none is active)."""
        keys = [k for k in self.keys if k.retired is None] or self.keys
        return sum(k.pacer.statistics().limit for k in keys)

    def tasks_waiting(self) -> int:
        return sum(len(k.client.open) for k in self.keys)

    def report(self) -> list[dict[str, Any]]:
        return [key.report() for key in self.keys]
