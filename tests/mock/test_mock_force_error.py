"""The ``force_error`` knob: any error answer on demand, in the service's documented shape."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from mock_helpers import ASYNC_PATH, AUTH, SYNC_PATH, body, post, running
from pydantic import ValidationError
from test_mock_cli import call

from wanbatch.mock import ForcedError, MockConfig, cli_main

pytestmark = pytest.mark.anyio

ASYNC = {**AUTH, "X-DashScope-Async": "enable"}


async def test_every_call_gets_the_error_in_the_documented_shape() -> None:
    forced = ForcedError(status=429, code="PrepaidBillOverdue")
    async with running(MockConfig(image_size=(8, 8), force_error=forced)) as (mock, session):
        for _ in range(3):
            status, content_type, answer = await post(session, SYNC_PATH, body(n=1))
            assert (status, content_type) == (429, "application/json")
            assert isinstance(answer, dict) and set(answer) == {"request_id", "code", "message"}
            assert answer["code"] == "PrepaidBillOverdue" and answer["message"]
        status, _, answer = await post(session, ASYNC_PATH, body(n=1), ASYNC)
        assert (status, answer["code"]) == (429, "PrepaidBillOverdue")  # type: ignore[index]
        counters = mock.counters()
    assert counters.calls_by_outcome == {"429:PrepaidBillOverdue": 4}
    assert counters.images_generated == 0
    assert counters.throttled == 0  # a billing state, not a rate limit


async def test_documented_and_custom_messages() -> None:
    async with running(MockConfig(image_size=(8, 8))) as (mock, session):
        mock.configure(force_error={"status": 404, "code": "WorkSpaceNotFound"})
        answer = (await post(session, SYNC_PATH, body(n=1)))[2]
        assert answer["message"] == "WorkSpace can not be found."  # type: ignore[index]
        mock.configure(force_error={"status": 401, "code": "NOT AUTHORIZED", "message": "no"})
        status, _, answer = await post(session, SYNC_PATH, body(n=1))
        assert (status, answer["code"], answer["message"]) == (401, "NOT AUTHORIZED", "no")  # type: ignore[index]
        mock.configure(force_error={"status": 500, "code": "BrandNew"})
        answer = (await post(session, SYNC_PATH, body(n=1)))[2]
        assert "BrandNew" in answer["message"]  # type: ignore[index]


async def test_after_and_times_then_answers_as_usual() -> None:
    forced = ForcedError(status=500, code="ModelServingError", after=2, times=2)
    async with running(MockConfig(image_size=(8, 8), force_error=forced)) as (mock, session):
        statuses = [(await post(session, SYNC_PATH, body(n=1)))[0] for _ in range(6)]
        assert statuses == [200, 200, 500, 500, 200, 200]
        # Setting the knob again starts its counts again: two successes first.
        mock.configure(force_error={"status": 503, "code": "ModelUnavailable", "after": 2})
        statuses = [(await post(session, SYNC_PATH, body(n=1)))[0] for _ in range(4)]
        assert statuses == [200, 200, 503, 503]
        mock.configure(force_error=None)
        assert (await post(session, SYNC_PATH, body(n=1)))[0] == 200
        assert mock.counters().images_generated == 7


async def test_rate_is_seeded_and_partial() -> None:
    async def statuses() -> list[int]:
        forced = ForcedError(status=500, code="InternalError.Timeout", rate=0.5)
        config = MockConfig(image_size=(8, 8), seed=3, force_error=forced)
        async with running(config) as (_, session):
            return [(await post(session, SYNC_PATH, body(n=1)))[0] for _ in range(40)]

    first = await statuses()
    assert first == await statuses()  # a seed replays the same answers
    assert 5 < first.count(500) < 35 and set(first) == {200, 500}


async def test_the_key_is_still_checked_first() -> None:
    forced = ForcedError(status=429, code="PostpaidBillOverdue")
    config = MockConfig(image_size=(8, 8), api_key="sk-right", force_error=forced)
    async with running(config) as (_, session):
        answer = (await post(session, SYNC_PATH, body(n=1)))[2]  # AUTH carries another key
        assert answer["code"] == "InvalidApiKey"  # type: ignore[index]


@pytest.mark.parametrize(
    "knob",
    [
        {"status": 200, "code": "X"},
        {"status": 600, "code": "X"},
        {"status": 429, "code": ""},
        {"status": 429},
        {"status": 429, "code": "X", "rate": 1.5},
        {"status": 429, "code": "X", "times": 0},
        {"status": 429, "code": "X", "after": -1},
        {"status": 429, "code": "X", "colour": "red"},
    ],
)
def test_invalid_knobs_are_refused(knob: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MockConfig(force_error=knob)  # type: ignore[arg-type]


async def test_set_and_cleared_over_http() -> None:
    async with running(MockConfig(image_size=(8, 8))) as (mock, session):
        knob = {"force_error": {"status": 429, "code": "CommodityNotPurchased", "times": 1}}
        async with session.post("/mock/config", json=knob) as r:
            assert r.status == 200
            assert (await r.json())["force_error"]["code"] == "CommodityNotPurchased"
        async with session.post("/mock/config", json={"force_error": {"status": 99}}) as r:
            assert r.status == 400 and "force_error" in (await r.json())["error"]
        assert (await post(session, SYNC_PATH, body(n=1)))[0] == 429
        assert (await post(session, SYNC_PATH, body(n=1)))[0] == 200  # times=1 used up
        async with session.post("/mock/config", json={"force_error": None}) as r:
            assert (await r.json())["force_error"] is None
        assert mock.config.force_error is None


def test_cli_flags() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    command = [sys.executable, "-m", "wanbatch.mock", "--port", "0", "--image-size", "8x8"]
    command += ["--force-error", "401:invalid access token or token expired"]
    command += ["--force-error-after", "1", "--force-error-times", "1"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            assert call(base_url, body(n=1))[0] == 200
            status, answer = call(base_url, body(n=1))
            assert (status, answer["code"]) == (401, "invalid access token or token expired")
            assert call(base_url, body(n=1))[0] == 200
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--force-error-times", "2"], "needs --force-error"),
        (["--force-error", "429:X", "--force-error-rate", "2"], "--force-error-rate:"),
        (["--force-error", "99:X"], "--force-error:"),
    ],
)
def test_cli_rejects_bad_force_flags(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(argv) == 2
    assert problem in capsys.readouterr().err


@pytest.mark.parametrize("value", ["429", "PrepaidBillOverdue", "x:Code", "429:"])
def test_cli_rejects_a_malformed_status_code(value: str) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main(["--force-error", value])
    assert exited.value.code == 2
