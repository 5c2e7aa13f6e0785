"""Customer state storage against real Redis: format 3 strings, format-2 hashes upgraded,
and the leases of periodic jobs."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import orjson
import pytest

from models.customer import CustomerState, new_state
from stream import keys
from stream.state_codec import state_to_plain
from stream.store import Store, Write
from tests.integration.conftest import unique


@pytest.fixture
def store(scratch_store: Store) -> Store:
    return scratch_store


def state_named(cid: str, email: str) -> CustomerState:
    state = new_state(cid)
    return replace(state, profile=replace(state.profile, contact={"email": email}))


async def test_a_state_is_one_string_with_its_version_and_a_ttl(store: Store) -> None:
    cid = unique("c")
    assert await store.save([Write(cid, 0, state_named(cid, "a@x"))]) == set()
    key = keys.customer_state(store.prefix, cid)
    raw = await store.redis.get(key)
    assert raw.startswith(b"1:\x03")
    assert 0 < await store.redis.pttl(key) <= store.ttl_ms
    loaded = (await store.load([cid]))[cid]
    assert (loaded.version, loaded.state) == (1, state_named(cid, "a@x"))


async def test_a_format_2_hash_is_read_and_upgraded_by_the_next_write(store: Store) -> None:
    cid = unique("c")
    old = state_named(cid, "old@x")
    key = keys.customer_state(store.prefix, cid)
    plain = orjson.dumps({**state_to_plain(old), "f": 2})
    await store.redis.hset(key, mapping={"v": 3, "s": plain})
    loaded = (await store.load([cid]))[cid]
    assert (loaded.version, loaded.state) == (3, old)

    assert await store.save([Write(cid, 2, state_named(cid, "stale@x"))]) == {cid}
    assert await store.redis.type(key) == b"hash", "a stale write must not land"
    assert await store.save([Write(cid, 3, state_named(cid, "new@x"))]) == set()
    assert await store.redis.type(key) == b"string"
    loaded = (await store.load([cid]))[cid]
    assert (loaded.version, loaded.state) == (4, state_named(cid, "new@x"))


async def test_a_periodic_job_lease_goes_to_one_worker_per_period(store: Store) -> None:
    assert await store.claim_lease("population_refresh", 0.3)
    assert not await store.claim_lease("population_refresh", 0.3)
    await asyncio.sleep(0.5)
    assert await store.claim_lease("population_refresh", 0.3)
