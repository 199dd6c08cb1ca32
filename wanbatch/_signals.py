"""Stop signals: a run that a first Ctrl-C (or kill, or a closed terminal) stops and a second
aborts, for command lines."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

__all__ = ["STOP_SIGNALS", "on_stop_signals"]

T = TypeVar("T")

#: Signals that stop a run: Ctrl-C, kill, and a closed terminal or dropped ssh session (SIGHUP,
#: which would otherwise end the process without a drain).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


async def on_stop_signals(main: Callable[[], Awaitable[T]], on_signal: Callable[[], None]) -> T:
    """Await ``main()``, calling ``on_signal()`` at each stop signal received meanwhile.

    An exception of ``main`` is raised as it is (not in an ExceptionGroup).
    """
    result: list[T] = []  # main's value, once it returned
    error: Exception | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
                async for _ in signals:
                    on_signal()

        tg.start_soon(watch)
        try:
            result.append(await main())
        except Exception as exc:  # re-raised below, outside the group: no ExceptionGroup
            error = exc
        finally:
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return result[0]
