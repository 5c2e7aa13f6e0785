"""Exactly-once across workers: every customer's state, read back through the HTTP API.

The bench snapshots ``GET /customers/{id}?as_of=T`` of every customer id of the
pre-loaded history once a run's single worker has settled (before the latency phase
adds live events), and again once the two scale-out workers have settled on the same
history in their own prefix, with the same ``as_of``. Compared are the fields that
depend only on the input records and ``as_of`` (``COMPARED``); an event lost or
applied twice changes at least one of them (orders, revenue, views, windows...).
Left out: ``clv`` (the model fitted by the periodic population refresh), ``segments``
(memberships last emitted, which that refresh and the engine clock's timers move) and
``as_of`` itself. A 404 (merged or unknown id) compares its ``merged_into``. The cart
and aliases are compared as sets (``UNORDERED``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

#: Fields of ``GET /customers/{id}`` that the input and ``as_of`` alone determine.
COMPARED = (
    "customer_id",
    "first_seen",
    "last_seen",
    "orders",
    "revenue",
    "avg_order_value",
    "last_order_at",
    "rfm",
    "lifecycle",
    "tier",
    "affinity",
    "top_viewed",
    "cart",
    "windows",
    "consent",
    "contact",
    "attributes",
    "aliases",
)
#: Concurrent requests to the worker (one event loop serves them all).
CONCURRENCY = 8

Snapshot = dict[str, dict[str, Any]]  # customer id -> status and compared fields


@dataclass(frozen=True, slots=True)
class Mismatch:
    customer_id: str
    field: str
    single: Any  # what the single worker's run shows
    scaled: Any  # ... and the two workers' run

    def __str__(self) -> str:
        return f"{self.customer_id}.{self.field}: one worker {self.single!r}, two {self.scaled!r}"


#: Lists whose order is the order records were processed in, not an input fact: the cart
#: lists its lines in the order they were first changed (a click and an order of one
#: customer are on different topics, so their interleaving varies), aliases in the order
#: of the merges. Compared as sets.
UNORDERED = {"cart": "product_id", "aliases": None}


def comparable(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    if status != 200:
        return {"status": status, "merged_into": body.get("merged_into")}
    fields = {name: body.get(name) for name in COMPARED}
    for name, key in UNORDERED.items():
        if isinstance(fields[name], list):
            fields[name] = sorted(fields[name], key=lambda v: str(v if key is None else v[key]))
    return {"status": status, **fields}


async def snapshot(
    base: str,
    customer_ids: Iterable[str],
    *,
    as_of: int,
    on_progress: Callable[[float], None] = lambda done: None,
) -> Snapshot:
    """Every customer's compared fields as the worker at ``base`` answers at ``as_of``."""
    done = 0
    limit = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def read(customer_id: str) -> tuple[str, dict[str, Any]]:
            url = f"{base}/customers/{quote(customer_id, safe='')}?as_of={as_of}"
            async with limit, session.get(url) as answer:
                raw = await answer.read()
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    body = {}  # e.g. a 500 page: its status is what gets compared
            nonlocal done
            done += 1
            on_progress(done)
            return customer_id, comparable(answer.status, body)

        return dict(await asyncio.gather(*(read(c) for c in customer_ids)))


def compare(single: Snapshot, scaled: Snapshot) -> list[Mismatch]:
    """Every field that differs, customer by customer (ids of ``single``, in its order)."""
    found: list[Mismatch] = []
    for customer_id, one in single.items():
        two = scaled.get(customer_id, {"status": "not read"})
        for name in sorted(one.keys() | two.keys()):
            if one.get(name) != two.get(name):
                found.append(Mismatch(customer_id, name, one.get(name), two.get(name)))
    return found
