"""Redis access: customer state with optimistic, atomic writes; indexes; products; clock.

Each customer's state is one hash (``v`` version, ``s`` state). A write is a
compare-and-set script: it lands only if the version is still the one read,
so a zombie worker left over from a rebalance can never overwrite newer state;
the loser reloads and re-applies (its events are then seen as duplicates or
applied on top). Reads and writes of a batch are one pipelined round trip each.

Population-level indexes (RFM dimensions, lifecycle timers) are written after
the customer's own write succeeded, with absolute values (ZADD/ZREM/HSET), so
writing them twice is harmless.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from models.catalog import ProductState
from models.customer import CustomerState, Indexes
from models.dedup import Applied
from models.events import CatalogUpdate
from models.rfm import Standing
from stream import keys
from stream.campaign_stats import CampaignStats
from stream.metrics import Metrics
from stream.state_codec import decode_applied, decode_state, encode_applied, encode_state

DAY_MS = 86_400_000

# A customer's state is one string "<version>:<state bytes>" (a format-2 value is a hash
# with fields v and s: read here, rewritten as a string at the next write).
_VERSION_OF = """
local function version_of(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'string' then
    local head = redis.call('GETRANGE', key, 0, 20)
    return string.sub(head, 1, string.find(head, ':', 1, true) - 1)
  elseif kind == 'hash' then
    return redis.call('HGET', key, 'v') or '0'
  end
  return '0'
end
"""

# KEYS[1] state; ARGV: expected version, new "<version>:<state>", ttl ms.
# The write lands only if the key is still at the expected version. One script per
# customer (not per batch): each call's keys stay in one Redis Cluster hash slot.
_CAS_STATE = (
    _VERSION_OF
    + """
if version_of(KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
)

# KEYS[1] state, KEYS[2] fence; ARGV: expected version, fence bytes, fence ttl ms.
# Erasure: the state goes; what is left is the fence (offsets and event-id digests).
_ERASE_STATE = (
    _VERSION_OF
    + """
if version_of(KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""
)

# KEYS[1] clock; ARGV[1] candidate ms. The clock only moves forward.
_ADVANCE_CLOCK = """
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
local ts = tonumber(ARGV[1])
if ts > now then redis.call('SET', KEYS[1], ARGV[1]); return ts end
return now
"""

# KEYS[1] product hash; ARGV: ts, ttl ms, then field/value pairs. Latest event time wins.
# Returns {applied, existed, price, in_stock, new_arrival} as they were before.
_PUT_PRODUCT = """
local before = redis.call('HMGET', KEYS[1], 'ts', 'price', 'in_stock', 'new_arrival')
local ts = tonumber(before[1] or '-1')
if tonumber(ARGV[1]) < ts then return {0, 1, false, false, false} end
redis.call('HSET', KEYS[1], 'ts', ARGV[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, before[1] and 1 or 0, before[2], before[3], before[4]}
"""

# KEYS[1] due timers (customer by due time), KEYS[2] leases (lease member by expiry);
# ARGV: engine now, wall now, lease ms, limit. A lease member is "<due>|<customer>" (the
# due time is digits, so the first '|' ends it, whatever the customer id holds).
# Leases that expired (their tick not applied, or applied but not yet released) go back
# to due unless the customer is there already (NX: an entry written since comes from the
# customer's newer state and wins); then due timers move to leases and are returned as
# {customer, due, customer, due, ...}.
_CLAIM_TIMERS = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, ARGV[4])
for _, m in ipairs(expired) do
  redis.call('ZREM', KEYS[2], m)
  local sep = string.find(m, '|', 1, true)
  redis.call('ZADD', KEYS[1], 'NX', string.sub(m, 1, sep - 1), string.sub(m, sep + 1))
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES',
                       'LIMIT', 0, ARGV[4])
local lease_until = tonumber(ARGV[2]) + tonumber(ARGV[3])
for i = 1, #due, 2 do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('ZADD', KEYS[2], lease_until, due[i + 1] .. '|' .. due[i])
end
return due
"""


def connect(url: str, *, retries: int, connections: int = 16, timeout: float = 5.0) -> Redis:
    """A client on a bounded pool: at most ``connections`` sockets, each call timing out.

    The pool blocks (up to ``timeout``) instead of opening another connection, so
    however many products or customers a batch names, or however many readers
    call at once, this client never holds more than ``connections`` sockets. The
    socket timeout turns a paused Redis into a ``TimeoutError`` after ``timeout``
    (retried ``retries`` times with capped backoff; longer outages are the
    caller's to ride out, see ``stream.resilience``).
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)


def lease_member(customer_id: str, due: int) -> str:
    """A claimed timer in the lease set, as ``_CLAIM_TIMERS`` writes it."""
    return f"{due}|{customer_id}"


@dataclass(frozen=True, slots=True)
class Stored:
    version: int
    state: CustomerState | None
    fence: Applied | None = None  # what an erased customer had applied


@dataclass(frozen=True, slots=True)
class Write:
    customer_id: str
    expected_version: int
    state: CustomerState


@dataclass(frozen=True, slots=True)
class Population:
    """The RFM population as stored: customer -> (last_order_at, orders, revenue)."""

    buyers: dict[str, tuple[int, int, float]]
    segments: dict[str, str]


def _is_wrong_type(answer: object) -> bool:
    """GET on a format-2 hash. Any other error in the pipeline is raised, not read past."""
    if isinstance(answer, ResponseError) and not str(answer).startswith("WRONGTYPE"):
        raise answer
    return isinstance(answer, ResponseError)


class DecodedStates:
    """The states this worker last read or wrote, decoded, keyed by their stored bytes.

    A customer's events come in batch after batch to the same worker, so most
    loads find the very bytes it wrote last time: comparing them (a memcmp) is
    enough to reuse the decoded state and skip inflating and decoding it. Keyed
    by bytes, not version, so a customer erased and re-created at the same
    version can never be served stale. States are immutable: sharing is safe.
    Bounded: the oldest entry goes first.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._states: dict[str, tuple[bytes, CustomerState]] = {}

    def decode(self, customer_id: str, raw: bytes) -> CustomerState:
        known = self._states.get(customer_id)
        if known is not None and known[0] == raw:
            return known[1]
        state = decode_state(raw)
        self.remember(customer_id, raw, state)
        return state

    def remember(self, customer_id: str, raw: bytes, state: CustomerState) -> None:
        if self.capacity <= 0:
            return
        self._states.pop(customer_id, None)
        self._states[customer_id] = (raw, state)
        if len(self._states) > self.capacity:
            del self._states[next(iter(self._states))]


class Store:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        retention_days: int,
        fence_days: int,
        metrics: Metrics,
        cached_states: int = 0,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_ms = retention_days * DAY_MS
        self.fence_ms = fence_days * DAY_MS
        self.metrics = metrics
        self.decoded = DecodedStates(cached_states)
        self._cas = redis.register_script(_CAS_STATE)
        self._erase = redis.register_script(_ERASE_STATE)
        self._clock = redis.register_script(_ADVANCE_CLOCK)
        self._product = redis.register_script(_PUT_PRODUCT)
        self._claim = redis.register_script(_CLAIM_TIMERS)

    # --- customer state --------------------------------------------------------------

    async def load(self, customer_ids: Iterable[str]) -> dict[str, Stored]:
        ids = list(customer_ids)
        started = time.perf_counter()
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid in ids:
                pipe.get(keys.customer_state(self.prefix, cid))
            values = await pipe.execute(raise_on_error=False)
        by_id = dict(zip(ids, values, strict=True))
        legacy = [cid for cid, v in by_id.items() if _is_wrong_type(v)]
        if legacy:  # format 2: a hash (v, s), until the customer's next write
            async with self.redis.pipeline(transaction=False) as pipe:
                for cid in legacy:
                    pipe.hmget(keys.customer_state(self.prefix, cid), "v", "s")
                for cid, (version, state) in zip(legacy, await pipe.execute(), strict=True):
                    by_id[cid] = b"%s:%s" % (version, state)
        loaded = {cid: self._stored(cid, raw) for cid, raw in by_id.items()}
        fresh = [cid for cid, s in loaded.items() if s.state is None]
        if fresh:
            async with self.redis.pipeline(transaction=False) as pipe:
                for cid in fresh:
                    pipe.get(keys.erasure_fence(self.prefix, cid))
                fences = await pipe.execute()
            for cid, raw in zip(fresh, fences, strict=True):
                if raw is not None:
                    loaded[cid] = Stored(0, None, fence=decode_applied(raw))
        self.metrics.redis_seconds.labels("load").observe(time.perf_counter() - started)
        return loaded

    def _stored(self, customer_id: str, raw: bytes | None) -> Stored:
        """A loaded value "<version>:<state>" (None: no state)."""
        if raw is None:
            return Stored(version=0, state=None)
        version, _, state = raw.partition(b":")
        return Stored(version=int(version), state=self.decoded.decode(customer_id, state))

    async def save(
        self, writes: Sequence[Write], index: Sequence[tuple[str, Indexes]] = ()
    ) -> set[str]:
        """Write all states and their index entries; return the customers to redo.

        Index entries go in the same round trip, so a reader who sees the new
        state also finds it in the indexes. They are absolute values: if a
        customer's write lost the race, its entries are rewritten on the redo.
        """
        if not writes and not index:
            return set()
        started = time.perf_counter()
        async with self.redis.pipeline(transaction=False) as pipe:
            encoded = [await self._queue_cas(pipe, w) for w in writes]
            for cid, entry in index:
                self._queue_index(pipe, cid, entry)
            answers = (await pipe.execute())[: len(writes)]
        self.metrics.redis_seconds.labels("save").observe(time.perf_counter() - started)
        self._remember_written(writes, encoded, answers)
        return {w.customer_id for w, ok in zip(writes, answers, strict=True) if not ok}

    def _remember_written(
        self, writes: Sequence[Write], encoded: Sequence[bytes], answers: Sequence[int]
    ) -> None:
        for w, raw, ok in zip(writes, encoded, answers, strict=True):
            if ok:
                self.decoded.remember(w.customer_id, raw, w.state)

    async def settle(self, settled: Sequence[Write], ticks: Sequence[tuple[str, int]]) -> None:
        """After publishing: empty outboxes (or finish erasures), release applied ticks.

        ``settled`` are states to write at ``expected_version`` with their outbox
        already emptied; an erased one is deleted instead, leaving its fence. A
        version that moved meanwhile is left alone: that writer republishes.
        """
        if not settled and not ticks:
            return
        started = time.perf_counter()
        kept = [w for w in settled if not w.state.erased]
        async with self.redis.pipeline(transaction=False) as pipe:
            encoded = [await self._queue_cas(pipe, w) for w in kept]
            for w in settled:
                if w.state.erased:
                    await self._erase(
                        keys=[
                            keys.customer_state(self.prefix, w.customer_id),
                            keys.erasure_fence(self.prefix, w.customer_id),
                        ],
                        args=[w.expected_version, encode_applied(w.state.applied), self.fence_ms],
                        client=pipe,
                    )
            for cid, due in ticks:
                pipe.zrem(keys.timers_leased(self.prefix), lease_member(cid, due))
            answers = await pipe.execute()
        self.metrics.redis_seconds.labels("settle").observe(time.perf_counter() - started)
        self._remember_written(kept, encoded, answers[: len(kept)])

    async def _queue_cas(self, pipe: Pipeline, w: Write) -> bytes:
        """Queue the compare-and-set of one state (it lands only at ``expected_version``);
        return the state's stored bytes."""
        raw = encode_state(w.state)
        await self._cas(
            keys=[keys.customer_state(self.prefix, w.customer_id)],
            args=[w.expected_version, b"%d:%s" % (w.expected_version + 1, raw), self.ttl_ms],
            client=pipe,
        )
        return raw

    def _queue_index(self, pipe: Pipeline, cid: str, entry: Indexes) -> None:
        p = self.prefix
        if entry.buyer_changed and entry.buyer is None:
            for dim in "rfm":
                pipe.zrem(keys.rfm_index(p, dim), cid)
        elif entry.buyer_changed and entry.buyer is not None:
            last, orders, revenue = entry.buyer
            for dim, score in (("r", last), ("f", orders), ("m", revenue)):
                pipe.zadd(keys.rfm_index(p, dim), {cid: score})
        if entry.segment_changed and entry.rfm_segment is None:
            pipe.hdel(keys.rfm_segments(p), cid)
        elif entry.segment_changed:
            pipe.hset(keys.rfm_segments(p), cid, entry.rfm_segment)
        if entry.due_changed and entry.due is None:
            pipe.zrem(keys.timers_due(p), cid)
        elif entry.due_changed:
            pipe.zadd(keys.timers_due(p), {cid: entry.due})
        for category, rank in entry.affinity.items():
            pipe.zadd(keys.affinity_index(p, category), {cid: rank})
        for category in entry.dropped_affinity:
            pipe.zrem(keys.affinity_index(p, category), cid)
        for product_id, ts in entry.watching.items():
            pipe.zadd(keys.watchers(p, product_id), {cid: ts})
        for product_id in entry.dropped_watching:
            pipe.zrem(keys.watchers(p, product_id), cid)
        if entry.forget_campaigns:
            CampaignStats(self.redis, p).queue_forget(
                pipe, cid, entry.forget_campaigns, entry.forget_orders
            )
        if entry.transactions == ():
            pipe.hdel(keys.clv_transactions(p), cid)
        elif entry.transactions is not None:
            pipe.hset(keys.clv_transactions(p), cid, orjson.dumps(entry.transactions))

    async def read(self, customer_id: str) -> CustomerState | None:
        return (await self.load([customer_id]))[customer_id].state

    # --- population indexes ------------------------------------------------------------

    async def rfm_standings(
        self, buyer: tuple[int, int, float], *, days: int, now: int
    ) -> tuple[Standing, Standing, Standing, int]:
        """Where ``buyer`` stands on R, F and M (strictly worse, tied), and the population
        size, in one round trip of ZCOUNTs.

        ``days`` is the buyer's recency in whole days at ``now``: customers tied on R
        ordered last in ``(now - (days + 1) day, now - days day]`` (for 0 days, anything
        after ``now - 1 day``, later than ``now`` included); strictly worse, earlier.
        """
        _, orders, revenue = buyer
        p = self.prefix
        worse_r_until = now - (days + 1) * DAY_MS
        equal_r_until = "+inf" if days == 0 else now - days * DAY_MS
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(keys.rfm_index(p, "r"), "-inf", worse_r_until)
            pipe.zcount(keys.rfm_index(p, "r"), f"({worse_r_until}", equal_r_until)
            pipe.zcount(keys.rfm_index(p, "f"), "-inf", f"({orders}")
            pipe.zcount(keys.rfm_index(p, "f"), orders, orders)
            pipe.zcount(keys.rfm_index(p, "m"), "-inf", f"({revenue!r}")
            pipe.zcount(keys.rfm_index(p, "m"), repr(revenue), repr(revenue))
            pipe.zcard(keys.rfm_index(p, "f"))
            wr, er, wf, ef, wm, em, population = (int(n) for n in await pipe.execute())
        # The buyer may not be indexed yet (their write is in flight): count them in.
        standings = [Standing(w, max(e, 1)) for w, e in ((wr, er), (wf, ef), (wm, em))]
        population = max([population, *(s.worse + s.equal for s in standings)])
        r, f, m = standings
        return r, f, m, population

    async def population(self) -> Population:
        p = self.prefix
        async with self.redis.pipeline(transaction=False) as pipe:
            for dim in "rfm":
                pipe.zrange(keys.rfm_index(p, dim), 0, -1, withscores=True)
            pipe.hgetall(keys.rfm_segments(p))
            r, f, m, segments = await pipe.execute()
        last = {k.decode(): int(v) for k, v in r}
        orders = {k.decode(): int(v) for k, v in f}
        revenue = {k.decode(): float(v) for k, v in m}
        buyers = {
            cid: (last[cid], orders[cid], revenue[cid])
            for cid in last
            if cid in orders and cid in revenue
        }
        return Population(buyers, {k.decode(): v.decode() for k, v in segments.items()})

    async def clv_transactions(self) -> dict[str, list[tuple[int, float]]]:
        raw = await self.redis.hgetall(keys.clv_transactions(self.prefix))
        return {
            k.decode(): [(int(t), float(v)) for t, v in orjson.loads(x)] for k, x in raw.items()
        }

    async def drop_expired_buyers(self, customer_ids: Sequence[str]) -> int:
        """Remove index entries of customers whose state expired (retention) from the indexes."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid in customer_ids:
                pipe.exists(keys.customer_state(self.prefix, cid))
            alive = await pipe.execute()
        gone = [cid for cid, ok in zip(customer_ids, alive, strict=True) if not ok]
        if gone:
            async with self.redis.pipeline(transaction=False) as pipe:
                for dim in "rfm":
                    pipe.zrem(keys.rfm_index(self.prefix, dim), *gone)
                pipe.hdel(keys.rfm_segments(self.prefix), *gone)
                pipe.hdel(keys.clv_transactions(self.prefix), *gone)
                pipe.zrem(keys.timers_due(self.prefix), *gone)
                await pipe.execute()
        return len(gone)

    async def claim_timers(
        self, *, engine_now: int, wall_now: int, lease_ms: int, limit: int
    ) -> list[tuple[str, int]]:
        flat = await self._claim(
            keys=[keys.timers_due(self.prefix), keys.timers_leased(self.prefix)],
            args=[engine_now, wall_now, lease_ms, limit],
        )
        return [(flat[i].decode(), int(float(flat[i + 1]))) for i in range(0, len(flat), 2)]

    # --- clock and products --------------------------------------------------------------

    async def claim_lease(self, job: str, seconds: float) -> bool:
        """True for the first worker to ask in a period of ``seconds``: a population job
        that every worker's timer would start runs once per period, not once per worker."""
        taken = await self.redis.set(
            keys.lease(self.prefix, job), b"1", nx=True, px=max(1, int(seconds * 1000))
        )
        return bool(taken)

    async def advance_clock(self, ts: int) -> int:
        return int(await self._clock(keys=[keys.clock(self.prefix)], args=[ts]))

    async def read_clock(self) -> int | None:
        raw = await self.redis.get(keys.clock(self.prefix))
        return int(raw) if raw is not None else None

    async def put_products(
        self, products: Sequence[CatalogUpdate]
    ) -> list[tuple[bool, ProductState | None]]:
        """Store catalogue facts; for each, whether it applied and what was known before."""
        if not products:
            return []
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
            answers = await pipe.execute()
        out: list[tuple[bool, ProductState | None]] = []
        for applied, existed, price, in_stock, new_arrival in answers:
            before = None
            if existed:
                before = ProductState(
                    price=float(price) if price is not None else None,
                    in_stock=None if in_stock is None else in_stock == b"1",
                    new_arrival=None if new_arrival is None else new_arrival == b"1",
                )
            out.append((bool(applied), before))
        return out

    async def audience(
        self,
        *,
        category: str | None,
        min_rank: float | None,
        product_id: str | None,
        limit: int,
    ) -> list[str]:
        """Customers with an affinity rank >= ``min_rank`` in ``category``, or watching a product.

        Members whose state has expired meanwhile are dropped from the index here.
        """
        if category is not None and min_rank is not None:
            key = keys.affinity_index(self.prefix, category)
            low = "-inf" if min_rank == float("-inf") else repr(min_rank)
            members = await self.redis.zrangebyscore(key, low, "+inf", start=0, num=limit)
        elif product_id is not None:
            key = keys.watchers(self.prefix, product_id)
            members = await self.redis.zrange(key, 0, limit - 1, desc=True)
        else:
            return []
        ids = [m.decode() for m in members]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid in ids:
                pipe.exists(keys.customer_state(self.prefix, cid))
            alive = await pipe.execute()
        gone = [cid for cid, ok in zip(ids, alive, strict=True) if not ok]
        if gone:
            await self.redis.zrem(key, *gone)
        return [cid for cid, ok in zip(ids, alive, strict=True) if ok]
