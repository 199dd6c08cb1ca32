"""Every behaviour knob of :class:`MockConfig`, checked through the counters (not the clock)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from mock_helpers import AUTH, SSE, SYNC_PATH, body, interleave_body, parse_sse, post, running
from pydantic import ValidationError

from wanbatch.mock import MockConfig, MockServer

pytestmark = pytest.mark.anyio


async def burst(session: aiohttp.ClientSession, count: int, **params: Any) -> list[int]:
    """``count`` concurrent edit calls; their statuses."""
    calls = [post(session, SYNC_PATH, body(f"burst {i}", n=1, **params)) for i in range(count)]
    return [status for status, _, _ in await asyncio.gather(*calls)]


async def test_defaults_are_all_off() -> None:
    config = MockConfig()
    assert config.latency == 0 and config.max_concurrency is None and config.rps is None
    assert config.error_rate == config.reset_rate == config.truncate_rate == 0
    assert config.url_ttl == 86400 and config.budget is None and config.api_key is None
    async with running(MockConfig(image_size=(8, 8))) as (mock, session):
        assert set(await burst(session, 20)) == {200}
        assert mock.counters().images_generated == 20


async def test_max_concurrency_answers_429_at_once() -> None:
    async with running(MockConfig(max_concurrency=3, latency=0.5)) as (mock, session):
        statuses = await burst(session, 10)
        counters = mock.counters()
    assert statuses.count(429) >= 1 and statuses.count(200) >= 3
    assert counters.peak_in_flight <= 3
    assert counters.throttled == statuses.count(429)
    assert counters.calls_by_outcome == {
        "200": statuses.count(200),
        "429:Throttling.RateQuota": statuses.count(429),
    }
    assert counters.images_generated == statuses.count(200)  # throttled calls bill nothing


async def test_latency_keeps_calls_in_flight() -> None:
    async with running(MockConfig(latency=0.3)) as (mock, session):
        call = asyncio.ensure_future(post(session, SYNC_PATH, body(n=1)))
        for _ in range(500):
            if mock.counters().in_flight == 1:
                break
            await asyncio.sleep(0.005)
        assert mock.counters().in_flight == 1
        status, _, _ = await call
        assert status == 200 and mock.counters().in_flight == 0


async def test_configure_changes_the_cap_at_run_time() -> None:
    async with running(MockConfig(max_concurrency=1, latency=0.3)) as (mock, session):
        assert 429 in await burst(session, 4)
        mock.configure(max_concurrency=10)
        assert await burst(session, 4) == [200] * 4
        assert mock.counters().peak_in_flight == 4


async def test_rps_window_counts_only_accepted_calls() -> None:
    async with running(MockConfig(rps=2, retry_after=None)) as (mock, session):
        statuses = [(await post(session, SYNC_PATH, body(n=1)))[0] for _ in range(5)]
        assert statuses == [200, 200, 429, 429, 429]
        mock.advance_clock(1.01)  # the window slides; refusals took no room in it
        statuses = [(await post(session, SYNC_PATH, body(n=1)))[0] for _ in range(3)]
        assert statuses == [200, 200, 429]
        counters = mock.counters()
        assert counters.throttled == 4 and counters.images_generated == 4


async def test_retry_after_header_is_optional() -> None:
    async with running(MockConfig(rps=1)) as (mock, session):
        await post(session, SYNC_PATH, body(n=1))
        async with session.post(SYNC_PATH, json=body(n=1), headers=AUTH) as r:
            assert r.status == 429 and "Retry-After" not in r.headers
            answer = await r.json()
        assert answer["code"] == "Throttling.RateQuota"
        assert answer["message"] == "Requests rate limit exceeded, please try again later."
        mock.configure(retry_after=7)
        async with session.post(SYNC_PATH, json=body(n=1), headers=AUTH) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "7"


async def test_error_rate_gives_500_json_and_bills_nothing() -> None:
    async with running(MockConfig(error_rate=1.0)) as (mock, session):
        status, content_type, answer = await post(session, SYNC_PATH, body(n=2))
        assert (status, content_type) == (500, "application/json")
        assert answer["code"] == "InternalError"  # type: ignore[index]
        assert mock.counters().images_generated == 0
        assert mock.counters().calls_by_outcome == {"500:InternalError": 1}


async def test_gateway_errors_are_not_json() -> None:
    async with running(MockConfig(gateway_error_rate=1.0, seed=3)) as (mock, session):
        seen = set()
        for _ in range(8):
            async with session.post(SYNC_PATH, json=body(n=1), headers=AUTH) as r:
                seen.add(r.status)
                assert r.content_type == "text/html"
                assert "<html>" in await r.text()
        assert seen == {502, 503}
        assert mock.counters().images_generated == 0


async def test_reset_drops_the_connection_unbilled() -> None:
    async with running(MockConfig(reset_rate=1.0)) as (mock, session):
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(session, SYNC_PATH, body(n=2))
        counters = mock.counters()
        assert counters.calls_by_outcome == {"reset": 1}
        assert counters.images_generated == 0 and counters.in_flight == 0


async def test_truncated_downloads_are_short() -> None:
    async with running(MockConfig(image_size=(200, 200))) as (mock, session):
        _, _, answer = await post(session, SYNC_PATH, body(n=1))
        url = answer["output"]["choices"][0]["message"]["content"][0]["image"]  # type: ignore[index]
        mock.configure(truncate_rate=1.0)
        async with session.get(url) as r:
            assert r.status == 200
            promised = int(r.headers["Content-Length"])
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
        counters = mock.counters()
        assert counters.downloads_by_outcome["truncated"] == 1
        assert 0 < counters.bytes_served < promised


async def test_url_ttl_and_advance_clock_expire_urls() -> None:
    async with running(MockConfig(url_ttl=60, image_size=(8, 8))) as (mock, session):
        _, _, answer = await post(session, SYNC_PATH, body(n=1))
        url = answer["output"]["choices"][0]["message"]["content"][0]["image"]  # type: ignore[index]
        mock.advance_clock(30)
        async with session.get(url) as r:
            assert r.status == 200
        mock.advance_clock(31)
        async with session.get(url) as r:
            assert r.status == 403 and "Request has expired." in await r.text()
        assert mock.counters().downloads_by_outcome["expired"] == 1


async def test_inspection_triggers() -> None:
    async with running(MockConfig(inspection_triggers=("weapon", "gore"))) as (mock, session):
        status, _, answer = await post(session, SYNC_PATH, body("draw a WEAPON and a weapon"))
        assert (status, answer["code"]) == (400, "DataInspectionFailed")  # type: ignore[index]
        assert answer["message"] == "Input or output data may contain inappropriate content."  # type: ignore[index]
        status, _, _ = await post(session, SYNC_PATH, body("draw a garden", n=1))
        assert status == 200
        assert mock.counters().images_by_prompt == {"draw a garden": 1}


async def test_api_key() -> None:
    async with running(MockConfig(api_key="sk-right")) as (mock, session):
        for headers in ({"Authorization": "Bearer sk-wrong"}, {}, {"Authorization": "sk-right"}):
            status, _, answer = await post(session, SYNC_PATH, body(n=1), headers)
            assert (status, answer["code"]) == (401, "InvalidApiKey")  # type: ignore[index]
        status, _, _ = await post(
            session, SYNC_PATH, body(n=1), {"Authorization": "Bearer sk-right"}
        )
        assert status == 200
        assert mock.counters().calls_by_outcome == {"401:InvalidApiKey": 3, "200": 1}


async def test_budget_answers_arrearage_after_n_images() -> None:
    async with running(MockConfig(budget=3)) as (mock, session):
        assert (await post(session, SYNC_PATH, body(n=2)))[0] == 200
        assert (await post(session, SYNC_PATH, body(n=2)))[0] == 200  # crosses the budget
        status, _, answer = await post(session, SYNC_PATH, body(n=1))
        assert (status, answer["code"]) == (400, "Arrearage")  # type: ignore[index]
        assert "good standing" in answer["message"]  # type: ignore[index]
        assert mock.counters().images_generated == 4


async def test_free_quota() -> None:
    async with running(MockConfig(free_quota=1)) as (mock, session):
        assert (await post(session, SYNC_PATH, body(n=1)))[0] == 200
        status, _, answer = await post(session, SYNC_PATH, body(n=1))
        assert (status, answer["code"]) == (429, "Throttling.AllocationQuota")  # type: ignore[index]
        assert answer["message"] == "Free allocated quota exceeded."  # type: ignore[index]
        assert mock.counters().throttled == 1


async def test_image_size_is_a_stand_in_for_the_served_png_only() -> None:
    async with running(MockConfig(image_size=(24, 12))) as (_mock, session):
        _, _, answer = await post(session, SYNC_PATH, body(n=1, size="1280*720"))
        assert answer["usage"]["size"] == "1280*720"  # type: ignore[index]
        url = answer["output"]["choices"][0]["message"]["content"][0]["image"]  # type: ignore[index]
        async with session.get(url) as r:
            data = await r.read()
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (24, 12)


async def outcomes(seed: int) -> list[int]:
    config = MockConfig(seed=seed, error_rate=0.3, gateway_error_rate=0.2, latency_jitter=0.001)
    async with running(config) as (_mock, session):
        return [(await post(session, SYNC_PATH, body(n=1)))[0] for _ in range(30)]


async def test_seed_makes_faults_reproducible() -> None:
    first, second, other = await outcomes(11), await outcomes(11), await outcomes(12)
    assert first == second
    assert set(first) > {200} and first != other


async def test_sse_events_spread_over_the_latency_and_bill_as_produced() -> None:
    async with running(MockConfig(latency=0.2)) as (mock, session):
        async with session.post(SYNC_PATH, json=interleave_body(max_images=2), headers=SSE) as r:
            first_line = await r.content.readline()
            assert first_line == b"id:1\n"
            assert mock.counters().in_flight == 1
            events = parse_sse(first_line.decode() + (await r.text()))
        assert events[-1]["data"]["usage"]["image_count"] == 2
        assert mock.counters().images_generated == 2 and mock.counters().in_flight == 0


async def test_bad_knobs_are_refused() -> None:
    with pytest.raises(ValidationError):
        MockConfig(error_rate=1.5)
    with pytest.raises(ValidationError):
        MockConfig(max_concurrency=0)
    async with MockServer() as mock:
        with pytest.raises(ValidationError):
            mock.configure(no_such_knob=True)
        assert mock.configure(inspection_triggers="nsfw").inspection_triggers == ("nsfw",)
        assert mock.advance_clock(5) == 5 and mock.config.clock_offset == 5
