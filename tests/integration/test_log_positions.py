"""Telling a log that started again from a redelivery (stream.offsets), against real Redis,
with the broker's answer about where each log ends given by the test."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from stream.batching import Delivery
from stream.metrics import Metrics
from stream.offsets import LogPositions
from stream.settings import Settings
from stream.store import connect
from tests.integration.conftest import delete_keys, isolated


def batch(offsets: range) -> list[Delivery]:
    return [Delivery("t", 0, o, b"c", b"{}") for o in offsets]


def positions(redis: Redis, settings: Settings, ends: list[int]) -> LogPositions:
    answers = iter(ends)

    async def log_end(topic: str, partition: int) -> int | None:
        return next(answers)

    return LogPositions(
        redis,
        prefix=settings.redis_prefix,
        ttl_ms=60_000,
        log_end=log_end,
        metrics=Metrics(CollectorRegistry()),
    )


async def test_a_redelivery_a_new_log_and_a_stale_answer(settings: Settings) -> None:
    own = isolated(settings, "positions")
    redis = connect(own.redis_url or "", retries=0)
    try:
        first = positions(redis, own, ends=[])
        assert await first.sources(batch(range(100, 120))) == {("t", 0): "t/0"}
        await first.applied(batch(range(100, 120)))

        # a new worker reads 110..119 again: the log still ends past 119
        again = positions(redis, own, ends=[200])
        assert await again.sources(batch(range(110, 120))) == {("t", 0): "t/0"}

        # a stale answer (the log "ends" at 118 while record 119 is in hand): no reset
        stale = positions(redis, own, ends=[118, 118])
        assert await stale.sources(batch(range(110, 120))) == {("t", 0): "t/0"}

        # one low answer that the second look does not confirm: no reset
        flaky = positions(redis, own, ends=[5, 200])
        assert await flaky.sources(batch(range(0, 3))) == {("t", 0): "t/0"}

        # the log starts again: offsets 0..2, and it ends at 3, twice
        reset = positions(redis, own, ends=[3, 3])
        assert await reset.sources(batch(range(0, 3))) == {("t", 0): "t/0@1"}
        await reset.applied(batch(range(0, 3)))
        later = positions(redis, own, ends=[])
        assert await later.sources(batch(range(3, 5))) == {("t", 0): "t/0@1"}
    finally:
        await redis.aclose()
        delete_keys(own)
