"""The campaign engine through ``step``/``fold``, table-driven with small campaign books.

Every scenario is a book (a few campaigns written as a marketer would, through
``build_book``), a customer's events and the decisions they must give, in order:
``(campaign, trigger event, outcome, reason, channel)``. Whatever the scenario, a
decision that is not ``sent`` carries no offer and no message, a sent one carries
the offer it names and (with channels) a message on its channel, outside quiet hours.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from models.campaign_config import CampaignBook, build_book
from models.campaigns import CatalogFacts, EngineConfig, moment_of, render, run_campaigns
from models.customer import (
    AnyEvent,
    CustomerState,
    Envelope,
    StepConfig,
    fold,
    indexes,
    new_state,
    step,
)
from models.events import Click, CustomerUpdate, Feedback, LifecycleTick, Order, OrderItem
from models.ledger import Sent, bucket, in_quiet_hours
from models.outputs import CampaignResult, Coupon, derive_id
from models.profile import Profile, ProfileConfig, apply_event

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z, 11:00 in Berlin (the books' default zone)
HOUR = 3_600_000
DAY = 24 * HOUR
CID = "c1"
SOURCE = "t/0"

Expected = tuple[str, str, str, str, str | None]  # campaign, trigger, outcome, reason, channel


# --- books and events -------------------------------------------------------------------------


def campaign(name: str, trigger: Mapping[str, Any], **spec: Any) -> dict[str, Any]:
    """A campaign as plain data: an email notice titled after it unless ``spec`` says otherwise."""
    channels = spec.pop("channels", ("email",))
    return {
        "name": name,
        "trigger": dict(trigger),
        "offer": spec.pop("offer", {"title": f"{name} title"}),
        "channels": [{"channel": ch, "template": f"{name}_{ch}"} for ch in channels],
        **spec,
    }


def book(*campaigns: Mapping[str, Any], **settings: Any) -> CampaignBook:
    base = {"control_group_percent": 0, "default_timezone": "Europe/Berlin"}
    return build_book({"settings": {**base, **settings}, "campaigns": list(campaigns)}, source="t")


def config_of(campaign_book: CampaignBook) -> StepConfig:
    return StepConfig(engine=EngineConfig(book=campaign_book))


def everything(eid: str = "u0", at: int = -HOUR, **changes: Any) -> CustomerUpdate:
    """Every address and every consent (before the scenario's own events)."""
    fields: dict[str, Any] = {
        "email": "ann@example.com",
        "phone": "+4712345678",
        "push_token": "tok-1",
        "consent": (("email", True), ("sms", True), ("push", True)),
        **changes,
    }
    return CustomerUpdate(eid, T0 + at, CID, **fields)


def view(eid: str, at: int = 0, product: str = "p1", category: str = "shoes") -> Click:
    return Click(eid, T0 + at, CID, "product_view", product_id=product, category=category)


def page(eid: str, at: int = 0) -> Click:
    return Click(eid, T0 + at, CID, "page_view")


def add(eid: str, at: int = 0, product: str = "p1") -> Click:
    return Click(eid, T0 + at, CID, "add_to_cart", product_id=product, category="shoes")


def order(eid: str, at: int = 0, total: float = 50.0, oid: str = "") -> Order:
    items = (OrderItem("p1", "shoes", 1, total),)
    return Order(eid, T0 + at, CID, oid or f"o-{eid}", total=total, items=items)


def tick(eid: str, at: int) -> LifecycleTick:
    return LifecycleTick(eid, T0 + at, CID)


def ms(iso: str) -> int:
    """Epoch ms of an ISO 8601 instant written with ``Z``."""
    instant = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // (instant.resolution * 1000)


def run(
    campaign_book: CampaignBook, events: Sequence[AnyEvent], state: CustomerState | None = None
) -> tuple[CustomerState, list[CampaignResult]]:
    """Fold the events one by one; the campaign results they gave, in order."""
    state = state or new_state(CID)
    results: list[CampaignResult] = []
    config = config_of(campaign_book)
    first = state.applied.offsets.get(SOURCE, -1) + 1  # go on where an earlier run stopped
    for offset, event in enumerate(events, start=first):
        stepped = step(state, event, config=config, source=SOURCE, offset=offset)
        state = stepped.state
        results += [o for o in stepped.outputs if isinstance(o, CampaignResult)]
    return state, results


def summary(results: Sequence[CampaignResult]) -> list[Expected]:
    return [
        (
            r.decision.campaign,
            r.decision.trigger_event_id,
            r.decision.outcome,
            r.decision.reason,
            r.decision.channel,
        )
        for r in results
    ]


def check_result(result: CampaignResult, campaign_book: CampaignBook, zone: str | None) -> None:
    """What holds for every campaign result, whatever the scenario."""
    decision, offer, message = result.decision, result.offer, result.message
    if decision.outcome != "sent":
        assert (offer, message) == (None, None), "only a sent decision carries an offer"
        return
    assert offer is not None and decision.offer_id == offer.offer_id
    assert (offer.customer_id, offer.campaign) == (decision.customer_id, decision.campaign)
    assert offer.trigger_event_id == decision.trigger_event_id
    spec = campaign_book.named(decision.campaign)
    assert spec is not None
    if not spec.channels:
        assert (message, decision.channel, decision.reason) == (None, None, "storefront")
        return
    assert message is not None and message.channel == decision.channel
    assert (message.offer_id, message.campaign) == (offer.offer_id, decision.campaign)
    assert message.message_id == derive_id("message", offer.offer_id, message.channel)
    assert not in_quiet_hours(message.send_at, timezone=zone, config=campaign_book.ledger)


# --- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    campaigns: tuple[Mapping[str, Any], ...]
    events: tuple[AnyEvent, ...]
    expected: tuple[Expected, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)


EMAIL_ONLY = everything(
    push_token=None, phone=None, consent=(("email", True), ("sms", False), ("push", False))
)
NUDGE = campaign("nudge", {"event": "add_to_cart", "delay": "2h", "cancel_on": ["order_placed"]})
AT_NIGHT = 11 * HOUR  # 21:00 UTC, 22:00 in Berlin: quiet
MORNING = 21 * HOUR  # 07:00 UTC next day, 08:00 in Berlin: quiet hours end
LOW = campaign("low", {"event": "page_view"}, priority=10)
HIGH = campaign("high", {"event": "page_view"}, priority=20)
CHATTY = campaign("chatty", {"event": "page_view"})
TEXTY = campaign("texty", {"event": "page_view"}, channels=("sms",))
SMS_FIRST = campaign("sms_first", {"event": "page_view"}, channels=("sms", "email"))
PUSH_FIRST = campaign("push_first", {"event": "page_view"}, channels=("push", "email"))

SCENARIOS: dict[str, Scenario] = {
    "event trigger": Scenario(
        (campaign("on_add", {"event": "add_to_cart"}),),
        (everything(), page("k0"), view("k1"), add("k2", HOUR)),
        (("on_add", "k2", "sent", "eligible", "email"),),
    ),
    "event trigger: only an order that newly counts is order_placed": Scenario(
        (campaign("thanks", {"event": "order_placed"}),),
        (
            everything(),
            Order("x1", T0 + 1, CID, "o1", status="cancelled"),
            order("o-late", at=0, oid="o1"),  # placed after its cancellation: never counts
            order("o-ok", at=2 * HOUR, oid="o2"),
            order("o-again", at=3 * HOUR, oid="o2"),  # o2 already counts
        ),
        (("thanks", "o-ok", "sent", "eligible", "email"),),
    ),
    "consent trigger: the first opt-in on its channel": Scenario(
        (campaign("hello_sms", {"consent": "sms"}, channels=("sms",)),),
        (
            CustomerUpdate("u1", T0, CID, phone="+4712345678", consent=(("email", True),)),
            CustomerUpdate("u2", T0 + HOUR, CID, consent=(("sms", True),)),
            CustomerUpdate("u3", T0 + 2 * HOUR, CID, consent=(("sms", True),)),  # still in
        ),
        (("hello_sms", "u2", "sent", "eligible", "sms"),),
    ),
    "consent trigger: an older opt-in after a newer opt-out is no opt-in": Scenario(
        (campaign("hello", {"consent": "email"}),),
        (
            CustomerUpdate("u1", T0 + HOUR, CID, email="a@b.c", consent=(("email", False),)),
            CustomerUpdate("u2", T0, CID, consent=(("email", True),)),
        ),
        (),
    ),
    "segment trigger: lifecycle:at_risk reached by a tick": Scenario(
        (campaign("win_back", {"segment": "lifecycle:at_risk"}),),
        (
            everything(),
            order("o1", at=0),
            tick("t1", 90 * DAY - 1),  # one ms early: still new
            tick("t2", 90 * DAY),
            tick("t3", 91 * DAY),  # already at risk: no new entry
        ),
        (("win_back", "t2", "sent", "eligible", "email"),),
    ),
    "segment trigger: tier:* on any tier entry, by the order itself": Scenario(
        (campaign("ladder", {"segment": "tier:*"}),),
        (everything(), order("o1", at=0, total=10.0), order("o2", at=HOUR, total=300.0)),
        (
            ("ladder", "o1", "sent", "eligible", "email"),  # tier:bronze
            ("ladder", "o2", "sent", "eligible", "email"),  # tier:silver
        ),
    ),
    "delayed trigger: parked, fired by the tick at its due time": Scenario(
        (NUDGE,),
        (everything(), add("k1", HOUR), tick("t-early", 3 * HOUR - 1), tick("t-due", 3 * HOUR)),
        (("nudge", "k1", "sent", "eligible", "email"),),
    ),
    "delayed trigger: a new trigger moves the due time": Scenario(
        (NUDGE,),
        (everything(), add("k1", HOUR), add("k2", 2 * HOUR), tick("t1", 3 * HOUR)),
        (),
    ),
    "delayed trigger: ...and fires for the last trigger": Scenario(
        (NUDGE,),
        (everything(), add("k1", HOUR), add("k2", 2 * HOUR), tick("t1", 4 * HOUR)),
        (("nudge", "k2", "sent", "eligible", "email"),),
    ),
    "cancel_on removes a pending trigger": Scenario(
        (NUDGE,),
        (everything(), add("k1", HOUR), order("o1", 2 * HOUR), tick("t1", 3 * HOUR)),
        (),
    ),
    "an event not in cancel_on leaves the pending trigger": Scenario(
        (NUDGE,),
        (everything(), add("k1", HOUR), view("k2", 2 * HOUR), tick("t1", 3 * HOUR)),
        (("nudge", "k1", "sent", "eligible", "email"),),
    ),
    "quiet hours: deferred, then sent at the tick at send time": Scenario(
        (campaign("night", {"event": "page_view"}),),
        (everything(), page("k1", AT_NIGHT), tick("t1", MORNING - 1), tick("t2", MORNING)),
        (
            ("night", "k1", "deferred", "quiet_hours", "email"),
            ("night", "k1", "sent", "eligible", "email"),
        ),
    ),
    "quiet hours: a held message is retracted by an order": Scenario(
        (campaign("night", {"event": "page_view", "cancel_on": ["order_placed"]}),),
        (everything(), page("k1", AT_NIGHT), order("o1", AT_NIGHT + HOUR), tick("t1", MORNING)),
        (
            ("night", "k1", "deferred", "quiet_hours", "email"),
            ("night", "k1", "suppressed", "retracted:order_placed", "email"),
        ),
    ),
    "quiet hours: a held message is checked again at its send time": Scenario(
        (campaign("night", {"event": "page_view"}),),
        (
            everything(),
            page("k1", AT_NIGHT),
            Feedback("f1", T0 + AT_NIGHT + HOUR, CID, "unsubscribed", channel="email"),
            tick("t1", MORNING),
        ),
        (
            ("night", "k1", "deferred", "quiet_hours", "email"),
            ("night", "k1", "suppressed", "no_consent:email", "email"),
        ),
    ),
    "arbitration: the higher priority is sent, the other suppressed": Scenario(
        (LOW, HIGH),
        (everything(), page("k1")),
        (
            ("high", "k1", "sent", "eligible", "email"),
            ("low", "k1", "suppressed", "lower_priority", None),
        ),
    ),
    "arbitration: equal priorities go by name": Scenario(
        (campaign("bravo", {"event": "page_view"}), campaign("alpha", {"event": "page_view"})),
        (everything(), page("k1")),
        (
            ("alpha", "k1", "sent", "eligible", "email"),
            ("bravo", "k1", "suppressed", "lower_priority", None),
        ),
    ),
    "arbitration: only campaigns whose audience holds compete": Scenario(
        (LOW, {**HIGH, "audience": "orders >= 1"}),
        (everything(), page("k1")),
        (("low", "k1", "sent", "eligible", "email"),),
    ),
    "caps: frequency_cap:day over a rolling 24 h": Scenario(
        (CHATTY,),
        (everything(), page("k1"), page("k2", HOUR), page("k3", 2 * HOUR), page("k4", DAY)),
        (
            ("chatty", "k1", "sent", "eligible", "email"),
            ("chatty", "k2", "sent", "eligible", "email"),
            ("chatty", "k3", "suppressed", "frequency_cap:day", None),
            ("chatty", "k4", "sent", "eligible", "email"),  # k1 left the window
        ),
        {"caps": {"day": 2, "week": 5}},
    ),
    "caps: frequency_cap:week over a rolling 7 days": Scenario(
        (CHATTY,),
        (everything(), page("k1"), page("k2", DAY), page("k3", 2 * DAY), page("k4", 7 * DAY)),
        (
            ("chatty", "k1", "sent", "eligible", "email"),
            ("chatty", "k2", "sent", "eligible", "email"),
            ("chatty", "k3", "suppressed", "frequency_cap:week", None),
            ("chatty", "k4", "sent", "eligible", "email"),
        ),
        {"caps": {"day": None, "week": 2}},
    ),
    "caps: a channel cap blocks its only channel": Scenario(
        (TEXTY,),
        (everything(), page("k1"), page("k2", HOUR)),
        (
            ("texty", "k1", "sent", "eligible", "sms"),
            ("texty", "k2", "suppressed", "frequency_cap:sms:day", None),
        ),
        {"channel_caps": {"sms": {"day": 1, "week": 2}}},
    ),
    "caps: a channel cap moves the message to the next channel": Scenario(
        (SMS_FIRST,),
        (everything(), page("k1"), page("k2", HOUR), page("k3", 2 * DAY), page("k4", 3 * DAY)),
        (
            ("sms_first", "k1", "sent", "eligible", "sms"),
            ("sms_first", "k2", "sent", "eligible", "email"),
            ("sms_first", "k3", "sent", "eligible", "sms"),
            ("sms_first", "k4", "sent", "eligible", "email"),  # sms week cap: 2
        ),
        {"channel_caps": {"sms": {"day": 1, "week": 2}}},
    ),
    "caps: held messages are counted, and capped, when they leave": Scenario(
        (CHATTY,),
        (
            everything(),
            page("k1", AT_NIGHT),
            page("k2", AT_NIGHT + HOUR),  # nothing has left yet: deferred too
            tick("t1", MORNING),
            page("k3", MORNING + HOUR),
        ),
        (
            ("chatty", "k1", "deferred", "quiet_hours", "email"),
            ("chatty", "k2", "deferred", "quiet_hours", "email"),
            ("chatty", "k1", "sent", "eligible", "email"),
            ("chatty", "k2", "suppressed", "frequency_cap:day", "email"),
            ("chatty", "k3", "suppressed", "frequency_cap:day", None),
        ),
        {"caps": {"day": 1, "week": 5}},
    ),
    "cooldown: blocked until it has passed": Scenario(
        (campaign("cool", {"event": "page_view"}, cooldown="1d"),),
        (everything(), page("k1"), page("k2", DAY - 1), page("k3", DAY)),
        (
            ("cool", "k1", "sent", "eligible", "email"),
            ("cool", "k2", "suppressed", "cooldown", None),
            ("cool", "k3", "sent", "eligible", "email"),
        ),
    ),
    "cooldown: an event older than the last firing is blocked, even with no cooldown": Scenario(
        (CHATTY,),
        (everything(), page("k1", 2 * HOUR), page("k2", HOUR)),
        (
            ("chatty", "k1", "sent", "eligible", "email"),
            ("chatty", "k2", "suppressed", "cooldown", None),
        ),
    ),
    "once: never again": Scenario(
        (campaign("one", {"event": "page_view"}, once=True),),
        (everything(), page("k1"), page("k2", 30 * DAY), page("k3", 400 * DAY)),
        (
            ("one", "k1", "sent", "eligible", "email"),
            ("one", "k2", "suppressed", "cooldown", None),
            ("one", "k3", "suppressed", "cooldown", None),
        ),
    ),
    "control group: holdout, no offer, no message": Scenario(
        (CHATTY,),
        (everything(), page("k1")),
        (("chatty", "k1", "holdout", "control_group", None),),
        {"control_group_percent": 100},
    ),
    "campaign holdout: holdout, no offer, no message": Scenario(
        ({**CHATTY, "holdout_percent": 100},),
        (everything(), page("k1")),
        (("chatty", "k1", "holdout", "holdout", None),),
    ),
    "a held-out customer counts as fired for the cooldown": Scenario(
        ({**CHATTY, "holdout_percent": 100, "cooldown": "1d"},),
        (everything(), page("k1"), page("k2", HOUR)),
        (
            ("chatty", "k1", "holdout", "holdout", None),
            ("chatty", "k2", "suppressed", "cooldown", None),
        ),
    ),
    "fallback: push without consent goes by email": Scenario(
        (PUSH_FIRST,),
        (everything(consent=(("email", True), ("push", False))), page("k1")),
        (("push_first", "k1", "sent", "eligible", "email"),),
    ),
    "fallback: push without a token goes by email": Scenario(
        (PUSH_FIRST,),
        (everything(push_token=None), page("k1")),
        (("push_first", "k1", "sent", "eligible", "email"),),
    ),
    "fallback: push when it can": Scenario(
        (PUSH_FIRST,),
        (everything(), page("k1")),
        (("push_first", "k1", "sent", "eligible", "push"),),
    ),
    "no channel left: the first channel's reason": Scenario(
        (PUSH_FIRST,),
        (EMAIL_ONLY, Feedback("f1", T0 - 1, CID, "unsubscribed"), page("k1")),
        (("push_first", "k1", "suppressed", "no_consent:push", None),),
    ),
    "no_address:sms": Scenario(
        (TEXTY,),
        (everything(phone=None), page("k1")),
        (("texty", "k1", "suppressed", "no_address:sms", None),),
    ),
    "no channels: a storefront offer": Scenario(
        (campaign("shelf", {"event": "page_view"}, channels=()),),
        (page("k1"),),
        (("shelf", "k1", "sent", "storefront", None),),
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_scenario(scenario: Scenario) -> None:
    campaign_book = book(*scenario.campaigns, **scenario.settings)
    state, results = run(campaign_book, scenario.events)
    assert summary(results) == list(scenario.expected)
    for result in results:
        check_result(result, campaign_book, state.profile.contact.get("timezone"))
    # Everything decided is in the outbox, in the order it was decided.
    assert [o for o in state.outbox if isinstance(o, CampaignResult)] == results


# --- caps and messages already sent at a later event time ---------------------------------------

#: Decisions made late in event time: the timer service stamps a tick with its due time, so a
#: tick usually arrives after the events that moved the engine clock past it.
LATE = {
    "a tick that arrives after a later-stamped message": (
        (CHATTY,),
        (everything(), page("k1", AT_NIGHT), page("k3", MORNING + HOUR), tick("t1", MORNING)),
        [
            ("chatty", "k1", "deferred", "quiet_hours", "email"),
            ("chatty", "k3", "sent", "eligible", "email"),
            ("chatty", "k1", "suppressed", "frequency_cap:day", "email"),
        ],
    ),
    "an event that arrives after a later-stamped message": (
        (CHATTY, campaign("viewed", {"event": "product_view"})),
        (everything(), view("k1", 2 * HOUR), page("k2", HOUR)),
        [
            ("viewed", "k1", "sent", "eligible", "email"),
            ("chatty", "k2", "suppressed", "frequency_cap:day", None),
        ],
    ),
}


@pytest.mark.parametrize(("campaigns", "events", "expected"), LATE.values(), ids=LATE.keys())
def test_caps_count_messages_already_sent_at_a_later_time(
    campaigns: tuple[Mapping[str, Any], ...], events: tuple[AnyEvent, ...], expected: list[Expected]
) -> None:
    campaign_book = book(*campaigns, caps={"day": 1, "week": 5})
    _, results = run(campaign_book, events)
    assert summary(results) == expected


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "models.campaigns._send_held checks consent, address and caps again when a held "
        "message's time comes, but not quiet hours: send_at was computed in the zone the "
        "customer had when the message was deferred, so after a time zone change the message "
        "leaves inside quiet hours of the customer's zone (08:00 New York = 22:00 Tokyo)"
    ),
)
def test_a_held_message_respects_the_quiet_hours_of_a_new_time_zone() -> None:
    campaign_book = book(campaign("night", {"event": "page_view"}))
    morning_ny = ms("2026-11-22T13:00:00Z")  # 08:00 in New York, 22:00 in Tokyo
    events = [
        everything(timezone="America/New_York"),
        page("k1", 0),  # 05:00 in New York: deferred to 08:00 there
        CustomerUpdate("u-tz", T0 + HOUR, CID, timezone="Asia/Tokyo"),
        tick("t1", morning_ny - T0),
        tick("t2", ms("2026-11-22T23:00:00Z") - T0),  # 08:00 in Tokyo
    ]
    state, results = run(campaign_book, events)
    assert state.profile.contact["timezone"] == "Asia/Tokyo"
    sent = [r.message for r in results if r.message is not None]
    assert sent, summary(results)
    for message in sent:
        assert not in_quiet_hours(
            message.send_at, timezone="Asia/Tokyo", config=campaign_book.ledger
        ), message


_claims = itertools.count()


def timer_tick(state: CustomerState, campaign_book: CampaignBook) -> LifecycleTick:
    """The tick the timer service sends for the customer's next due time (agents.timers):
    its id names the customer, the due time and the claim, so every claim is a new tick."""
    due = indexes(state, config=config_of(campaign_book)).due
    assert due is not None
    return LifecycleTick(f"tick:{CID}:{due}:{next(_claims)}", due, CID)


def test_a_message_held_until_a_time_already_ticked_is_still_released() -> None:
    campaign_book = book(
        campaign("night", {"event": "page_view"}), campaign("viewed", {"event": "product_view"})
    )
    state, _ = run(campaign_book, [everything(), page("k1", AT_NIGHT)])
    first = timer_tick(state, campaign_book)
    assert first.ts == T0 + MORNING
    state, released = run(campaign_book, [first], state)
    assert summary(released) == [("night", "k1", "sent", "eligible", "email")]
    # An event stamped before the morning arrives after it: deferred to the same 08:00.
    state, deferred = run(campaign_book, [view("k2", AT_NIGHT + HOUR)], state)
    assert summary(deferred) == [("viewed", "k2", "deferred", "quiet_hours", "email")]
    second = timer_tick(state, campaign_book)
    state, results = run(campaign_book, [second], state)
    assert summary(results) == [("viewed", "k2", "sent", "eligible", "email")]
    assert state.profile.pending == ()


RESTOCK = campaign("restock", {"replenishment": "category", "interval": "30d"}, cooldown="7d")


def bought(eid: str, at: int, *categories: str) -> Order:
    items = tuple(OrderItem(f"p-{c}", c, 1, 5.0) for c in categories)
    return Order(eid, T0 + at, CID, f"o-{eid}", total=10.0, items=items)


def with_timer(
    campaign_book: CampaignBook, events: Sequence[AnyEvent]
) -> tuple[CustomerState, list[CampaignResult]]:
    """Run the events, then fire every due item at its due time, as the timers do."""
    state, results = run(campaign_book, events)
    config = config_of(campaign_book)
    for _ in range(20):
        due = indexes(state, config=config).due
        if due is None or due > T0 + 100 * DAY:
            break
        state, more = run(campaign_book, [LifecycleTick(f"timer:{due}", due, CID)], state)
        results += more
    return state, results


def test_replenishment_parks_one_trigger_per_category_of_the_order() -> None:
    state, _ = run(book(RESTOCK), [everything(), bought("a", 0, "shoes", "bags")])
    # The trigger id names the category too: one decision (and offer, message) per category.
    assert sorted((p.key, p.due, p.trigger_event_id) for p in state.profile.pending) == [
        ("bags", T0 + 30 * DAY, "a:bags"),
        ("shoes", T0 + 30 * DAY, "a:shoes"),
    ]


@pytest.mark.parametrize(
    "orders",
    [
        [bought("a", 0, "shoes", "bags")],  # both due at 30 days
        [bought("a", 0, "shoes"), bought("b", 5 * DAY, "shoes", "bags")],  # 26.7 and 35 days
    ],
    ids=["due-together", "due-apart"],
)
def test_replenishment_ids_are_unique_per_category(orders: list[Order]) -> None:
    _, results = with_timer(book(RESTOCK), [everything(), *orders])
    restocks = [r for r in results if r.decision.campaign == "restock"]
    assert len(restocks) >= 2
    decision_ids = [r.decision.decision_id for r in restocks]
    assert len(decision_ids) == len(set(decision_ids)), summary(restocks)
    messages = [r.message.message_id for r in restocks if r.message is not None]
    offers = [r.offer.offer_id for r in restocks if r.offer is not None]
    assert len(messages) == len(set(messages)) and len(offers) == len(set(offers))


# --- details: delays, quiet hours, sent log -----------------------------------------------------


def test_a_delayed_trigger_is_parked_in_the_profile_and_is_the_next_timer() -> None:
    campaign_book = book(NUDGE)
    state, results = run(campaign_book, [everything(), add("k1", HOUR)])
    assert results == []
    (pending,) = state.profile.pending
    assert (pending.campaign, pending.due, pending.kind, pending.trigger_event_id) == (
        "nudge",
        T0 + 3 * HOUR,
        "trigger",
        "k1",
    )
    assert dict(pending.context)["product_id"] == "p1"
    assert indexes(state, config=config_of(campaign_book)).due == T0 + 3 * HOUR
    fired, results = run(campaign_book, [tick("t1", 3 * HOUR)], state)
    assert fired.profile.pending == ()
    (result,) = results
    assert result.offer is not None and result.offer.created_at == T0 + 3 * HOUR
    assert result.message is not None and result.message.send_at == T0 + 3 * HOUR
    assert fired.profile.sent_log == (Sent(T0 + 3 * HOUR, "email", "nudge"),)


@pytest.mark.parametrize(
    ("zone", "night", "morning"),
    [
        # 23:30 local -> 08:00 local the next day
        ("America/New_York", "2026-11-23T04:30:00Z", "2026-11-23T13:00:00Z"),
        ("Asia/Tokyo", "2026-11-22T14:30:00Z", "2026-11-22T23:00:00Z"),
        (None, "2026-11-22T22:30:00Z", "2026-11-23T07:00:00Z"),  # Europe/Berlin, the default
    ],
)
def test_a_deferred_message_is_sent_when_quiet_hours_end_in_the_customers_zone(
    zone: str | None, night: str, morning: str
) -> None:
    campaign_book = book(campaign("night", {"event": "page_view"}))
    late = ms(night) - T0
    state, (deferred,) = run(campaign_book, [everything(timezone=zone), page("k1", late)])
    assert (deferred.decision.outcome, deferred.offer, deferred.message) == ("deferred", None, None)
    assert deferred.decision.offer_id is not None
    assert state.profile.sent_log == ()
    (held,) = state.profile.pending
    assert (held.kind, held.due) == ("send", ms(morning))
    assert state.profile.fired == {"night": ms(night)}  # a deferred campaign has fired
    state, (sent,) = run(campaign_book, [tick("t1", ms(morning) - T0)], state)
    assert sent.decision.outcome == "sent"
    assert sent.decision.offer_id == deferred.decision.offer_id
    assert sent.decision.decision_id != deferred.decision.decision_id
    assert sent.message is not None and sent.message.send_at == ms(morning)
    assert sent.offer is not None and sent.offer.created_at == ms(night)
    assert not in_quiet_hours(ms(morning), timezone=zone, config=campaign_book.ledger)
    assert in_quiet_hours(ms(morning) - 1, timezone=zone, config=campaign_book.ledger)
    assert state.profile.pending == ()
    assert state.profile.offers == (sent.offer,)


def test_a_retracted_message_never_leaves() -> None:
    campaign_book = book(campaign("night", {"event": "page_view", "cancel_on": ["order_placed"]}))
    events = [everything(), page("k1", AT_NIGHT), order("o1", AT_NIGHT + HOUR)]
    state, (deferred, retracted) = run(campaign_book, events)
    assert retracted.decision.decision_id not in (None, deferred.decision.decision_id)
    assert retracted.decision.ts == T0 + AT_NIGHT + HOUR
    assert state.profile.pending == () and state.profile.offers == ()
    state, results = run(campaign_book, [tick("t1", MORNING)], state)
    assert results == [] and state.profile.sent_log == ()


# --- offers: coupons by tier, placeholders --------------------------------------------------------

LADDER_OFFER = {
    "kind": "coupon",
    "title": "{tier}: {coupon.value} {coupon.currency} off",
    "reason": "spent {revenue} in {orders} orders; code {coupon.code}{nothing.here}",
    "coupon": {"by_tier": {"bronze": 5, "silver": 15, "gold": 25}, "min_spend": 40},
    "expires": "3d",
}


@pytest.mark.parametrize(
    ("total", "tier", "value"),
    [
        (10.0, "bronze", 5.0),
        (300.0, "silver", 15.0),
        (1500.0, "gold", 25.0),
        (9000.0, "platinum", 5.0),
    ],
)
def test_a_coupon_by_tier_and_its_rendered_title(total: float, tier: str, value: float) -> None:
    campaign_book = book(campaign("ladder", {"event": "order_placed"}, offer=LADDER_OFFER))
    _, (result,) = run(campaign_book, [everything(), order("o1", total=total)])
    offer = result.offer
    assert offer is not None and result.message is not None
    code = f"LADDER-{offer.offer_id[:8].upper()}"
    # platinum is not in by_tier and there is no `value`: the smallest tier value
    assert offer.coupon == Coupon(code, value, "EUR", 40.0)
    assert offer.title == f"{tier}: {value:g} EUR off"
    assert offer.reason == f"spent {total:g} in 1 orders; code {code}"
    assert (offer.kind, offer.created_at, offer.expires_at) == ("coupon", T0, T0 + 3 * DAY)
    assert dict(result.message.vars) == {
        "title": offer.title,
        "reason": offer.reason,
        "coupon_code": code,
        "coupon_value": f"{value:g}",
    }


def test_a_coupon_value_and_the_books_currency() -> None:
    spec = campaign(
        "flat",
        {"event": "order_placed"},
        offer={
            "kind": "coupon",
            "title": "{coupon.value} {coupon.currency}",
            "coupon": {"value": 7.5},
        },
    )
    campaign_book = build_book({"campaigns": [spec]}, source="t", currency="NOK")
    config = StepConfig(engine=EngineConfig(book=replace(campaign_book, ledger=book(spec).ledger)))
    result = step(new_state(CID), everything(), config=config).state
    result = step(result, order("o1"), config=config)
    (decided,) = [o for o in result.outputs if isinstance(o, CampaignResult)]
    assert decided.offer is not None and decided.offer.title == "7.5 NOK"
    assert decided.offer.coupon is not None and decided.offer.coupon.currency == "NOK"


def test_trigger_placeholders_and_items_from_the_trigger_product() -> None:
    spec = campaign(
        "browse",
        {"event": "product_view"},
        audience="trigger.views >= 3",
        offer={
            "kind": "recommendation",
            "title": "Still thinking about {trigger.product_id}?",
            "reason": "viewed {trigger.product_id} {trigger.views} times ({trigger.category})",
            "items": "trigger_product",
        },
    )
    campaign_book = book(spec)
    events = [everything(), view("k1"), view("k2", 1), view("k3", 2), view("k4", 3, product="p2")]
    _, results = run(campaign_book, events)
    assert summary(results) == [("browse", "k3", "sent", "eligible", "email")]
    offer = results[0].offer
    assert offer is not None
    assert offer.title == "Still thinking about p1?"
    assert offer.reason == "viewed p1 3 times (shoes)"
    assert offer.items == ("p1",)


def test_render_leaves_unknown_placeholders_empty() -> None:
    values = {"trigger": {"price": 9.5, "n": 3, "none": None}, "tier": "gold"}
    assert render("{tier}/{trigger.price}/{trigger.n}/{trigger.none}/{x.y}/{tier.z}", values) == (
        "gold/9.5/3///"
    )


def test_cart_items_offer_lists_the_event_time_cart() -> None:
    spec = campaign(
        "cart",
        {"event": "add_to_cart", "delay": "2h"},
        audience="cart_items > 0",
        offer={"title": "Your cart", "items": "cart"},
    )
    campaign_book = book(spec)
    events = [everything(), add("k1", 0, "p1"), add("k2", 1, "p2"), tick("t1", 3 * HOUR)]
    _, (result,) = run(campaign_book, events)
    assert result.offer is not None and set(result.offer.items) == {"p1", "p2"}
    # An order that bought everything (at a later event time) leaves nothing to remind of.
    bought = Order("o1", T0 + 2, CID, "o1", total=9.0, items=(OrderItem("p1"), OrderItem("p2")))
    _, results = run(campaign_book, [*events[:3], bought, events[3]])
    assert results == []


# --- deterministic ids ---------------------------------------------------------------------------


def ids_of(results: Sequence[CampaignResult]) -> list[str]:
    found = []
    for r in results:
        found.append(r.decision.decision_id)
        if r.offer is not None:
            found.append(r.offer.offer_id)
        if r.message is not None:
            found.append(r.message.message_id)
    return found


ID_BOOK = book(
    campaign("night", {"event": "page_view"}),
    campaign("nudge", {"event": "add_to_cart", "delay": "1h"}),
)
ID_EVENTS = [everything(), page("k1", AT_NIGHT), add("k2", AT_NIGHT), tick("t1", MORNING)]


def test_the_same_inputs_give_the_same_ids() -> None:
    one_state, one = run(ID_BOOK, ID_EVENTS)
    two_state, two = run(ID_BOOK, ID_EVENTS)
    assert one == two and one_state == two_state
    assert len(ids_of(one)) == len(set(ids_of(one))) == 7  # 3 decisions, 2 offers, 2 messages
    envelopes = [Envelope(e, SOURCE, i) for i, e in enumerate(ID_EVENTS)]
    folded = fold(new_state(CID), envelopes, config=config_of(ID_BOOK)).state
    assert folded == one_state


def test_a_different_trigger_event_or_customer_gives_different_ids() -> None:
    _, one = run(ID_BOOK, ID_EVENTS)
    renamed = [replace(e, event_id=f"{e.event_id}-b") for e in ID_EVENTS]
    _, other_trigger = run(ID_BOOK, renamed)
    assert summary(other_trigger) == [(c, f"{t}-b", o, r, ch) for c, t, o, r, ch in summary(one)]
    other_customer = [replace(e, customer_id="c2") for e in ID_EVENTS]
    _, other = run(ID_BOOK, other_customer, new_state("c2"))
    assert {r.decision.customer_id for r in other} == {"c2"}
    all_ids = ids_of(one) + ids_of(other_trigger) + ids_of(other)
    assert len(all_ids) == len(set(all_ids)) == 21


def test_ids_are_derived_from_campaign_customer_and_trigger() -> None:
    _, (result,) = run(book(CHATTY), [everything(), page("k1")])
    offer_id = derive_id("offer", "chatty", CID, "k1")
    assert result.offer is not None and result.offer.offer_id == offer_id
    assert result.decision.decision_id == derive_id("decision", "chatty", CID, "k1")
    assert result.message is not None
    assert result.message.message_id == derive_id("message", offer_id, "email")


def test_the_engine_is_pure_and_does_not_change_its_input() -> None:
    campaign_book = book(CHATTY, HIGH)
    config = EngineConfig(book=campaign_book)
    before = apply_event(Profile(CID), everything(), config=ProfileConfig())
    event = page("k1")
    after = apply_event(before, event, config=ProfileConfig())
    moment = moment_of(before, after, event, ())
    one = run_campaigns(after, moment, config=config, facts=CatalogFacts())
    two = run_campaigns(after, moment, config=config, facts=CatalogFacts())
    assert one == two
    assert (after.fired, after.sent_log, after.offers) == ({}, (), ())
    profile, (sent, lost) = one
    assert (sent.decision.campaign, lost.decision.reason) == ("high", "lower_priority")
    assert profile.fired == {"high": T0}  # the loser did not fire
    assert profile.sent_log == (Sent(T0, "email", "high"),)


def test_a_redelivered_trigger_decides_nothing_again() -> None:
    campaign_book = book(CHATTY)
    state, _ = run(campaign_book, [everything(), page("k1")])
    again = step(state, page("k1"), config=config_of(campaign_book), source=SOURCE, offset=1)
    assert again.duplicate and again.outputs == () and again.state == state


def test_the_empty_default_book_decides_nothing() -> None:
    state = step(new_state(CID), everything(), config=StepConfig()).state
    state = step(state, order("o1"), config=StepConfig()).state
    assert not any(isinstance(o, CampaignResult) for o in state.outbox)
    assert StepConfig().engine.book.campaigns == ()


def test_the_control_group_is_the_ledgers_stable_draw() -> None:
    campaign_book = book(CHATTY, control_group_percent=50)
    for cid in (f"cust-{n}" for n in range(20)):
        events = [replace(e, customer_id=cid) for e in (everything(), page("k1"))]
        _, (result,) = run(campaign_book, events, new_state(cid))
        held_out = bucket(cid, "rapport:control") < 50
        assert (result.decision.outcome == "holdout") == held_out
        assert (result.message is None) == held_out


def test_a_delayed_trigger_decided_after_a_later_opt_in_does_not_contact() -> None:
    """Consent counts as of the send time: an opt-in stamped after it, known only because
    it was processed first, does not make an earlier send consented (soak finding)."""
    campaign_book = book(NUDGE)
    state, _ = run(campaign_book, [everything(consent=(("email", False),)), add("k1", HOUR)])
    opted_in_later = CustomerUpdate("u1", T0 + 10 * HOUR, CID, consent=(("email", True),))
    state, _ = run(campaign_book, [opted_in_later], state)
    _, (result,) = run(campaign_book, [tick("t1", 3 * HOUR)], state)
    assert (result.decision.outcome, result.decision.reason) == (
        "suppressed",
        "no_consent:email",
    )
