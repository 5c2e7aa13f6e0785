"""Redis for the population models: basket association counts and the fitted CLV model.

Keys (built only by the functions below; ``{assoc}`` is a Redis Cluster hash tag so one
script can touch all association keys atomically, at the price of keeping them all on
one shard):

* ``{prefix}{assoc}:items``: hash, product id -> live baskets holding it.
* ``{prefix}{assoc}:pairs:{product_id}``: hash, partner id -> live baskets holding both.
* ``{prefix}{assoc}:baskets``: integer, live baskets.
* ``{prefix}{assoc}:applied:{token}``: marker of one applied write, lives ``marker_ttl_ms``.
* ``{prefix}models:clv``: the fitted CLV model document (JSON), replaced by each refit.

None of the association keys expire: they are all-time counts of the shop, bounded by
the catalogue (``items``, one field per product) and by pruning (``pairs``: at most
``keep`` partners per product after ``prune``, plus partners first seen since). The
CLV document is one key that each refresh overwrites. The meaning of the counts and
of pruning is in ``models/associations.py``.

Memory (``bench/associations_memory.py``, 10,000 products, 2.1 distinct items per
order, 5% cancelled): 500,000 orders take 21.5 MiB unpruned, 10.6 MiB after a prune
with ``keep=100``; 2,000,000 orders 68.9 MiB unpruned, 22.9 MiB (``keep=100``) or
11.9 MiB (``keep=50``), about 25 bytes per partner field. ``keep`` defaults to 100,
below Redis' ``hash-max-listpack-entries`` (128), so pruned hashes stay in the
compact encoding.

Idempotency contract. Counting is at most once per order *by the caller*: pass
``applied=True`` only when the customer's own dedup state says this placement (or
this cancellation/refund of a counted placement) is new, i.e. the customer's state
write that recorded it succeeded; a redelivered or replayed order event then
changes nothing here. Within one call, a write is made idempotent against the Redis
client's own retries: it carries a random token that the script sets with NX before
incrementing, so a retry of the same call after a lost reply is a no-op. A crash
between the customer's state write and this call loses that order's increments
(counts then undercount; they never double count).

Reads are one script call, so counts, item counts and the basket total come from
one instant. Reads apply ``prune_partners`` with the same ``keep`` as ``prune``, so a
product's answer never looks at more than ``keep`` partners, pruned yet or not.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from models.associations import (
    Association,
    Delta,
    associations_for,
    basket_delta,
    combine_deltas,
    partner_increments,
    prune_partners,
)
from models.clv import ClvFit, clv_fit_from_document
from models.outputs import BasketChange
from stream.keys import (
    assoc_baskets_key,
    assoc_items_key,
    assoc_marker_key,
    assoc_pairs_key,
    clv_model_key,
)

DEFAULT_KEEP = 100
MARKER_TTL_MS = 86_400_000  # a republished change comes back within minutes
PRUNE_BATCH = 200
#: Products whose associations one pipelined round trip reads.
READ_CHUNK = 100
# Lua's unpack() is limited to a few thousand values; HMGET in slices of this size.
_SLICE = 1000


# KEYS: items, baskets, marker, then one pairs hash per product with partner increments.
# ARGV: marker ttl ms, baskets delta, item count n, n x (item, inc), then for each pairs
# key in KEYS order: partner count m, m x (partner, inc). Returns 0 if already applied.
_APPLY = """
if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return 0 end
if ARGV[2] ~= '0' then redis.call('INCRBY', KEYS[2], ARGV[2]) end
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]); i = i + 2
end
for k = 4, #KEYS do
  local m = tonumber(ARGV[i]); i = i + 1
  for _ = 1, m do
    redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1]); i = i + 2
  end
end
return 1
"""

# KEYS: pairs hash of the product, items, baskets; ARGV: product id, HMGET slice size.
# Returns {baskets, count of the product, {partner, both, ...}, {count of each partner}}.
_READ = """
local flat = redis.call('HGETALL', KEYS[1])
local partners = {}
for i = 1, #flat, 2 do partners[#partners + 1] = flat[i] end
local counts = {}
local slice = tonumber(ARGV[2])
for s = 1, #partners, slice do
  local last = math.min(s + slice - 1, #partners)
  for _, c in ipairs(redis.call('HMGET', KEYS[2], unpack(partners, s, last))) do
    counts[#counts + 1] = c or '0'
  end
end
local baskets = redis.call('GET', KEYS[3]) or '0'
return {baskets, redis.call('HGET', KEYS[2], ARGV[1]) or '0', flat, counts}
"""

# KEYS[1]: a hash; ARGV: field, expected value, ... Deletes each field still at that value,
# so an increment that landed after the prune read it is never lost by the prune.
_DELETE_IF_UNCHANGED = """
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i]); n = n + 1
  end
end
return n
"""


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What one ``prune`` pass did."""

    products: int
    partners_dropped: int
    items_dropped: int


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ModelsStore:
    """Association counts and the CLV model document, under one key prefix."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        keep: int = DEFAULT_KEEP,
        marker_ttl_ms: int = MARKER_TTL_MS,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.keep = keep
        self.marker_ttl_ms = marker_ttl_ms
        self._apply = redis.register_script(_APPLY)
        self._read = redis.register_script(_READ)
        self._delete_if_unchanged = redis.register_script(_DELETE_IF_UNCHANGED)

    # --- associations: writes -----------------------------------------------------------

    async def apply_basket(self, delta: Delta, *, applied: bool) -> bool:
        """Add one order's delta if the caller's dedup says it is new (``applied``).

        Returns whether anything was written. See the module's idempotency contract.
        """
        return await self.apply_baskets([(delta, applied)])

    async def apply_baskets(self, deltas: Iterable[tuple[Delta, bool]]) -> bool:
        """Add the deltas marked ``applied``, combined, in one atomic script call."""
        delta = combine_deltas(d for d, applied in deltas if applied)
        if delta.is_empty():
            return False
        token = uuid.uuid4().hex
        keys, args = self._apply_arguments(delta, token)
        return bool(await self._apply(keys=keys, args=args))

    async def apply_changes(self, changes: Iterable[BasketChange]) -> int:
        """Apply the basket changes of published outboxes, each at most once (by its token).

        Tokens are deterministic (customer, order, event, sign), so a change that is
        published again after a crash finds its marker and is skipped. Returns how
        many were applied now.
        """
        todo = list(changes)
        if not todo:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for change in todo:
                keys, args = self._apply_arguments(
                    basket_delta(change.products, change.sign), change.token
                )
                await self._apply(keys=keys, args=args, client=pipe)
            applied = await pipe.execute()
        return sum(1 for a in applied if a)

    async def best_sellers(
        self,
        *,
        product_key: Callable[[str], str],
        limit: int = 10,
    ) -> dict[str, tuple[str, ...]]:
        """Per category, the products in the most live baskets (popular-in-category)."""
        items = {
            _text(k): int(v)
            for k, v in (await self.redis.hgetall(assoc_items_key(self.prefix))).items()
            if int(v) > 0
        }
        products = sorted(items)
        async with self.redis.pipeline(transaction=False) as pipe:
            for product in products:
                pipe.hget(product_key(product), "category")
            categories = await pipe.execute()
        ranked: dict[str, list[tuple[int, str]]] = {}
        for product, category in zip(products, categories, strict=True):
            if category is not None:
                ranked.setdefault(_text(category), []).append((-items[product], product))
        return {
            cat: tuple(p for _, p in sorted(entries)[:limit]) for cat, entries in ranked.items()
        }

    def _apply_arguments(self, delta: Delta, token: str) -> tuple[list[str], list[Any]]:
        p = self.prefix
        keys = [assoc_items_key(p), assoc_baskets_key(p), assoc_marker_key(p, token)]
        args: list[Any] = [self.marker_ttl_ms, delta.baskets, len(delta.items)]
        for item, increment in sorted(delta.items.items()):
            args += [item, increment]
        for product, increments in sorted(partner_increments(delta).items()):
            keys.append(assoc_pairs_key(p, product))
            args.append(len(increments))
            for partner, increment in sorted(increments.items()):
                args += [partner, increment]
        return keys, args

    # --- associations: reads --------------------------------------------------------------

    async def read_counts(self, product_id: str) -> tuple[int, dict[str, int], dict[str, int]]:
        """One instant's ``(baskets, item counts, partner counts)`` for ``product_id``.

        Item counts cover the product and its partners only; partners are pruned to
        ``keep`` as ``prune`` would.
        """
        answer = await self._read(keys=self._read_keys(product_id), args=[product_id, _SLICE])
        return self._counts(product_id, answer)

    def _read_keys(self, product_id: str) -> list[str]:
        p = self.prefix
        return [assoc_pairs_key(p, product_id), assoc_items_key(p), assoc_baskets_key(p)]

    def _counts(
        self, product_id: str, answer: list[Any]
    ) -> tuple[int, dict[str, int], dict[str, int]]:
        baskets, this, flat, counts = answer
        names = [_text(flat[i]) for i in range(0, len(flat), 2)]
        partners = {name: int(flat[2 * i + 1]) for i, name in enumerate(names)}
        items = {name: int(c) for name, c in zip(names, counts, strict=True)}
        items[product_id] = int(this)
        return int(baskets), items, prune_partners(partners, keep=self.keep)

    async def associations(
        self, product_id: str, *, min_count: int = 2, top_k: int = 10
    ) -> list[Association]:
        """``GET /products/{id}/associations``: best first, as ``associations_for`` ranks."""
        found = await self.associations_of([product_id], min_count=min_count, top_k=top_k)
        return found[product_id]

    async def associations_of(
        self, product_ids: Sequence[str], *, min_count: int = 2, top_k: int = 10
    ) -> dict[str, list[Association]]:
        """``associations`` of many products: one pipelined round trip per ``READ_CHUNK``
        products, one after the other, so a batch naming thousands of products uses one
        connection at a time and a bounded reply, never a call per product at once."""
        found: dict[str, list[Association]] = {}
        for start in range(0, len(product_ids), READ_CHUNK):
            chunk = product_ids[start : start + READ_CHUNK]
            async with self.redis.pipeline(transaction=False) as pipe:
                for product_id in chunk:
                    await self._read(
                        keys=self._read_keys(product_id), args=[product_id, _SLICE], client=pipe
                    )
                answers = await pipe.execute()
            for product_id, answer in zip(chunk, answers, strict=True):
                baskets, items, partners = self._counts(product_id, answer)
                found[product_id] = associations_for(
                    product_id,
                    item_counts=items,
                    pair_counts=partners,
                    baskets=baskets,
                    min_count=min_count,
                    top_k=top_k,
                )
        return found

    # --- associations: pruning -----------------------------------------------------------

    async def prune(self, *, batch: int = PRUNE_BATCH) -> PruneReport:
        """Cut every product's partners to ``keep`` and drop counts that fell to <= 0.

        Walks the items hash (every product with a pairs hash has a field there), so
        it costs O(products + pair fields), not a scan of the keyspace, in two round
        trips per ``batch`` products. Safe while writes go on: a field is deleted only
        if it still holds the value read, so no increment is lost to a prune.
        """
        products = partners_dropped = items_dropped = 0
        items_key = assoc_items_key(self.prefix)
        cursor = 0
        while True:
            cursor, chunk = await self.redis.hscan(items_key, cursor, count=batch)
            fields = {_text(k): _text(v) for k, v in chunk.items()}
            stale = await self._stale_partners(list(fields))
            dropped = await self._drop_unchanged(
                [(items_key, {k: v for k, v in fields.items() if int(v) <= 0}), *stale]
            )
            items_dropped += dropped[0]
            partners_dropped += sum(dropped[1:])
            products += len(fields)
            if cursor == 0:
                return PruneReport(products, partners_dropped, items_dropped)

    async def _stale_partners(self, products: list[str]) -> list[tuple[str, dict[str, str]]]:
        """Per pairs hash, the fields a prune drops, with the value each had when read."""
        keys = [assoc_pairs_key(self.prefix, product) for product in products]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            hashes = await pipe.execute()
        stale = []
        for key, raw in zip(keys, hashes, strict=True):
            read = {_text(k): _text(v) for k, v in raw.items()}
            kept = prune_partners({k: int(v) for k, v in read.items()}, keep=self.keep)
            stale.append((key, {k: v for k, v in read.items() if k not in kept}))
        return stale

    async def _drop_unchanged(self, targets: list[tuple[str, Mapping[str, str]]]) -> list[int]:
        """Delete each ``(key, {field: expected value})`` field still at its value; counts."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, expected in targets:
                args = [x for field, value in expected.items() for x in (field, value)]
                await self._delete_if_unchanged(keys=[key], args=args, client=pipe)
            return [int(n) for n in await pipe.execute()]

    # --- the CLV model ---------------------------------------------------------------------

    async def save_clv(self, document: Mapping[str, Any]) -> None:
        """Store the model document (``models.clv.clv_document``), replacing the last one."""
        await self.redis.set(clv_model_key(self.prefix), orjson.dumps(document))

    async def load_clv(self) -> dict[str, Any] | None:
        """The stored model document, or None before the first fit."""
        raw = await self.redis.get(clv_model_key(self.prefix))
        return None if raw is None else orjson.loads(raw)

    async def load_clv_fit(self) -> ClvFit | None:
        """The stored model, ready to score; None before the first fit."""
        document = await self.load_clv()
        return None if document is None else clv_fit_from_document(document)
