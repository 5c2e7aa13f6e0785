"""The HTTP API while Redis is paused (SIGSTOP of a Redis this test starts): it answers.

``/health`` used to hang with Redis paused, and readers waited on the pool for as
long as Redis stayed away. Now ``/health`` answers 503 within about a second (its
own connection and timeout), every reader answers 503 with a JSON ``error`` (never
500), readers beyond what the API may hold are turned away at once, and when
Redis resumes everything answers 200 again.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from agents.api import WAITING_PER_CONNECTION
from stream.devstack import start_redis
from stream.producer import EventProducer
from stream.settings import Settings
from tests.integration.conftest import eventually, http_get, isolated, running_worker, unique

TS = 1_795_341_600_000  # 2026-11-22T10:00:00Z
API_CONNECTIONS = 2
#: More readers at once than the API holds (WAITING_PER_CONNECTION per connection).
STORM = 3 * WAITING_PER_CONNECTION * API_CONNECTIONS


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A Redis of this test's own, so pausing it disturbs no other test."""
    proc, url = start_redis(tmp_path / "redis")
    try:
        yield proc, url
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def own_settings(settings: Settings, own_redis: tuple[subprocess.Popen[bytes], str]) -> Settings:
    return isolated(
        settings,
        "pause",
        redis_url=own_redis[1],
        redis_timeout_seconds=2.0,
        api_redis_connections=API_CONNECTIONS,
    )


@pytest.fixture
def own_worker(own_settings: Settings, tmp_path: Path) -> Iterator[str]:
    with running_worker(own_settings, tmp_path) as base:
        yield base


async def storm(base: str, customer_id: str) -> list[tuple[int, Any]]:
    """``STORM`` profile reads at once."""
    connector = aiohttp.TCPConnector(limit=STORM)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> tuple[int, Any]:
            async with session.get(f"{base}/customers/{customer_id}") as answer:
                return answer.status, orjson.loads(await answer.read())

        return await asyncio.gather(*(one() for _ in range(STORM)))


async def test_health_and_readers_answer_while_redis_is_paused(
    own_settings: Settings, own_worker: str, own_redis: tuple[subprocess.Popen[bytes], str]
) -> None:
    base, redis_server = own_worker, own_redis[0]
    cid = unique("c")
    async with EventProducer(own_settings, own_settings.kafka_url or "") as producer:
        order = {"event_id": unique("e"), "ts": TS, "customer_id": cid, "order_id": "o1"}
        await producer.send("orders", {**order, "total": 20.0})
    await eventually(lambda: http_get(f"{base}/customers/{cid}")[0] == 200)

    redis_server.send_signal(signal.SIGSTOP)
    try:
        status, health = http_get(f"{base}/health")  # would time out if it hung
        assert status == 503, health
        assert health["status"] == "down" and "Redis" in health["error"]

        answers = await storm(base, cid)
    finally:
        redis_server.send_signal(signal.SIGCONT)

    assert Counter(status for status, _ in answers) == {503: STORM}
    errors = [body["error"] for _, body in answers]
    assert any("Redis is busy or unreachable" in e for e in errors), errors[:3]
    assert any("the API is busy" in e for e in errors), errors[:3]

    await eventually(lambda: http_get(f"{base}/health")[0] == 200)
    status, profile = http_get(f"{base}/customers/{cid}")
    assert (status, profile["revenue"]) == (200, 20.0)
