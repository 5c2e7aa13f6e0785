"""A batch naming thousands of products reads their associations over one connection at a
time: what it opens does not grow with what it names (the worker used to open a call per
product at once and crash with MaxConnectionsError)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from models.outputs import BasketChange
from stream.facts import FactsSource
from stream.models_store import ModelsStore
from stream.settings import Settings
from stream.store import connect
from tests.integration.conftest import unique

PRODUCTS = 5_000


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = connect(settings.redis_url or "", retries=0, connections=50)
    yield client
    await client.aclose()


def connections_opened(client: Redis) -> int:
    pool = client.connection_pool
    return len(pool._available_connections) + len(pool._in_use_connections)


async def test_thousands_of_products_are_read_over_one_connection(
    redis: Redis, settings: Settings
) -> None:
    prefix = f"{settings.redis_prefix}{unique('bounded')}:"
    models = ModelsStore(redis, prefix)
    baskets = [("p1", "p2", "p3"), ("p1", "p2"), ("p2", "p3")]
    await models.apply_changes(
        BasketChange(f"t{i}", products, +1) for i, products in enumerate(baskets)
    )
    before = connections_opened(redis)
    named = ["p1", "p2", "p3", *(f"x{i}" for i in range(PRODUCTS))]
    facts = await FactsSource(models, prefix=prefix).for_products(named)
    try:
        assert connections_opened(redis) - before <= 1
        assert facts.bought_together["p1"][0] == "p2"
        assert set(facts.bought_together) == {"p1", "p2", "p3"}
    finally:
        async for key in redis.scan_iter(match=f"{prefix}*"):
            await redis.delete(key)
