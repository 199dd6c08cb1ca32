"""The front door's name table: every public name loads, and no two public things share a name."""

from __future__ import annotations

import inspect
import typing

import pytest

import wanbatch
from wanbatch import _errors, _events


def _event_classes() -> list[type]:
    return list(typing.get_args(_events.Event))


def _exception_classes() -> list[type]:
    values = [getattr(_errors, name) for name in _errors.__all__]
    return [value for value in values if inspect.isclass(value) and issubclass(value, Exception)]


@pytest.mark.parametrize("name", wanbatch.__all__)
def test_every_public_name_is_importable(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from wanbatch import {name}", namespace)  # the way a user writes it
    assert namespace[name] is getattr(wanbatch, name)


def test_no_event_class_shares_a_name_with_an_exception_class() -> None:
    events = {cls.__name__ for cls in _event_classes()}
    exceptions = {cls.__name__ for cls in _exception_classes()}
    assert len(events) >= 10 and len(exceptions) >= 10  # both sides were found
    assert events & exceptions == set()


def test_public_event_and_exception_names_mean_one_class() -> None:
    # Every event is public (a callback tells them apart by class); each public name of an event
    # or an exception is that very class, not a namesake from the other family.
    for cls in _event_classes():
        assert cls.__name__ in wanbatch.__all__, cls.__name__
    for cls in [*_event_classes(), *_exception_classes()]:
        if cls.__name__ in wanbatch.__all__:
            assert getattr(wanbatch, cls.__name__) is cls, cls.__name__
