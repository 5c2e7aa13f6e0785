"""How the API answers a failing route: JSON always, 503 for Redis, bounded holding.

The routes themselves run against a real worker (tests/integration/test_api_*.py);
here the guard alone, with routes that fail on purpose.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agents.api import BadQuery, Guard

REQUEST: Any = SimpleNamespace(method="GET", path="/customers/c1")


class Answers:
    """Stands in for a faust View: records what it was asked to answer."""

    def json(self, value: Any, *, status: int = 200, headers: Any = None) -> Any:
        return status, value, dict(headers or {})


async def answer(guard: Guard, failure: BaseException | None, *, bounded: bool = True) -> Any:
    async def route() -> Any:
        if failure is not None:
            raise failure
        return 200, {"ok": True}, {}

    view: Any = Answers()
    return await guard.answer(view, REQUEST, route, bounded=bounded)


@pytest.mark.parametrize(
    "failure",
    [RedisConnectionError("No connection available."), RedisTimeoutError("Timeout reading")],
)
async def test_redis_trouble_answers_503_json(failure: Exception) -> None:
    status, body, headers = await answer(Guard(limit=4, deadline=5), failure)

    assert status == 503 and "Redis is busy or unreachable" in body["error"]
    assert headers == {"Retry-After": "1"}


async def test_an_unexpected_failure_answers_500_json_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="agents.api"):
        status, body, _ = await answer(Guard(limit=4, deadline=5), KeyError("secret detail"))

    assert status == 500 and body == {"error": "internal error (see the worker log)"}
    assert [r.exc_info is not None for r in caplog.records] == [True]


async def test_a_bad_query_answers_400_with_its_message() -> None:
    status, body, _ = await answer(Guard(limit=4, deadline=5), BadQuery("top_k must be ..."))

    assert (status, body) == (400, {"error": "top_k must be ..."})


async def test_a_route_past_its_deadline_answers_503() -> None:
    guard = Guard(limit=4, deadline=0.05)

    async def slow() -> Any:
        await asyncio.Event().wait()  # Redis never answers

    view: Any = Answers()
    status, body, _ = await guard.answer(view, REQUEST, slow, bounded=True)

    assert status == 503 and "Redis" in body["error"]
    assert guard.held == 0


async def test_requests_beyond_the_limit_are_turned_away_at_once() -> None:
    guard = Guard(limit=2, deadline=60)
    release = asyncio.Event()

    async def held() -> Any:
        await release.wait()
        return 200, {}, {}

    view: Any = Answers()
    first = [asyncio.create_task(guard.answer(view, REQUEST, held, bounded=True)) for _ in "ab"]
    await asyncio.sleep(0)
    status, body, _ = await guard.answer(view, REQUEST, held, bounded=True)
    release.set()

    assert status == 503 and "the API is busy" in body["error"]
    assert [(await t)[0] for t in first] == [200, 200]
    assert guard.held == 0
