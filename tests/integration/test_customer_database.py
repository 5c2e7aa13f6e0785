"""The customer database through the real broker and Redis: identity, erasure, timers, RFM."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from stream.producer import EventProducer
from stream.settings import Settings
from tests.integration.conftest import (
    eventually,
    http_get,
    http_send,
    profile_when,
    read_topic,
    unique,
)

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
DAY = 86_400_000


def view(cid: str, product: str, ts: int, category: str = "shoes") -> dict:
    return {
        "event_id": unique("e"),
        "ts": ts,
        "customer_id": cid,
        "type": "product_view",
        "product_id": product,
        "category": category,
    }


def order(cid: str, ts: int, total: float, **extra: object) -> dict:
    return {
        "event_id": unique("e"),
        "ts": ts,
        "customer_id": cid,
        "order_id": unique("o"),
        "total": total,
        **extra,
    }


async def test_identify_merges_the_anonymous_visitor_and_forwards_later_events(
    event_worker: str, event_settings: Settings
) -> None:
    known, anon = unique("k"), unique("a")
    async with EventProducer(event_settings, event_settings.kafka_url or "") as producer:
        await producer.send("clicks", view(anon, "p-before", T0))
        await producer.send(
            "clicks",
            {
                "event_id": unique("e"),
                "ts": T0 + 5,
                "customer_id": anon,
                "type": "add_to_cart",
                "product_id": "p-cart",
            },
        )
        await producer.send("clicks", view(known, "p-known", T0 + 10))
        await producer.flush()
        await profile_when(event_worker, anon, lambda p: bool(p["cart"]))
        await producer.send(
            "clicks",
            {
                "event_id": unique("e"),
                "ts": T0 + 20,
                "customer_id": known,
                "type": "identify",
                "anonymous_id": anon,
            },
        )
        await producer.flush()
        await profile_when(event_worker, known, lambda p: bool(p["cart"]))
        await producer.send("clicks", view(anon, "p-after", T0 + 30))

    merged = await profile_when(
        event_worker, known, lambda p: any(v["product_id"] == "p-after" for v in p["top_viewed"])
    )

    assert {v["product_id"]: v["views"] for v in merged["top_viewed"]} == {
        "p-before": 1,
        "p-known": 1,
        "p-after": 1,
    }
    assert merged["cart"] == [{"product_id": "p-cart", "quantity": 1}]
    assert merged["first_seen"] == "2026-11-22T10:00:00.000Z"
    assert merged["aliases"] == [anon]
    status, body = http_get(f"{event_worker}/customers/{anon}")
    assert (status, body["merged_into"]) == (404, known)


async def test_erasure_leaves_no_key_and_says_goodbye(
    event_worker: str, event_settings: Settings
) -> None:
    cid, anon = unique("k"), unique("a")
    async with EventProducer(event_settings, event_settings.kafka_url or "") as producer:
        await producer.send("clicks", view(anon, "p1", T0))
        await producer.send(
            "customers",
            {
                "event_id": unique("e"),
                "ts": T0,
                "customer_id": cid,
                "email": f"{cid}@example.com",
                "consent": {"email": True},
            },
        )
        await producer.send("orders", order(cid, T0 + 1, 80.0))
        await producer.flush()
        await profile_when(event_worker, anon, lambda p: bool(p["top_viewed"]))
        await producer.send(
            "clicks",
            {
                "event_id": unique("e"),
                "ts": T0 + 2,
                "customer_id": cid,
                "type": "identify",
                "anonymous_id": anon,
            },
        )
        await producer.flush()
        await profile_when(event_worker, cid, lambda p: p["orders"] == 1 and p["aliases"])
        await producer.send(
            "customers", {"event_id": unique("e"), "ts": T0 + 3, "customer_id": cid, "erase": True}
        )

    client = redis.Redis.from_url(event_settings.redis_url or "")

    def keys_naming_them() -> list[bytes]:
        return [
            k
            for k in client.scan_iter(match=f"{event_settings.redis_prefix}*", count=1000)
            if cid.encode() in k or anon.encode() in k
        ]

    def erased() -> bool:
        gone = http_get(f"{event_worker}/customers/{cid}")[0] == 404
        members = [
            client.zscore(f"{event_settings.redis_prefix}{{rfm}}:f", cid),
            client.zscore(f"{event_settings.redis_prefix}{{timers}}:due", cid),
            client.hget(f"{event_settings.redis_prefix}{{rfm}}:segment", cid),
        ]
        return gone and not keys_naming_them() and members == [None, None, None]

    await eventually(erased)
    assert keys_naming_them() == []
    exits = await read_topic(
        event_settings,
        "segments",
        lambda v: v["customer_id"] == cid and v["change"] == "exit",
        want=2,
    )
    assert {e["segment"] for e in exits} >= {"lifecycle:new", "tier:bronze"}

    async with EventProducer(event_settings, event_settings.kafka_url or "") as producer:
        await producer.send("clicks", view(cid, "p-new-life", T0 + 10))
    fresh = await profile_when(event_worker, cid, lambda p: bool(p["top_viewed"]))
    assert (fresh["orders"], fresh["contact"], fresh["consent"]["email"]) == (0, {}, False)
    assert fresh["first_seen"] == "2026-11-22T10:00:00.010Z"
    client.close()


async def test_delete_route_erases_the_customer(
    event_worker: str, event_settings: Settings
) -> None:
    cid = unique("k")
    async with EventProducer(event_settings, event_settings.kafka_url or "") as producer:
        await producer.send("orders", order(cid, T0, 20.0))
    await profile_when(event_worker, cid, lambda p: p["orders"] == 1)

    status, body = http_send(f"{event_worker}/customers/{cid}", "DELETE")

    assert (status, body["status"]) == (202, "erasing")
    await eventually(lambda: http_get(f"{event_worker}/customers/{cid}")[0] == 404)


async def test_lifecycle_timer_fires_with_no_further_input_for_the_customer(
    event_worker: str, event_settings: Settings
) -> None:
    quiet, other = unique("quiet"), unique("other")
    start = T0 + 1000 * DAY  # far ahead of the other tests on this worker's clock
    async with EventProducer(event_settings, event_settings.kafka_url or "") as producer:
        await producer.send("orders", order(quiet, start, 40.0))
        await producer.flush()
        await profile_when(event_worker, quiet, lambda p: p["orders"] == 1)
        # Only somebody else's event moves the engine clock past quiet's 90 days.
        await producer.send("clicks", view(other, "p1", start + 90 * DAY))

    changes = await read_topic(
        event_settings, "segments", lambda v: v["customer_id"] == quiet, want=4, timeout=30
    )

    assert [(c["change"], c["segment"]) for c in changes[-2:]] == [
        ("exit", "lifecycle:new"),
        ("enter", "lifecycle:at_risk"),
    ]
    due = datetime.fromtimestamp((start + 90 * DAY) / 1000, tz=UTC)
    assert changes[-1]["ts"] == due.strftime("%Y-%m-%dT%H:%M:%S.000Z")  # last order + 90 days
    profile = http_get(f"{event_worker}/customers/{quiet}")[1]
    assert profile["segments"] == ["lifecycle:at_risk", "tier:bronze"]
    assert profile["last_seen"] == profile["last_order_at"]  # the timer is not an event


async def test_rfm_scores_follow_the_contract_and_refresh_emits_segments(
    event_worker: str, event_settings: Settings
) -> None:
    """Ten buyers, one order each a day apart, spend rising: exact contract scores."""
    start = T0 + 2000 * DAY
    buyers = [unique(f"rfm{i}") for i in range(10)]
    async with EventProducer(event_settings, event_settings.kafka_url or "") as producer:
        for i, cid in enumerate(buyers):
            for n in range(1 + i % 3):
                await producer.send("orders", order(cid, start + i * DAY + n, 10.0 * (i + 1)))
    for i, cid in enumerate(buyers):
        await profile_when(event_worker, cid, lambda p, n=1 + i % 3: p["orders"] == n)
    as_of = start + 10 * DAY

    status, report = http_send(f"{event_worker}/admin/refresh?as_of={as_of}", "POST")

    assert status == 200
    assert report["rfm"]["population"] >= 10
    ours = set(buyers)
    population = {
        cid: http_get(f"{event_worker}/customers/{cid}?as_of={as_of}")[1] for cid in buyers
    }
    # Only our ten buyers are scored against each other when nobody else bought later.
    assert report["rfm"]["population"] == len(_all_buyers(event_settings))
    everyone = _all_buyers(event_settings)
    for cid, profile in population.items():
        last, orders, revenue = everyone[cid]
        days = (as_of - last) // DAY
        worse_r = sum(1 for lo, _, _ in everyone.values() if (as_of - lo) // DAY > days)
        worse_f = sum(1 for _, o, _ in everyone.values() if o < orders)
        worse_m = sum(1 for _, _, m in everyone.values() if m < revenue)
        equal_r = sum(1 for lo, _, _ in everyone.values() if (as_of - lo) // DAY == days)
        equal_f = sum(1 for _, o, _ in everyone.values() if o == orders)
        equal_m = sum(1 for _, _, m in everyone.values() if m == revenue)
        n = len(everyone)
        expected = [  # the mid-rank of ties: 5 * (worse + equal / 2) / n, in integers
            min(5, 1 + (5 * (2 * w + e)) // (2 * n))
            for w, e in ((worse_r, equal_r), (worse_f, equal_f), (worse_m, equal_m))
        ]
        assert [profile["rfm"][k] for k in "rfm"] == expected, cid
    entered = await read_topic(
        event_settings,
        "segments",
        lambda v: v["customer_id"] in ours and v["segment"].startswith("rfm:"),
        want=10,
        timeout=30,
    )
    assert {e["customer_id"] for e in entered} == ours


def _all_buyers(settings: Settings) -> dict[str, tuple[int, int, float]]:
    client = redis.Redis.from_url(settings.redis_url or "")
    p = settings.redis_prefix
    r = dict(client.zrange(f"{p}{{rfm}}:r", 0, -1, withscores=True))
    f = dict(client.zrange(f"{p}{{rfm}}:f", 0, -1, withscores=True))
    m = dict(client.zrange(f"{p}{{rfm}}:m", 0, -1, withscores=True))
    client.close()
    return {k.decode(): (int(r[k]), int(f[k]), m[k]) for k in r}


async def test_tier_and_affinity_and_windows_in_the_profile(
    event_worker: str, event_settings: Settings
) -> None:
    cid = unique("k")
    start = T0 + 3000 * DAY
    async with EventProducer(event_settings, event_settings.kafka_url or "") as producer:
        await producer.send("clicks", view(cid, "p1", start, category="bags"))
        await producer.send(
            "orders",
            order(
                cid,
                start + 1000,
                300.0,
                items=[
                    {"product_id": "p9", "category": "shoes", "quantity": 1, "unit_price": 300.0}
                ],
            ),
        )
    profile = await profile_when(event_worker, cid, lambda p: p["orders"] == 1)

    assert profile["tier"] == "silver"
    assert list(profile["affinity"]) == ["shoes", "bags"]
    assert profile["windows"]["views"]["1h"] == 1 and profile["windows"]["orders"]["30d"] == 1
    tiers = await read_topic(
        event_settings,
        "segments",
        lambda v: v["customer_id"] == cid and v["segment"] == "tier:silver",
    )
    assert tiers[0]["change"] == "enter"
