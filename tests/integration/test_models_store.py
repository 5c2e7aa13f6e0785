"""The models' Redis adapter against a real Redis (the project's embedded one).

Counts written through Redis must give exactly what the pure in-memory counts give;
writes are at most once per call; pruning keeps ``keep`` partners and never loses an
increment that lands while it runs; the CLV document round-trips.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from models.associations import (
    AssociationCounts,
    Delta,
    apply_basket,
    associations_for,
    basket_delta,
    prune_partners,
)
from models.clv import BgNbd, ClvFit, GammaGamma, clv_document
from stream.devstack import start_redis
from stream.keys import assoc_items_key, assoc_pairs_key
from stream.models_store import ModelsStore

pytestmark = pytest.mark.integration

T0 = 1_795_341_600_000


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, url = start_redis(Path(tmp_path_factory.mktemp("models-redis")))
    try:
        yield url
    finally:
        server.terminate()
        server.wait()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = Redis.from_url(redis_url)
    try:
        yield redis
    finally:
        await redis.aclose()


@pytest.fixture
async def prefix(client: Redis) -> AsyncIterator[str]:
    own = f"test:{uuid.uuid4().hex[:8]}:"
    yield own
    async for key in client.scan_iter(match=f"{own}*", count=1000):
        await client.delete(key)


def make_store(client: Redis, prefix: str, keep: int = 200) -> ModelsStore:
    return ModelsStore(client, prefix, keep=keep)


def random_orders(seed: int, n: int) -> list[tuple[list[str], bool]]:
    rng = random.Random(seed)
    catalogue = [f"sku-{i:03d}" for i in range(50)]
    weights = [1 / (i + 1) for i in range(len(catalogue))]
    return [
        (rng.choices(catalogue, weights, k=rng.randint(1, 6)), rng.random() < 0.15)
        for _ in range(n)
    ]


async def test_redis_counts_give_the_in_memory_answer(client: Redis, prefix: str) -> None:
    store = make_store(client, prefix)
    memory = AssociationCounts()
    batch: list[tuple[Delta, bool]] = []
    for items, cancelled in random_orders(1, 600):
        deltas = [basket_delta(items, +1)] + ([basket_delta(items, -1)] if cancelled else [])
        for delta in deltas:
            memory = apply_basket(memory, delta)
            batch.append((delta, True))
        if len(batch) >= 50:  # a worker's batch: one script call
            assert await store.apply_baskets(batch)
            batch = []
    await store.apply_baskets(batch)
    for product in ["sku-000", "sku-003", "sku-017", "sku-049", "unknown"]:
        expected = associations_for(
            product,
            item_counts=memory.items,
            pair_counts=memory.partners.get(product, {}),
            baskets=memory.baskets,
            min_count=2,
            top_k=8,
        )
        assert await store.associations(product, min_count=2, top_k=8) == expected


async def test_not_applied_and_empty_deltas_write_nothing(client: Redis, prefix: str) -> None:
    store = make_store(client, prefix)
    assert not await store.apply_basket(basket_delta(["a", "b"], +1), applied=False)
    assert not await store.apply_basket(basket_delta([], +1), applied=True)
    assert not await store.apply_baskets([])
    assert [k async for k in client.scan_iter(match=f"{prefix}*")] == []
    assert await store.apply_basket(basket_delta(["a", "b"], +1), applied=True)
    assert await store.read_counts("a") == (1, {"a": 1, "b": 1}, {"b": 1})


async def test_a_retried_call_counts_once(client: Redis, prefix: str) -> None:
    """The client's transport retry re-sends the same arguments, token included."""
    store = make_store(client, prefix)
    keys, args = store._apply_arguments(basket_delta(["a", "b"], +1), token="fixed")
    assert await store._apply(keys=keys, args=args) == 1
    assert await store._apply(keys=keys, args=args) == 0
    assert await store.read_counts("a") == (1, {"a": 1, "b": 1}, {"b": 1})


async def test_all_association_keys_share_one_cluster_slot(client: Redis, prefix: str) -> None:
    store = make_store(client, prefix)
    await store.apply_basket(basket_delta(["x", "y", "z"], +1), applied=True)
    found = [k async for k in client.scan_iter(match=f"{prefix}*")]
    assert len(found) == 6  # items, baskets, marker, three pairs hashes
    assert len({key_slot(k) for k in found}) == 1


async def test_prune_keeps_the_top_partners_and_drops_emptied_counts(
    client: Redis, prefix: str
) -> None:
    store = make_store(client, prefix, keep=3)
    memory = AssociationCounts()
    deltas = [basket_delta(items, +1) for items, _ in random_orders(2, 400)]
    for delta in deltas:
        memory = apply_basket(memory, delta)
    await store.apply_baskets([(d, True) for d in deltas])
    # placed, then cancelled in a later batch: the counts go back to 0 and stay as fields
    for sign in (+1, -1):
        delta = basket_delta(["lonely", "sku-000"], sign)
        memory = apply_basket(memory, delta)
        await store.apply_basket(delta, applied=True)
    report = await store.prune()
    assert report.products == len(memory.items)
    assert report.items_dropped == 1  # "lonely" came and went
    assert await client.hget(assoc_items_key(prefix), "lonely") is None
    assert report.partners_dropped > 0
    for product, partners in memory.partners.items():
        stored = await client.hgetall(assoc_pairs_key(prefix, product))
        as_text = {k.decode(): int(v) for k, v in stored.items()}
        assert as_text == prune_partners(partners, keep=3)


async def test_prune_never_loses_an_increment_made_while_it_runs(
    client: Redis, prefix: str
) -> None:
    store = make_store(client, prefix, keep=1)
    baskets = [["a", "b"], ["a", "c"], ["a", "b"]]
    await store.apply_baskets([(basket_delta(items, +1), True) for items in baskets])
    stale = await store._stale_partners(["a"])
    assert stale == [(assoc_pairs_key(prefix, "a"), {"c": "1"})]
    await store.apply_basket(basket_delta(["a", "c"], +1), applied=True)  # lands mid-prune
    assert await store._drop_unchanged(stale) == [0]
    assert await client.hget(assoc_pairs_key(prefix, "a"), "c") == b"2"


async def test_reads_prune_to_keep_and_handle_huge_partner_lists(
    client: Redis, prefix: str
) -> None:
    # 9,000 partners: more than Lua's unpack() takes at once, so the read slices HMGET.
    partners = {f"p{i:05d}": 1 + i % 7 for i in range(9000)}
    delta = Delta(
        baskets=9000,
        items={"hub": 9000, **{p: 10 for p in partners}},
        pairs={("hub", p): n for p, n in partners.items()},
    )
    await make_store(client, prefix).apply_basket(delta, applied=True)
    baskets, items, pairs = await make_store(client, prefix, keep=10_000).read_counts("hub")
    assert (baskets, len(items), pairs) == (9000, 9001, partners)
    _, _, pruned = await make_store(client, prefix, keep=5).read_counts("hub")
    assert pruned == prune_partners(partners, keep=5)


async def test_clv_document_round_trip(client: Redis, prefix: str) -> None:
    store = make_store(client, prefix)
    assert await store.load_clv() is None
    assert await store.load_clv_fit() is None
    fit = ClvFit(BgNbd(0.24, 30.87, 0.79, 2.43), GammaGamma(6.25, 3.74, 15.44), 2357, 946)
    document: dict[str, Any] = clv_document(fit, calibration_end=T0, fitted_at=T0 + 1)
    await store.save_clv(document)
    assert await store.load_clv() == document
    assert await store.load_clv_fit() == fit
