"""One mock, several accounts (``MockConfig.keys``): each key its own cap, rate and budget."""

from __future__ import annotations

import asyncio
import json

import pytest
from mock_helpers import ASYNC_PATH, SYNC_PATH, body, post, running

from wanbatch.mock import MockConfig
from wanbatch.mock._cli import parse_config

pytestmark = pytest.mark.anyio


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_each_key_has_its_own_cap_and_unknown_keys_are_refused() -> None:
    keys = {"key-a": {"max_concurrency": 2}, "key-b": {"max_concurrency": 3}}
    async with running(MockConfig(image_size=(8, 8), latency=0.4, keys=keys)) as (mock, session):
        calls = [
            post(session, SYNC_PATH, body(f"{key} {i}", n=1), _auth(key))
            for key in ("key-a", "key-b")
            for i in range(5)
        ]
        statuses = [status for status, _, _ in await asyncio.gather(*calls)]
        unknown, _, answer = await post(session, SYNC_PATH, body(n=1), _auth("key-c"))
        generated = mock.counters().images_generated
    assert statuses[:5].count(200) == 2 and statuses[5:].count(200) == 3
    assert set(statuses) == {200, 429}
    assert unknown == 401 and isinstance(answer, dict) and answer["code"] == "InvalidApiKey"
    assert generated == 5


async def test_a_key_out_of_budget_answers_its_billing_error_and_the_others_go_on() -> None:
    keys = {"key-a": {"budget": 2, "billing_code": "PrepaidBillOverdue"}, "key-b": {}}
    async with running(MockConfig(image_size=(8, 8), keys=keys)) as (_, session):
        first = [(await post(session, SYNC_PATH, body(n=1), _auth("key-a")))[0] for _ in range(3)]
        status, _, answer = await post(session, SYNC_PATH, body(n=1), _auth("key-a"))
        other = (await post(session, SYNC_PATH, body(n=1), _auth("key-b")))[0]
    assert first == [200, 200, 429] and status == 429
    assert isinstance(answer, dict) and answer["code"] == "PrepaidBillOverdue"
    assert other == 200


async def test_a_task_counts_against_its_keys_budget() -> None:
    async with running(MockConfig(image_size=(8, 8), keys={"key-a": {"budget": 1}})) as (
        _,
        session,
    ):
        headers = {**_auth("key-a"), "X-DashScope-Async": "enable"}
        first, _, _ = await post(session, ASYNC_PATH, body(n=1), headers)
        second, _, answer = await post(session, ASYNC_PATH, body(n=1), headers)
    assert first == 200 and second == 400
    assert isinstance(answer, dict) and answer["code"] == "Arrearage"


def test_keys_never_show_in_repr_or_public_dict() -> None:
    config = MockConfig(keys={"sk-secret-account-1": {"budget": 3}})
    shown = repr(config) + json.dumps(config.public_dict())
    assert "sk-secret-account-1" not in shown
    assert config.public_dict()["keys"] == {
        "key1": {
            "max_concurrency": None,
            "rps": None,
            "budget": 3,
            "billing_code": "Arrearage",
        }
    }


def test_cli_key_flags(capsys: pytest.CaptureFixture[str]) -> None:
    parsed = parse_config(["--key", "k1:max_concurrency=3,rps=5", "--key", "k2:budget=4"])
    assert not isinstance(parsed, int)
    config = parsed[0]
    assert config.keys is not None and set(config.keys) == {"k1", "k2"}
    assert config.keys["k1"].max_concurrency == 3 and config.keys["k2"].budget == 4
    assert parse_config(["--key", "k1:nonsense=3"]) == 2
    assert "k1" not in capsys.readouterr().err
