"""The population models through the real broker and Redis: associations, CLV, and the
campaigns they feed (cross-sell items, replenishment timing).

The module has its own worker on the event clock (``event_worker``), so its own topics and
Redis prefix: association counts and the CLV model are global to that prefix, i.e. to this
module. The tests rely on the file order: the first test runs before any order exists
(no CLV model yet) and the associations test is the first to send orders, so the basket
total it checks is exactly its own. Each test works in its own stretch of event time
(``Epoch``), later than every earlier test's, with its own customer and product ids.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from stream.producer import EventProducer
from stream.settings import Settings
from tests.integration.conftest import (
    eventually,
    http_get,
    http_send,
    read_topic,
    unique,
)
from tests.integration.shop import Shop

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@pytest.fixture
async def feed(event_worker: str, event_settings: Settings) -> AsyncIterator[Shop]:
    async with EventProducer(event_settings, event_settings.kafka_url or "") as producer:
        yield Shop(event_settings, event_worker, producer)


async def orders_applied(base: str, expected: dict[str, int], timeout: float = 45) -> None:
    """Wait until every customer's profile shows the expected number of live orders."""
    waiting = dict(expected)

    def check() -> bool:
        for cid, orders in list(waiting.items()):
            status, body = http_get(f"{base}/customers/{cid}")
            if status == 200 and body["orders"] == orders:
                del waiting[cid]
        return not waiting

    try:
        await eventually(check, timeout=timeout, interval=0.3)
    except AssertionError:
        sample = {cid: http_get(f"{base}/customers/{cid}") for cid in list(waiting)[:3]}
        raise AssertionError(f"{len(waiting)} customers not applied, e.g. {sample}") from None


def parse_rfc3339(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


# --- CLV before any fit --------------------------------------------------------------


async def test_no_clv_model_before_a_fit(event_worker: str) -> None:
    status, body = http_get(f"{event_worker}/models/clv")
    assert status == 404
    assert "no CLV model fitted" in body["error"]

    status, refreshed = http_send(f"{event_worker}/admin/refresh", "POST")

    assert status == 200
    assert refreshed["clv"]["fitted"] is False
    assert refreshed["clv"]["n_customers"] == 0
    assert "too few customers" in refreshed["clv"]["reason"]
    status, body = http_get(f"{event_worker}/models/clv")
    assert status == 404 and "no CLV model fitted" in body["error"]


# --- associations ----------------------------------------------------------------------


def brute_force(baskets: list[set[str]], product: str) -> list[dict[str, Any]]:
    """Partners of ``product`` over live baskets, from scratch, ranked as the engine documents.

    The measures are computed with the documented operations in the documented order, so
    equal counts give the engine's bit-identical floats and ties rank alike.
    """
    n = len(baskets)
    count = Counter(p for basket in baskets for p in basket)
    together = Counter(o for basket in baskets if product in basket for o in basket)
    del together[product]
    rows = []
    for other, both in together.items():
        support = both / n
        confidence = both / count[product]
        lift = confidence / (count[other] / n)
        rows.append(
            {
                "product_id": other,
                "support": support,
                "confidence": confidence,
                "lift": lift,
                "baskets": both,
            }
        )
    rows.sort(key=lambda r: (-r["lift"], -r["confidence"], -r["baskets"], r["product_id"]))
    return rows


def same_associations(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> bool:
    if [(g["product_id"], g["baskets"]) for g in got] != [
        (w["product_id"], w["baskets"]) for w in want
    ]:
        return False
    return all(
        math.isclose(g[k], w[k], rel_tol=0, abs_tol=1e-9)
        for g, w in zip(got, want, strict=True)
        for k in ("support", "confidence", "lift")
    )


async def test_associations_match_a_brute_force_count_of_live_orders(feed: Shop) -> None:
    rng = random.Random(20261122)
    prefix = unique("pa")
    catalogue = [f"{prefix}-{i:02d}" for i in range(12)]
    weights = [1 / (i + 1) ** 0.7 for i in range(len(catalogue))]
    customers = [unique("a") for _ in range(60)]

    placed: list[dict[str, Any]] = []
    for n in range(150):
        k = rng.randint(2, 4)
        products: list[str] = []
        while len(products) < k:
            pick = rng.choices(catalogue, weights)[0]
            if pick not in products:
                products.append(pick)
        lines = [
            {
                "product_id": p,
                "category": "assoc",
                "quantity": 3 if rng.random() < 0.3 else 1,
                "unit_price": 5.0,
            }
            for p in products
        ]
        if n % 15 == 0:  # the same product on two lines is still one item of the basket
            lines.append({**lines[0], "quantity": 2})
        placed.append(
            {
                "event_id": unique("e"),
                "ts": feed.t0 + n * MINUTE,
                "customer_id": customers[n % len(customers)],
                "order_id": unique("o"),
                "total": 5.0 * sum(line["quantity"] for line in lines),
                "items": lines,
            }
        )
    order_ids = [o["order_id"] for o in placed]
    chosen = rng.sample(range(len(placed)), 23)
    cancelled, refunded = set(chosen[:15]), set(chosen[15:])
    # Redeliveries only of orders followed by another order event of the same customer,
    # so a customer's order count being right also means the redelivery was consumed.
    later = {i for i in range(len(placed)) if i + len(customers) < len(placed)}
    redelivered = set(rng.sample(sorted(later - cancelled - refunded), 5))

    for i, order in enumerate(placed):
        await feed.producer.send("orders", order)
        if i in redelivered:
            await feed.producer.send("orders", dict(order))  # the same event_id
    for i in sorted(cancelled | refunded):
        status = "cancelled" if i in cancelled else "refunded"
        await feed.producer.send(
            "orders",
            {
                "event_id": unique("e"),
                "ts": placed[i]["ts"] + 2 * HOUR,
                "customer_id": placed[i]["customer_id"],
                "order_id": order_ids[i],
                "status": status,
            },
        )
    # A cancellation that overtakes its placement: the order never counts.
    late = unique("a")
    late_order = unique("o")
    late_items = [
        {"product_id": catalogue[0], "category": "assoc", "quantity": 1, "unit_price": 5.0},
        {"product_id": catalogue[1], "category": "assoc", "quantity": 1, "unit_price": 5.0},
    ]
    base_order = {"customer_id": late, "total": 10.0, "items": late_items}
    await feed.send(
        "orders",
        {
            "ts": feed.t0 + 4 * HOUR,
            "customer_id": late,
            "order_id": late_order,
            "status": "cancelled",
        },
        flush=False,
    )
    await feed.send(
        "orders", {**base_order, "ts": feed.t0 + 3 * HOUR, "order_id": late_order}, flush=False
    )
    # ... and a later live order of that customer shows the placement was consumed.
    follow_up = {**base_order, "ts": feed.t0 + 5 * HOUR, "order_id": unique("o")}
    follow_up["items"] = [*late_items, {**late_items[0], "product_id": catalogue[2]}]
    await feed.send("orders", follow_up)

    live = [o for i, o in enumerate(placed) if i not in cancelled | refunded] + [follow_up]
    expected = Counter(o["customer_id"] for o in live)
    await orders_applied(feed.base, {cid: expected.get(cid, 0) for cid in [*customers, late]})

    baskets = [{line["product_id"] for line in o["items"]} for o in live]
    assert len(baskets) == 150 - 23 + 1
    last: dict[str, Any] = {}

    def all_match() -> bool:
        for product in catalogue:
            status, got = http_get(
                f"{feed.base}/products/{product}/associations?min_count=1&top_k=50"
            )
            want = brute_force(baskets, product)
            last.update(product=product, got=got, want=want)
            if status != 200 or not same_associations(got, want):
                return False
        return True

    try:
        await eventually(all_match, timeout=15, interval=0.5)
    except AssertionError:
        pytest.fail(
            f"associations differ for {last['product']}:\n{last['got']}\n!=\n{last['want']}"
        )
    # min_count and top_k cut the same ranking.
    hub = catalogue[0]
    status, cut = http_get(f"{feed.base}/products/{hub}/associations?min_count=5&top_k=3")
    assert status == 200
    assert same_associations(cut, [r for r in brute_force(baskets, hub) if r["baskets"] >= 5][:3])


# --- CLV -----------------------------------------------------------------------------------


def simulate_buyers(rng: random.Random, n: int, horizon_days: float) -> dict[str, list[float]]:
    """BG/NBD-like histories: Poisson buying at a personal rate, dropping out after a repeat."""
    histories: dict[str, list[float]] = {}
    for _ in range(n):
        rate = rng.gammavariate(2.0, 1 / 25)  # purchases per day, mean 0.08
        drop = rng.betavariate(2.0, 8.0)  # chance of leaving after each repeat purchase
        day = rng.uniform(0, 150)
        days = [day]
        while True:
            day += rng.expovariate(rate)
            if day >= horizon_days:
                break
            days.append(day)
            if rng.random() < drop:
                break
        histories[unique("v")] = days
    return histories


async def test_clv_fit_and_customer_scores(feed: Shop) -> None:
    rng = random.Random(7)
    horizon = 200
    histories = simulate_buyers(rng, 300, horizon)
    frequent, one_timer = unique("v-frequent"), unique("v-once")
    histories[frequent] = [120.0 + 8 * i for i in range(10)]  # every 8 days up to day 192
    histories[one_timer] = [3.0]
    spend = {cid: rng.gammavariate(4.0, 12.0) for cid in histories}
    events = sorted((int(day * DAY), cid) for cid, days in histories.items() for day in days)
    for at, cid in events:
        total = round(1.0 + rng.gammavariate(6.0, spend[cid] / 6), 2)
        await feed.send(
            "orders",
            {"ts": feed.t0 + at, "customer_id": cid, "order_id": unique("o"), "total": total},
            flush=False,
        )
    await feed.producer.flush()
    await orders_applied(feed.base, {cid: len(days) for cid, days in histories.items()})
    assert sum(len(d) > 1 for d in histories.values()) >= 100  # enough repeat buyers
    cutoff = feed.t0 + horizon * DAY

    status, refreshed = http_send(f"{feed.base}/admin/refresh?as_of={cutoff}", "POST")

    assert status == 200, refreshed
    clv = refreshed["clv"]
    assert clv["fitted"] is True, clv
    bg, gg = clv["bgnbd"], clv["gamma_gamma"]
    assert all(bg[k] > 0 for k in ("r", "alpha", "a", "b")), bg
    assert all(gg[k] > 0 for k in ("p", "q", "v")) and gg["q"] > 1, gg
    # The population's mean purchase rate r / alpha is near the simulated one (0.08 a day),
    # pulled down a little by the one-time buyers of the associations test.
    assert 0.03 < bg["r"] / bg["alpha"] < 0.2, bg

    status, model = http_get(f"{feed.base}/models/clv")
    assert status == 200
    assert set(model["bgnbd"]) >= {"r", "alpha", "a", "b", "time_unit"}
    assert model["bgnbd"]["time_unit"] == "days"
    assert set(model["gamma_gamma"]) >= {"p", "q", "v"}
    assert {k: model["bgnbd"][k] for k in ["r", "alpha", "a", "b"]} == {
        k: bg[k] for k in ["r", "alpha", "a", "b"]
    }
    assert model["n_customers"] >= len(histories)
    assert parse_rfc3339(model["calibration_end"]) == cutoff
    parse_rfc3339(model["fitted_at"])

    scores = {}
    for cid in [frequent, one_timer, *rng.sample(sorted(histories), 20)]:
        status, profile = http_get(f"{feed.base}/customers/{cid}?as_of={cutoff}")
        assert status == 200
        score = profile["clv"]
        assert score is not None, profile
        assert 0 <= score["p_alive"] <= 1, score
        assert score["expected_orders_90d"] >= 0, score
        assert score["expected_value_90d"] >= 0, score
        scores[cid] = score
    assert scores[frequent]["expected_orders_90d"] > scores[one_timer]["expected_orders_90d"]
    assert scores[frequent]["expected_value_90d"] > scores[one_timer]["expected_value_90d"]


# --- models feeding campaigns -------------------------------------------------------------


async def test_cross_sell_items_come_from_associations(feed: Shop) -> None:
    a, b, c, d = (unique(f"px-{name}") for name in "abcd")
    pairers = [unique("c") for _ in range(5)]
    for cid in pairers:
        await feed.order(cid, 0, 20.0, [(a, "kitchen"), (b, "kitchen")])
    odd = unique("c")
    await feed.order(odd, 0, 20.0, [(a, "kitchen"), (c, "kitchen")])
    others = [unique("c") for _ in range(4)]
    for cid in others:
        await feed.order(cid, 0, 20.0, [(c, "kitchen"), (d, "kitchen")])
    buyer = unique("c")
    await feed.customer(buyer, 0)
    await feed.order(buyer, HOUR, 40.0, [(a, "kitchen")])
    await orders_applied(feed.base, dict.fromkeys([*pairers, odd, *others, buyer], 1))
    # Counts are written after the customers' state: wait for them before the timer is due.
    await eventually(
        lambda: (
            [
                (x["product_id"], x["baskets"])
                for x in http_get(f"{feed.base}/products/{a}/associations?min_count=1")[1]
            ]
            == [(b, 5), (c, 1)]
        )
    )
    await feed.advance(HOUR + DAY + MINUTE)

    assert await feed.outcome(buyer, "cross_sell") == [("sent", "eligible")]
    [offer] = await read_topic(
        feed.settings,
        "offers",
        lambda v: v["customer_id"] == buyer and v["campaign"] == "cross_sell",
    )
    # Best first by lift: B (5/7) / (5/N) before C (1/7) / (5/N), N = all baskets so far.
    assert offer["items"][:1] == [b], offer
    assert offer["items"] == [b, c], offer


async def test_replenishment_is_due_after_the_customers_shrunk_rhythm(feed: Shop) -> None:
    buyer = unique("c")
    beans = unique("p-beans")
    await feed.customer(buyer, 0)
    purchase_days = [0, 10, 20]
    for day in purchase_days:
        await feed.order(buyer, day * DAY + HOUR, 9.0, [(beans, "coffee")])
    await orders_applied(feed.base, {buyer: 3})
    # Shrinkage towards the campaign's 30-day prior, worth 2 intervals:
    intervals = [later - earlier for earlier, later in itertools.pairwise(purchase_days)]
    prior, weight = 30, 2
    expected_days = (weight * prior + sum(intervals)) / (weight + len(intervals))
    assert expected_days == 20
    due = purchase_days[-1] * DAY + HOUR + round(expected_days * DAY)  # day 40 + 1 h

    await feed.advance(35 * DAY)
    await feed.advance(due - HOUR)  # neither at day 35 nor an hour before it is due
    await feed.nothing_for(buyer, "replenishment")
    await feed.advance(41 * DAY)

    assert await feed.outcome(buyer, "replenishment") == [("sent", "eligible")]
    [offer] = await read_topic(
        feed.settings,
        "offers",
        lambda v: v["customer_id"] == buyer and v["campaign"] == "replenishment",
    )
    assert offer["title"] == "Time to restock coffee?"
