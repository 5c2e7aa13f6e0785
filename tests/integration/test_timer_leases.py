"""Timer leases against real Redis: a claimed timer is released when applied, and a claim
whose tick was never applied (its lease expired) is claimed again, not lost, and does not
stop other due timers from being claimed."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest

from agents.customers import process_batch
from agents.worker import build_context
from stream import keys
from stream.batching import Delivery
from stream.records import OutRecord
from stream.settings import Settings
from stream.store import Store
from tests.integration.conftest import delete_keys, isolated

LEASE_MS = 30_000
T0 = 1_700_000_000_000  # 2023-11-14: history


@pytest.fixture
def store(scratch_store: Store) -> Store:
    return scratch_store


async def schedule(store: Store, due: dict[str, int]) -> None:
    await store.redis.zadd(keys.timers_due(store.prefix), due)


async def test_an_applied_tick_releases_its_lease(store: Store) -> None:
    await schedule(store, {"a|b": 1_000, "c": 2_000})  # a '|' in an id is fine
    claimed = await store.claim_timers(engine_now=5_000, wall_now=0, lease_ms=LEASE_MS, limit=10)
    assert sorted(claimed) == [("a|b", 1_000), ("c", 2_000)]
    await store.settle([], claimed)
    assert await store.redis.zcard(keys.timers_leased(store.prefix)) == 0


async def test_an_expired_lease_is_claimed_again_with_its_due_time(store: Store) -> None:
    await schedule(store, {f"c{i}": 1_000 + i for i in range(50)})
    first = await store.claim_timers(engine_now=5_000, wall_now=0, lease_ms=LEASE_MS, limit=100)
    assert len(first) == 50
    # nothing applied them; meanwhile 20 more timers fell due
    await schedule(store, {f"n{i}": 3_000 for i in range(20)})
    again = await store.claim_timers(
        engine_now=5_000, wall_now=LEASE_MS + 1, lease_ms=LEASE_MS, limit=100
    )
    assert sorted(again) == sorted(first + [(f"n{i}", 3_000) for i in range(20)])
    await store.settle([], again)
    assert await store.redis.zcard(keys.timers_leased(store.prefix)) == 0
    assert await store.redis.zcard(keys.timers_due(store.prefix)) == 0


async def test_an_expired_lease_never_overrides_a_due_time_written_since(store: Store) -> None:
    await schedule(store, {"c": 1_000})
    await store.claim_timers(engine_now=5_000, wall_now=0, lease_ms=LEASE_MS, limit=10)
    # the tick was applied and wrote the customer's next timer, but its lease was not yet
    # released when it expired: the newer entry stands
    await schedule(store, {"c": 9_000})
    await store.claim_timers(engine_now=0, wall_now=LEASE_MS + 1, lease_ms=LEASE_MS, limit=10)
    assert await store.redis.zscore(keys.timers_due(store.prefix), "c") == 9_000


class Published:
    """Stands in for the broker: keeps what would be published."""

    def __init__(self) -> None:
        self.records: list[OutRecord] = []

    async def publish(self, records: Sequence[OutRecord]) -> None:
        self.records += records


async def test_a_tick_claimed_twice_keeps_the_customers_next_timer(settings: Settings) -> None:
    """The second tick of a timer whose lease expired changes nothing; the customer's next
    timer must still be in the index afterwards (it was lost, and with it every later
    lifecycle change and delayed message of the customer)."""
    own = isolated(settings, "ticks", clock="event")
    ctx = build_context(own, Published())  # type: ignore[arg-type]
    due_index = keys.timers_due(own.redis_prefix)
    order = {"event_id": "o1", "ts": T0, "customer_id": "c", "order_id": "o1", "total": 9.0}
    try:
        await process_batch([delivery(own, "orders", 0, order)], ctx)
        (_, first), *_ = await ctx.store.redis.zrange(due_index, 0, 0, withscores=True)
        claimed = await ctx.store.claim_timers(
            engine_now=int(first), wall_now=0, lease_ms=LEASE_MS, limit=10
        )
        assert claimed == [("c", int(first))]
        tick = {"kind": "tick", "event_id": "t1", "customer_id": "c", "ts": int(first)}
        await process_batch([delivery(own, "internal", 0, tick)], ctx)
        (_, after), *_ = await ctx.store.redis.zrange(due_index, 0, 0, withscores=True)
        assert after > first
        await ctx.store.claim_timers(  # the lease expired; the stale entry is claimed
            engine_now=int(after), wall_now=LEASE_MS + 1, lease_ms=LEASE_MS, limit=10
        )
        await store_without(ctx.store, due_index, "c")
        again = {**tick, "event_id": "t2"}
        await process_batch([delivery(own, "internal", 1, again)], ctx)
        assert await ctx.store.redis.zscore(due_index, "c") == after
    finally:
        delete_keys(own)


async def store_without(store: Store, key: str, member: str) -> None:
    """What a second claim of the customer's entry does to the index."""
    await store.redis.zrem(key, member)


def delivery(settings: Settings, suffix: str, offset: int, value: dict[str, object]) -> Delivery:
    cid = str(value["customer_id"])
    return Delivery(settings.topic(suffix), 0, offset, cid.encode(), orjson.dumps(value))
