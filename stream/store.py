"""Redis access: customer state with optimistic, atomic writes; products; the clock.

Each customer's state is one hash (``v`` version, ``s`` state). A write is a
compare-and-set script: it lands only if the version is still the one read,
so a zombie worker left over from a rebalance can never overwrite newer state;
the loser reloads and re-applies (its events are then seen as duplicates or
applied on top). Reads and writes of a batch are one pipelined round trip each.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from models.customer import CustomerState
from models.events import CatalogUpdate
from stream import keys
from stream.metrics import Metrics
from stream.state_codec import decode_state, encode_state

DAY_MS = 86_400_000

# KEYS[1] state hash; ARGV: expected version, new version, state bytes, ttl ms
_CAS_STATE = """
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 's', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS[1] clock; ARGV[1] candidate ms. The clock only moves forward.
_ADVANCE_CLOCK = """
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
local ts = tonumber(ARGV[1])
if ts > now then redis.call('SET', KEYS[1], ARGV[1]); return ts end
return now
"""

# KEYS[1] product hash; ARGV: ts, ttl ms, then field/value pairs. Latest event time wins.
_PUT_PRODUCT = """
local ts = tonumber(redis.call('HGET', KEYS[1], 'ts') or '-1')
if tonumber(ARGV[1]) < ts then return 0 end
redis.call('HSET', KEYS[1], 'ts', ARGV[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


def connect(url: str, *, retries: int) -> Redis:
    """A client that retries dropped connections and timeouts with capped backoff."""
    return Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )


@dataclass(frozen=True, slots=True)
class Stored:
    version: int
    state: CustomerState | None


@dataclass(frozen=True, slots=True)
class Write:
    customer_id: str
    expected_version: int
    state: CustomerState


class Store:
    def __init__(self, redis: Redis, *, prefix: str, retention_days: int, metrics: Metrics) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_ms = retention_days * DAY_MS
        self.metrics = metrics
        self._cas = redis.register_script(_CAS_STATE)
        self._clock = redis.register_script(_ADVANCE_CLOCK)
        self._product = redis.register_script(_PUT_PRODUCT)

    async def load(self, customer_ids: Iterable[str]) -> dict[str, Stored]:
        ids = list(customer_ids)
        started = time.perf_counter()
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid in ids:
                pipe.hmget(keys.customer_state(self.prefix, cid), "v", "s")
            rows = await pipe.execute()
        self.metrics.redis_seconds.labels("load").observe(time.perf_counter() - started)
        loaded = {}
        for cid, (version, raw) in zip(ids, rows, strict=True):
            state = decode_state(raw) if raw is not None else None
            loaded[cid] = Stored(version=int(version or 0), state=state)
        return loaded

    async def save(self, writes: Sequence[Write]) -> set[str]:
        """Write all states; return the customers whose version moved (to redo)."""
        if not writes:
            return set()
        started = time.perf_counter()
        async with self.redis.pipeline(transaction=False) as pipe:
            for w in writes:
                await self._cas(
                    keys=[keys.customer_state(self.prefix, w.customer_id)],
                    args=[
                        w.expected_version,
                        w.expected_version + 1,
                        encode_state(w.state),
                        self.ttl_ms,
                    ],
                    client=pipe,
                )
            answers = await pipe.execute()
        self.metrics.redis_seconds.labels("save").observe(time.perf_counter() - started)
        return {w.customer_id for w, ok in zip(writes, answers, strict=True) if not ok}

    async def read(self, customer_id: str) -> CustomerState | None:
        raw = await self.redis.hget(keys.customer_state(self.prefix, customer_id), "s")
        return decode_state(raw) if raw is not None else None

    async def advance_clock(self, ts: int) -> int:
        return int(await self._clock(keys=[keys.clock(self.prefix)], args=[ts]))

    async def read_clock(self) -> int | None:
        raw = await self.redis.get(keys.clock(self.prefix))
        return int(raw) if raw is not None else None

    async def put_products(self, products: Sequence[CatalogUpdate]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in products:
                fields: list[str | float | int] = []
                for name in ("category", "price", "in_stock", "name", "new_arrival"):
                    value = getattr(p, name)
                    if value is not None:
                        fields += [name, int(value) if isinstance(value, bool) else value]
                await self._product(
                    keys=[keys.product(self.prefix, p.product_id)],
                    args=[p.ts, self.ttl_ms, *fields],
                    client=pipe,
                )
            await pipe.execute()
