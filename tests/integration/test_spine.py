"""The spine end to end: raw events through the real broker, state in real Redis, records out."""

from __future__ import annotations

import orjson

from stream.producer import EventProducer
from stream.settings import Settings
from tests.integration.conftest import eventually, http_get, profile_when, read_topic, unique

TS = 1_795_341_600_000  # 2026-11-22T10:00:00Z


def click(cid: str, event_id: str, kind: str = "product_view", product: str = "p1", **extra):
    return {
        "event_id": event_id,
        "ts": TS,
        "customer_id": cid,
        "type": kind,
        "product_id": product,
        **extra,
    }


async def test_event_in_profile_visible_over_http(worker: str, producer: EventProducer) -> None:
    cid = unique("c")
    await producer.send("clicks", click(cid, unique("e"), product="p7"))
    await producer.send("clicks", click(cid, unique("e"), "add_to_cart", "p8", quantity=2))
    await producer.send(
        "orders",
        {
            "event_id": unique("e"),
            "ts": "2026-11-22T11:00:00+01:00",
            "customer_id": cid,
            "order_id": unique("o"),
            "total": 30.25,
        },
    )
    await producer.flush()

    profile = await profile_when(worker, cid, lambda p: p["orders"] == 1 and p["cart"])

    assert profile["top_viewed"] == [{"product_id": "p7", "views": 1}]
    assert profile["cart"] == [{"product_id": "p8", "quantity": 2}]
    assert profile["revenue"] == 30.25
    assert profile["last_order_at"] == "2026-11-22T10:00:00.000Z"
    assert profile["first_seen"] == "2026-11-22T10:00:00.000Z"
    assert profile["lifecycle"] in {"new", "at_risk", "lapsed"}
    assert http_get(f"{worker}/customers/{unique('nobody')}")[0] == 404


async def test_redelivered_event_changes_nothing(worker: str, producer: EventProducer) -> None:
    cid, event_id = unique("c"), unique("e")
    for _ in range(3):
        await producer.send("clicks", click(cid, event_id, product="p1"))
    order = {"event_id": unique("e"), "ts": TS, "customer_id": cid, "order_id": "o1", "total": 10.0}
    await producer.send("orders", order)
    await producer.send("orders", order)
    marker = unique("e")
    await producer.send("clicks", click(cid, marker, product="p-marker"))
    await producer.flush()

    profile = await profile_when(
        worker, cid, lambda p: any(v["product_id"] == "p-marker" for v in p["top_viewed"])
    )

    assert {v["product_id"]: v["views"] for v in profile["top_viewed"]} == {"p1": 1, "p-marker": 1}
    assert (profile["orders"], profile["revenue"]) == (1, 10.0)


async def test_cancellation_before_its_order_still_wins(
    worker: str, producer: EventProducer
) -> None:
    cid = unique("c")
    await producer.send(
        "orders",
        {
            "event_id": unique("e"),
            "ts": TS + 5,
            "customer_id": cid,
            "order_id": "o9",
            "status": "cancelled",
        },
    )
    await producer.send(
        "orders",
        {"event_id": unique("e"), "ts": TS, "customer_id": cid, "order_id": "o9", "total": 99.0},
    )
    await producer.send(
        "orders",
        {
            "event_id": unique("e"),
            "ts": TS + 9,
            "customer_id": cid,
            "order_id": "o10",
            "total": 5.5,
        },
    )
    await producer.flush()

    profile = await profile_when(worker, cid, lambda p: p["orders"] >= 1)

    assert (profile["orders"], profile["revenue"]) == (1, 5.5)


async def test_malformed_records_go_to_deadletter_and_the_stream_goes_on(
    worker: str, producer: EventProducer, settings: Settings
) -> None:
    cid = unique("c")
    bad_json = b'{"event_id": "x", "customer_id": "' + cid.encode() + b'", oops'
    missing_type = orjson.dumps({"event_id": unique("e"), "ts": TS, "customer_id": cid})
    oversized = orjson.dumps(click(cid, unique("e"), query="x" * (settings.max_event_bytes + 1)))
    for raw in (bad_json, missing_type, oversized):
        await producer.send("clicks", raw, key=cid)
    await producer.send("clicks", click(cid, unique("e"), product="after-the-bad-ones"))
    await producer.flush()

    profile = await profile_when(worker, cid, lambda p: bool(p["top_viewed"]))
    dead = await read_topic(
        settings, "deadletter", lambda v: cid in v["payload"], want=3, settle=1.0
    )

    assert profile["top_viewed"] == [{"product_id": "after-the-bad-ones", "views": 1}]
    assert len(dead) == 3
    assert all(d["source_topic"] == settings.topic("clicks") for d in dead)
    errors = " | ".join(d["error"] for d in dead)
    assert "type" in errors and "JSON" in errors.upper() and str(settings.max_event_bytes) in errors
    assert all(len(d["payload"].encode()) <= 65536 for d in dead)


async def test_record_without_key_is_rekeyed_to_its_customer(
    worker: str, producer: EventProducer
) -> None:
    cid = unique("c")
    await producer.send("clicks", orjson.dumps(click(cid, unique("e"), product="p-unkeyed")))
    await producer.flush()

    profile = await profile_when(worker, cid, lambda p: bool(p["top_viewed"]))

    assert profile["top_viewed"] == [{"product_id": "p-unkeyed", "views": 1}]


async def test_first_decisions_respect_consent(
    worker: str, producer: EventProducer, settings: Settings
) -> None:
    """Welcome on opt-in; a cart reminder for a customer without consent is suppressed."""
    consenting, silent = unique("c"), unique("c")
    await producer.send(
        "customers",
        {
            "event_id": unique("e"),
            "ts": TS,
            "customer_id": consenting,
            "email": f"{consenting}@example.com",
            "consent": {"email": True},
        },
    )
    await producer.send(
        "customers",
        {
            "event_id": unique("e"),
            "ts": TS,
            "customer_id": silent,
            "email": f"{silent}@example.com",
        },
    )
    await producer.flush()
    await profile_when(worker, silent, lambda p: bool(p["contact"]))
    # Live clock: the 2-hour cart reminder of an event two days old is due at once.
    await producer.send("clicks", click(silent, unique("e"), "add_to_cart", "p-left"))
    await producer.flush()

    ours = {consenting, silent}
    decisions = await read_topic(
        settings, "decisions", lambda v: v["customer_id"] in ours, want=2, timeout=30
    )
    offers = await read_topic(
        settings, "offers", lambda v: v["customer_id"] in ours, want=1, settle=2.0
    )
    emails = await read_topic(
        settings, "messages.email", lambda v: v["customer_id"] in ours, want=1, settle=2.0
    )

    outcome = {(d["customer_id"], d["campaign"]): (d["outcome"], d["reason"]) for d in decisions}
    assert outcome == {
        (consenting, "welcome"): ("sent", "eligible"),
        (silent, "cart_abandonment"): ("suppressed", "no_consent:email"),
    }
    assert [(o["customer_id"], o["campaign"]) for o in offers] == [(consenting, "welcome")]
    assert [(m["to"], m["offer_id"]) for m in emails] == [
        (f"{consenting}@example.com", offers[0]["offer_id"])
    ]
    assert offers[0]["coupon"]["code"].startswith("WELCOME-") and offers[0]["reason"]


async def test_metrics_count_events_by_outcome(worker: str, producer: EventProducer) -> None:
    def counters() -> dict[str, float]:
        import urllib.request

        text = urllib.request.urlopen(f"{worker}/metrics", timeout=5).read().decode()
        found = {}
        for line in text.splitlines():
            if line.startswith("rapport_events_total{") and 'topic="feedback"' in line:
                found[line.split('outcome="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
        return found

    before = counters()
    cid, event_id = unique("c"), unique("e")
    fb = {"event_id": event_id, "ts": TS, "customer_id": cid, "action": "opened"}
    await producer.send("feedback", fb)
    await producer.send("feedback", fb)
    await producer.send("feedback", b"[]", key=cid)
    await producer.flush()

    def moved() -> dict[str, float] | None:
        now = counters()
        delta = {k: now.get(k, 0) - before.get(k, 0) for k in ("accepted", "duplicate", "rejected")}
        return delta if sum(delta.values()) >= 3 else None

    assert await eventually(moved) == {"accepted": 1, "duplicate": 1, "rejected": 1}
