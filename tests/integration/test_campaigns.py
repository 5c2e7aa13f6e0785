"""Every built-in campaign through the real broker and Redis, with its suppression cases.

The worker runs on the event clock, so time moves only with events: a test
makes a delayed campaign due by sending an event for an unrelated "clock"
customer. Each test works in its own stretch of event time (``Epoch``), later
than every earlier test's, and with its own customer ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from stream.producer import EventProducer
from stream.settings import Settings
from tests.integration.conftest import (
    eventually,
    http_get,
    http_send,
    profile_when,
    unique,
)
from tests.integration.shop import DAY, HOUR, Shop


@pytest.fixture
async def shop(event_worker: str, event_settings: Settings) -> Iterator[Shop]:
    async with EventProducer(event_settings, event_settings.kafka_url or "") as producer:
        yield Shop(event_settings, event_worker, producer)


async def test_welcome_on_first_opt_in_once_and_not_without_address(shop: Shop) -> None:
    fan, no_address = unique("c"), unique("c")
    await shop.customer(fan, 0)
    assert await shop.outcome(fan, "welcome") == [("sent", "eligible")]
    [offer] = await shop.offers(fan)
    [email] = await shop.messages(fan)
    assert (offer["kind"], offer["coupon"]["value"], email["template"]) == ("coupon", 10, "welcome")
    assert email["vars"]["coupon_code"] == offer["coupon"]["code"]
    await shop.send(
        "customers", {"ts": shop.t0 + 10, "customer_id": fan, "consent": {"email": False}}
    )
    await shop.send(
        "customers", {"ts": shop.t0 + 20, "customer_id": fan, "consent": {"email": True}}
    )
    assert await shop.outcome(fan, "welcome", want=2) == [
        ("sent", "eligible"),
        ("suppressed", "cooldown"),
    ]
    await shop.send(
        "customers", {"ts": shop.t0, "customer_id": no_address, "consent": {"email": True}}
    )
    assert await shop.outcome(no_address, "welcome") == [("suppressed", "no_address:email")]


async def test_browse_abandonment_after_three_views_unless_bought(shop: Shop) -> None:
    looker, glancer, buyer = unique("c"), unique("c"), unique("c")
    for cid in (looker, glancer, buyer):
        await shop.customer(cid, 0)
    for i in range(3):
        await shop.click(looker, 60_000 * (i + 1), "product_view", "p-boot", category="shoes")
        await shop.click(buyer, 60_000 * (i + 1), "product_view", "p-boot", category="shoes")
    await shop.click(glancer, 60_000, "product_view", "p-boot", category="shoes")
    await shop.order(buyer, 10 * 60_000, 80.0, [("p-boot", "shoes")])
    await profile_when(shop.base, buyer, lambda p: p["orders"] == 1)
    await shop.advance(2 * HOUR)

    assert await shop.outcome(looker, "browse_abandonment") == [("sent", "eligible")]
    offers = await shop.offers(looker, want=2)
    browse = next(o for o in offers if o["campaign"] == "browse_abandonment")
    assert browse["items"] == ["p-boot"] and "viewed p-boot 3 times" in browse["reason"]
    await shop.nothing_for(glancer, "browse_abandonment")
    await shop.nothing_for(buyer, "browse_abandonment")


async def test_cart_abandonment_fires_after_two_hours_and_an_order_cancels_it(
    shop: Shop,
) -> None:
    leaver, buyer = unique("c"), unique("c")
    for cid in (leaver, buyer):
        await shop.customer(cid, 0)
        await shop.click(cid, HOUR, "add_to_cart", "p-mug", category="kitchen")
    await shop.order(buyer, HOUR + 30 * 60_000, 12.0, [("p-mug", "kitchen")])
    await profile_when(shop.base, buyer, lambda p: p["orders"] == 1)
    await shop.advance(3 * HOUR + 1)

    assert await shop.outcome(leaver, "cart_abandonment") == [("sent", "eligible")]
    [email] = [
        m for m in await shop.messages(leaver, want=2) if m["campaign"] == "cart_abandonment"
    ]
    assert email["vars"]["items"] == "p-mug" and email["template"] == "cart_reminder"
    await shop.nothing_for(buyer, "cart_abandonment")


async def test_quiet_hours_defer_and_a_late_order_retracts_the_reminder(shop: Shop) -> None:
    """A cart reminder due in the evening is held until 08:00 Berlin; an order retracts it.

    Times below are for winter (UTC+1); in summer every local time is an hour
    later, which keeps each step on the same side of the quiet hours.
    """
    night_owl, sleeper = unique("c"), unique("c")
    for cid in (night_owl, sleeper):
        await shop.customer(cid, 0, timezone="Europe/Berlin")
        await shop.click(cid, 8 * HOUR + 30 * 60_000, "add_to_cart", "p-lamp")  # 19:30 Berlin
    await shop.advance(10 * HOUR + 40 * 60_000)  # 21:40 Berlin: due, but quiet
    assert await shop.outcome(sleeper, "cart_abandonment") == [("deferred", "quiet_hours")]
    await shop.order(night_owl, 12 * HOUR, 30.0, [("p-lamp", "home")])  # 23:00 Berlin
    await profile_when(shop.base, night_owl, lambda p: p["orders"] == 1)
    await shop.advance(22 * HOUR)  # 09:00 Berlin next day

    assert await shop.outcome(sleeper, "cart_abandonment", want=2) == [
        ("deferred", "quiet_hours"),
        ("sent", "eligible"),
    ]
    [email] = [
        m for m in await shop.messages(sleeper, want=2) if m["campaign"] == "cart_abandonment"
    ]
    sent_at = datetime.fromisoformat(email["send_at"].replace("Z", "+00:00"))
    assert sent_at.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") == "08:00"
    assert await shop.outcome(night_owl, "cart_abandonment", want=2) == [
        ("deferred", "quiet_hours"),
        ("suppressed", "retracted:order_placed"),
    ]


async def test_cross_sell_and_feedback_survey_after_an_order_unless_refunded(
    shop: Shop,
) -> None:
    happy, refunded = unique("c"), unique("c")
    for cid in (happy, refunded):
        await shop.customer(cid, 0)
    await shop.order(happy, HOUR, 40.0, [("p-pan", "kitchen")])
    refund_id = await shop.order(refunded, HOUR, 40.0, [("p-pan", "kitchen")])
    await shop.send(
        "orders",
        {
            "ts": shop.t0 + 5 * HOUR,
            "customer_id": refunded,
            "order_id": refund_id,
            "status": "refunded",
        },
    )
    await profile_when(shop.base, refunded, lambda p: p["orders"] == 0)
    await shop.advance(HOUR + DAY)
    assert await shop.outcome(happy, "cross_sell") == [("sent", "eligible")]
    await shop.advance(HOUR + 8 * DAY)

    assert await shop.outcome(happy, "feedback_survey") == [("sent", "eligible")]
    await shop.nothing_for(refunded, "cross_sell")
    await shop.nothing_for(refunded, "feedback_survey", wait=0.5)


async def test_frequency_cap_suppresses_the_third_message_of_a_day(shop: Shop) -> None:
    busy = unique("c")
    await shop.customer(busy, 0)  # welcome: 1st message
    await shop.order(busy, HOUR, 300.0, [("p-coat", "outerwear")])  # tier silver: 2nd
    await profile_when(shop.base, busy, lambda p: p["orders"] == 1)
    await shop.click(busy, 2 * HOUR, "add_to_cart", "p-hat")
    await shop.advance(5 * HOUR)  # cart reminder: would be the 3rd within 24 hours

    assert await shop.outcome(busy, "spend_ladder") == [("sent", "eligible")]
    assert await shop.outcome(busy, "cart_abandonment") == [("suppressed", "frequency_cap:day")]


async def test_replenishment_when_due_and_rescheduled_by_a_new_purchase(shop: Shop) -> None:
    due, restocked = unique("c"), unique("c")
    for cid in (due, restocked):
        await shop.customer(cid, 0)
        await shop.order(cid, HOUR, 9.0, [("p-beans", "coffee")])
    await shop.order(restocked, 20 * DAY, 9.0, [("p-beans", "coffee")])
    await profile_when(shop.base, restocked, lambda p: p["orders"] == 2)
    await shop.advance(31 * DAY)

    assert await shop.outcome(due, "replenishment") == [("sent", "eligible")]
    offers = await shop.offers(due, want=2)
    assert any(o["title"] == "Time to restock coffee?" for o in offers)
    await shop.nothing_for(restocked, "replenishment")


async def test_win_back_on_at_risk_with_a_coupon_by_tier_and_consent(shop: Shop) -> None:
    lapsing, silent = unique("c"), unique("c")
    await shop.customer(lapsing, 0)
    await shop.customer(silent, 0, consent=False)
    await shop.order(lapsing, HOUR, 1200.0, [("p-sofa", "home")])  # gold
    await shop.order(silent, HOUR, 20.0, [("p-cup", "home")])
    await shop.advance(HOUR + 91 * DAY)

    assert await shop.outcome(lapsing, "win_back") == [("sent", "eligible")]
    offers = await shop.offers(lapsing, want=3)
    [coupon] = [o["coupon"] for o in offers if o["campaign"] == "win_back"]
    assert coupon["value"] == 20  # gold
    assert await shop.outcome(silent, "win_back") == [("suppressed", "no_consent:email")]


async def test_spend_ladder_on_tier_up_only(shop: Shop) -> None:
    climber, small = unique("c"), unique("c")
    for cid in (climber, small):
        await shop.customer(cid, 0)
    await shop.order(climber, HOUR, 200.0, [("p1", "bags")])
    await shop.order(small, HOUR, 20.0, [("p1", "bags")])
    await shop.order(climber, 2 * HOUR, 900.0, [("p2", "bags")])  # 1,100: gold

    outcomes = await shop.outcome(climber, "spend_ladder")
    assert outcomes == [("sent", "eligible")]
    offers = await shop.offers(climber, want=2)
    [ladder] = [o for o in offers if o["campaign"] == "spend_ladder"]
    assert ladder["coupon"]["value"] == 25 and "gold" in ladder["title"]
    await shop.nothing_for(small, "spend_ladder")


async def test_birthday_greeting_at_nine_local_time(shop: Shop) -> None:
    from datetime import UTC

    day = datetime.fromtimestamp((shop.t0 + 3 * DAY) / 1000, tz=UTC)
    birthday = f"1990-{day:%m-%d}"
    celebrant = unique("c")
    await shop.customer(celebrant, 0, birthday=birthday, timezone="America/New_York")
    await shop.advance(3 * DAY + 20 * HOUR)

    assert await shop.outcome(celebrant, "birthday") == [("sent", "eligible")]
    [email] = [m for m in await shop.messages(celebrant, want=2) if m["campaign"] == "birthday"]
    sent_at = datetime.fromisoformat(email["send_at"].replace("Z", "+00:00"))
    local = sent_at.astimezone(ZoneInfo("America/New_York"))  # EST or EDT, as the date has it
    assert (local.month, local.day, local.hour) == (day.month, day.day, 9)


async def test_vip_care_when_the_refresh_puts_a_customer_among_champions(shop: Shop) -> None:
    buyers = [unique("vip") for _ in range(5)]
    for i, cid in enumerate(buyers):
        await shop.customer(cid, 0)
        for n in range(i + 1):
            await shop.order(cid, HOUR + i * HOUR + n, 50.0 * (i + 1), [("p", "bags")])
    for i, cid in enumerate(buyers):
        await profile_when(shop.base, cid, lambda p, n=i + 1: p["orders"] == n)
    # Two days on, so the welcome and tier messages of the first day no longer cap it.
    status, _ = http_send(f"{shop.base}/admin/refresh?as_of={shop.t0 + 2 * DAY}", "POST")
    assert status == 200

    top = buyers[-1]
    assert await shop.outcome(top, "vip_care") == [("sent", "eligible")]
    await shop.nothing_for(buyers[0], "vip_care", wait=0.5)


async def test_new_arrival_reaches_only_customers_who_like_the_category(shop: Shop) -> None:
    fan, browser = unique("c"), unique("c")
    await shop.customer(fan, 0)
    await shop.customer(browser, 0)
    await shop.order(fan, HOUR, 60.0, [("p-sneaker", "shoes")])  # purchase weight 5
    await shop.click(browser, HOUR, "product_view", "p-sandal", category="shoes")  # weight 1
    await profile_when(shop.base, fan, lambda p: p["affinity"].get("shoes", 0) > 4)
    await shop.send(
        "catalog",
        {
            "ts": shop.t0 + 2 * HOUR,
            "product_id": unique("p-new"),
            "category": "shoes",
            "price": 99.0,
            "new_arrival": True,
            "in_stock": True,
            "name": "Trail Runner",
        },
    )

    assert await shop.outcome(fan, "new_arrival") == [("sent", "eligible")]
    await shop.nothing_for(browser, "new_arrival")


async def test_price_drop_and_back_in_stock_reach_viewers_only(shop: Shop) -> None:
    viewer, wisher, stranger = unique("c"), unique("c"), unique("c")
    product = unique("p-kettle")
    for cid in (viewer, wisher, stranger):
        await shop.customer(cid, 0)
    await shop.send(
        "catalog",
        {
            "ts": shop.t0,
            "product_id": product,
            "category": "kitchen",
            "price": 50.0,
            "in_stock": False,
        },
    )
    await shop.click(viewer, HOUR, "product_view", product, category="kitchen")
    await shop.click(wisher, HOUR, "wishlist_add", product, category="kitchen")
    await shop.click(stranger, HOUR, "product_view", unique("p-other"))
    for cid in (viewer, wisher):
        await profile_when(
            shop.base,
            cid,
            lambda p: p["last_seen"] is not None and p["last_seen"] > p["first_seen"],
        )
    await shop.send(
        "catalog",
        {"ts": shop.t0 + 2 * HOUR, "product_id": product, "price": 40.0, "in_stock": True},
    )

    for cid in (viewer, wisher):
        found = await shop.decisions(cid, want=3)
        campaigns = {(d["campaign"], d["outcome"]) for d in found}
        assert ("price_drop", "sent") in campaigns
        assert ("back_in_stock", "suppressed") in campaigns  # one message per moment
    [drop] = [o for o in await shop.offers(viewer, want=2) if o["campaign"] == "price_drop"]
    assert "from 50 to 40" in drop["reason"]
    await shop.nothing_for(stranger, "price_drop", wait=0.5)


async def test_live_offers_best_first(shop: Shop) -> None:
    cid = unique("c")
    await shop.customer(cid, 0)
    await shop.order(cid, HOUR, 300.0, [("p-coat", "outerwear")])
    await eventually(lambda: len(http_get(f"{shop.base}/customers/{cid}/offers")[1]) == 2)

    status, offers = http_get(f"{shop.base}/customers/{cid}/offers?as_of={shop.t0 + 2 * HOUR}")

    assert status == 200
    assert [o["campaign"] for o in offers] == ["welcome", "spend_ladder"]  # priority 40 > 35
