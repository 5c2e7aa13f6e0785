"""The HTTP API never hurts ingestion, never answers 500 for bad input, reaches every id.

Against real workers, broker and Redis. Before the API had its own bounded pool, 200
concurrent readers got 1,387 errors (500) of 2,000 and crashed the worker during
ingestion (``MaxConnectionsError``); ``?as_of=²`` answered 500; customers whose id holds
``{`` or ``}`` were stored but unreachable (aiohttp's default route pattern refuses
braces).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
from yarl import URL

from stream.producer import EventProducer
from stream.settings import Settings
from tests.integration.conftest import (
    delete_keys,
    http_get,
    http_send,
    isolated,
    running_worker,
    unique,
)

TS = 1_795_341_600_000  # 2026-11-22T10:00:00Z
CUSTOMERS = 500
VIEWS = 8  # product views per customer, then two orders: 5,000 events in all
READERS = 200
REQUESTS_PER_READER = 10


def path_id(customer_id: str) -> str:
    """An id as one path segment: every reserved character percent-encoded, dots too (a
    bare ``.`` or ``..`` segment is a relative reference)."""
    return quote(customer_id, safe="").replace(".", "%2E")


def url(base: str, path: str) -> URL:
    """Sent as written: the client must not re-encode or normalise the path."""
    return URL(f"{base}{path}", encoded=True)


@pytest.fixture(scope="module")
def load_settings(settings: Settings) -> Iterator[Settings]:
    own = isolated(settings, "load")
    yield own
    delete_keys(own)


@pytest.fixture(scope="module")
def load_worker(load_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_worker(load_settings, tmp_path_factory.mktemp("load-worker")) as base:
        yield base


def shop_events(customers: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Views of one product each, then two orders of three products (association look-ups)."""
    events: list[tuple[str, dict[str, Any]]] = []
    for n, cid in enumerate(customers):
        for i in range(VIEWS):
            events.append(
                (
                    "clicks",
                    {
                        "event_id": unique("e"),
                        "ts": TS + i,
                        "customer_id": cid,
                        "type": "product_view",
                        "product_id": f"p-view-{n % 40}",
                    },
                )
            )
        for i in range(2):
            items = [
                {"product_id": f"p-{(n + k) % 60}", "category": "c", "quantity": 1, "unit_price": 5}
                for k in range(3)
            ]
            order = {"order_id": unique("o"), "total": 15.0, "items": items}
            events.append(
                (
                    "orders",
                    {"event_id": unique("e"), "ts": TS + 100 + i, "customer_id": cid, **order},
                )
            )
    return events


async def produce(settings: Settings, events: list[tuple[str, dict[str, Any]]]) -> None:
    async with EventProducer(settings, settings.kafka_url or "") as producer:
        for topic, value in events:
            await producer.send(topic, value)


async def read(
    session: aiohttp.ClientSession, base: str, customers: list[str], seed: int
) -> list[tuple[str, int, Any]]:
    """One reader: profiles and offers of customers being ingested, one after another."""
    pick = random.Random(seed)
    answers = []
    for _ in range(REQUESTS_PER_READER):
        cid = pick.choice(customers)
        path = f"/customers/{path_id(cid)}" + pick.choice(["", "/offers"])
        async with session.get(url(base, path)) as answer:
            answers.append((path, answer.status, parsed(await answer.read())))
    return answers


def parsed(body: bytes) -> Any:
    """The JSON body, or its text when it is not JSON (a bare 500 page)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace")


def valid(path: str, status: int, body: Any) -> bool:
    if status == 404:
        return isinstance(body, dict) and isinstance(body.get("error"), str)
    if status != 200:
        return False
    if path.endswith("/offers"):
        return isinstance(body, list)
    return isinstance(body, dict) and path.endswith(path_id(body["customer_id"]))


async def first_applied(session: aiohttp.ClientSession, base: str, customers: list[str]) -> None:
    """Until ingestion has begun: the first customer's profile exists."""
    for _ in range(300):
        async with session.get(url(base, f"/customers/{path_id(customers[0])}")) as answer:
            if answer.status == 200:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("ingestion did not begin")


async def unfinished(session: aiohttp.ClientSession, base: str, customers: list[str]) -> list[str]:
    """Customers whose profile does not yet show every event sent for them."""

    async def done(cid: str) -> bool:
        async with session.get(url(base, f"/customers/{path_id(cid)}")) as answer:
            body = await answer.json(content_type=None)
        if answer.status != 200:
            return False
        views = sum(v["views"] for v in body["top_viewed"])
        return (body["orders"], body["revenue"], views) == (2, 30.0, VIEWS)

    flags = await asyncio.gather(*(done(cid) for cid in customers))
    return [cid for cid, ok in zip(customers, flags, strict=True) if not ok]


async def test_200_concurrent_readers_during_ingestion(
    load_settings: Settings, load_worker: str
) -> None:
    customers = [unique("load") for _ in range(CUSTOMERS)]
    connector = aiohttp.TCPConnector(limit=READERS)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        ingest = asyncio.create_task(produce(load_settings, shop_events(customers)))
        await first_applied(session, load_worker, customers)  # then read while it goes on
        readers = [read(session, load_worker, customers, seed) for seed in range(READERS)]
        answers = [a for one in await asyncio.gather(*readers) for a in one]
        await ingest

        assert len(answers) == READERS * REQUESTS_PER_READER
        bad = [a for a in answers if not valid(*a)]
        assert not bad, f"{len(bad)} bad answers, e.g. {bad[:3]}"

        left = customers
        for _ in range(150):
            left = await unfinished(session, load_worker, left)
            if not left:
                break
            await asyncio.sleep(0.2)
        assert not left, f"{len(left)} customers not fully applied, e.g. {left[:3]}"

    status, health = http_get(f"{load_worker}/health")
    assert (status, health["status"]) == (200, "ok"), "the worker must still be running"


# --- bad query parameters -----------------------------------------------------------------

WEIRD = ["²", "١٢٣", "-1", "99999999999999999999999", "9" * 5000, "NaN", "", "1e3", "\x00"]


@pytest.mark.parametrize("value", WEIRD)
def test_a_weird_as_of_answers_400(worker: str, value: str) -> None:
    cid = unique("nobody")
    for path in (f"/customers/{cid}", f"/customers/{cid}/offers"):
        status, body = http_get(f"{worker}{path}?as_of={quote(value, safe='')}")
        assert status == 400 and "as_of" in body["error"], (path, value, status, body)
    status, body = http_send(f"{worker}/admin/refresh?as_of={quote(value, safe='')}", "POST")
    assert status == 400 and "as_of" in body["error"], (value, status, body)


@pytest.mark.parametrize("value", [*WEIRD, "0"])
@pytest.mark.parametrize("name", ["min_count", "top_k"])
def test_a_weird_count_answers_400(worker: str, name: str, value: str) -> None:
    status, body = http_get(f"{worker}/products/p1/associations?{name}={quote(value, safe='')}")
    assert status == 400 and name in body["error"], (status, body)


@pytest.mark.parametrize("query", ["as_of=%FF", "as_of=%zz", "as_of", "as_of=1&as_of=%C2%B2"])
def test_a_malformed_query_string_answers_400(worker: str, query: str) -> None:
    status, body = http_get(f"{worker}/customers/{unique('nobody')}?{query}")
    assert status == 400 and "as_of" in body["error"], (query, status, body)


# --- any id is reachable ------------------------------------------------------------------

ODD_IDS = [
    "a{b}",
    "{x}",
    "}",
    "{",
    "}{",
    "a:b c",
    "a/b",
    "a/b/offers",
    "100%",
    "%7B",
    "a%2Fb",
    "ünï €😀",
    "a?b#c&d=e",
    "..",
    ".",
    "+\\;,",
    "x" * 128,
]


async def test_any_id_is_reachable_and_erasable(worker: str, producer: EventProducer) -> None:
    run = unique("odd")  # one order per id, each with this run's order id
    for cid in ODD_IDS:
        order = {"order_id": f"{run}-{cid}", "total": 12.5}
        await producer.send(
            "orders", {"event_id": unique("e"), "ts": TS, "customer_id": cid, **order}
        )
    await producer.flush()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def answer(method: str, path: str) -> tuple[int, Any]:
            async with session.request(method, url(worker, path)) as got:
                return got.status, await got.json(content_type=None)

        async def until(method: str, path: str, want: int) -> Any:
            for _ in range(150):
                status, body = await answer(method, path)
                if status == want:
                    return body
                await asyncio.sleep(0.2)
            raise AssertionError(f"{method} {path}: {status} {body}")

        for cid in ODD_IDS:
            profile = await until("GET", f"/customers/{path_id(cid)}", 200)
            assert (profile["customer_id"], profile["revenue"]) == (cid, 12.5)
            assert await answer("GET", f"/customers/{path_id(cid)}/offers") == (200, [])

        for cid in ODD_IDS:
            erasing = await answer("DELETE", f"/customers/{path_id(cid)}")
            assert erasing == (202, {"status": "erasing", "customer_id": cid})
        for cid in ODD_IDS:
            gone = await until("GET", f"/customers/{path_id(cid)}", 404)
            assert repr(cid) in gone["error"]
