"""The spine's campaigns (welcome, first_order) through the step function."""

from __future__ import annotations

import itertools
from dataclasses import replace

from models.campaigns import DAY_MS, CampaignConfig, decide_campaigns
from models.customer import CustomerState, Envelope, StepConfig, fold, new_state, step
from models.events import Click, CustomerEvent, CustomerUpdate, Feedback, Order, OrderItem
from models.outputs import CampaignResult, Coupon, Decision, Message, Offer
from models.profile import Profile, apply_event

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
CID = "c1"
EMAIL = "ann@example.com"
CONFIG = StepConfig()
_ids = itertools.count()


def opt_in(
    at: int = 0, email: str | None = EMAIL, granted: bool = True, cid: str = CID, eid: str = ""
) -> CustomerUpdate:
    return CustomerUpdate(
        eid or f"auto-u{next(_ids)}", T0 + at, cid, email=email, consent=(("email", granted),)
    )


def placed(oid: str = "o1", at: int = 0, cid: str = CID, eid: str = "") -> Order:
    return Order(
        eid or f"auto-o{next(_ids)}", T0 + at, cid, oid, total=80.0, items=(OrderItem("p1"),)
    )


def run(events: list[CustomerEvent], cid: str = CID, config: StepConfig = CONFIG) -> CustomerState:
    envelopes = [Envelope(e, "t/0", i) for i, e in enumerate(events)]
    return fold(new_state(cid), envelopes, config=config).state


def only(state: CustomerState) -> CampaignResult:
    assert len(state.outbox) == 1, state.outbox
    return state.outbox[0]


# --- welcome -------------------------------------------------------------------------------


def test_welcome_fires_on_first_email_opt_in_with_an_address() -> None:
    event = opt_in(at=5, eid="u-welcome")
    result = step(new_state(CID), event, source="t/0", offset=0, config=CONFIG)
    assert not result.duplicate
    assert result.results == result.state.outbox
    (welcome,) = result.results
    offer_id = welcome.decision.offer_id
    assert offer_id is not None and len(offer_id) == 24
    code = f"WELCOME-{offer_id[:8].upper()}"
    expires = T0 + 5 + 14 * DAY_MS
    title = "Welcome! 10 EUR off your next order"
    assert welcome.offer == Offer(
        offer_id=offer_id,
        customer_id=CID,
        campaign="welcome",
        kind="coupon",
        title=title,
        reason="opted in to email for the first time",
        created_at=T0 + 5,
        expires_at=expires,
        trigger_event_id="u-welcome",
        coupon=Coupon(code=code, value=10.0, currency="EUR", min_spend=30.0),
    )
    assert welcome.decision == Decision(
        decision_id=welcome.decision.decision_id,
        customer_id=CID,
        campaign="welcome",
        trigger_event_id="u-welcome",
        outcome="sent",
        reason="eligible",
        ts=T0 + 5,
        channel="email",
        offer_id=offer_id,
    )
    assert welcome.message == Message(
        message_id=welcome.message.message_id if welcome.message else "",
        offer_id=offer_id,
        customer_id=CID,
        channel="email",
        to=EMAIL,
        campaign="welcome",
        template="welcome",
        vars=(("title", title), ("coupon_code", code)),
        send_at=T0 + 5,
        expires_at=expires,
    )
    assert len({offer_id, welcome.decision.decision_id, welcome.message.message_id}) == 3
    assert result.state.profile.fired == {"welcome": T0 + 5}


def test_welcome_uses_an_address_given_earlier() -> None:
    state = run([CustomerUpdate("u0", T0, CID, email=EMAIL), opt_in(at=1, email=None)])
    welcome = only(state)
    assert welcome.decision.outcome == "sent"
    assert welcome.message is not None and welcome.message.to == EMAIL


def test_welcome_fires_only_once_even_after_opt_out_and_opt_in_again() -> None:
    state = run(
        [
            opt_in(at=1),
            opt_in(at=2, granted=False),
            opt_in(at=3),
            Feedback("f1", T0 + 4, CID, action="unsubscribed"),
            opt_in(at=5),
        ]
    )
    assert [r.decision.campaign for r in state.outbox] == ["welcome"]
    assert state.profile.fired == {"welcome": T0 + 1}


def test_welcome_without_an_address_is_suppressed_with_no_message() -> None:
    state = run([opt_in(at=1, email=None, eid="u-noaddr")])
    welcome = only(state)
    assert welcome.message is None
    assert welcome.offer is not None and welcome.offer.campaign == "welcome"
    assert (welcome.decision.campaign, welcome.decision.outcome, welcome.decision.reason) == (
        "welcome",
        "suppressed",
        "no_address:email",
    )
    assert welcome.decision.trigger_event_id == "u-noaddr"


def test_welcome_does_not_fire_again_when_the_address_arrives_later() -> None:
    state = run([opt_in(at=1, email=None), CustomerUpdate("u-addr", T0 + 2, CID, email=EMAIL)])
    assert [(r.decision.outcome, r.decision.reason) for r in state.outbox] == [
        ("suppressed", "no_address:email")
    ]


def test_no_welcome_for_other_channels_or_an_explicit_no() -> None:
    state = run(
        [
            CustomerUpdate("u1", T0, CID, email=EMAIL, consent=(("sms", True), ("push", True))),
            opt_in(at=1, granted=False),
            Click("k1", T0 + 2, CID, "page_view"),
        ]
    )
    assert state.outbox == ()
    assert state.profile.fired == {}


def test_no_welcome_when_an_older_opt_in_arrives_after_a_newer_opt_out() -> None:
    state = run([opt_in(at=5, granted=False), opt_in(at=1)])
    assert state.outbox == ()


# --- first_order ---------------------------------------------------------------------------


def test_first_order_fires_on_the_first_placed_order() -> None:
    state = run([opt_in(at=0), placed("o1", at=10, eid="ord-1")])
    welcome, first = state.outbox
    assert welcome.decision.campaign == "welcome"
    assert first.offer is not None and first.message is not None
    offer_id = first.offer.offer_id
    assert first.offer == Offer(
        offer_id=offer_id,
        customer_id=CID,
        campaign="first_order",
        kind="coupon",
        title="Thank you! 15 EUR off order two",
        reason="placed a first order (o1)",
        created_at=T0 + 10,
        expires_at=T0 + 10 + 14 * DAY_MS,
        trigger_event_id="ord-1",
        coupon=Coupon(f"FIRST_ORDER-{offer_id[:8].upper()}", 15.0, "EUR", 60.0),
    )
    assert (first.decision.outcome, first.decision.reason, first.decision.offer_id) == (
        "sent",
        "eligible",
        offer_id,
    )
    assert (first.message.to, first.message.template, first.message.offer_id) == (
        EMAIL,
        "first_order_thanks",
        offer_id,
    )
    assert state.profile.fired == {"welcome": T0, "first_order": T0 + 10}


def test_first_order_fires_once_however_many_orders_follow() -> None:
    state = run([placed("o1", at=1), placed("o2", at=2), placed("o3", at=3)])
    assert [r.decision.campaign for r in state.outbox] == ["first_order"]
    assert state.outbox[0].offer is not None
    assert state.outbox[0].offer.reason == "placed a first order (o1)"


def test_first_order_not_fired_by_an_order_cancelled_before_it_arrived() -> None:
    cancelled = Order("x1", T0 + 2, CID, "o1", status="cancelled")
    state = run([cancelled, placed("o1", at=1)])
    assert state.outbox == ()
    # ... the next live order is the first one
    state = run([cancelled, placed("o1", at=1), placed("o2", at=3, eid="ord-2")])
    assert [(r.decision.campaign, r.decision.trigger_event_id) for r in state.outbox] == [
        ("first_order", "ord-2")
    ]


def test_first_order_without_email_consent_is_suppressed_with_an_offer_but_no_message() -> None:
    state = run([CustomerUpdate("u1", T0, CID, email=EMAIL), placed("o1", at=1, eid="ord-1")])
    first = only(state)
    assert first.message is None
    assert first.offer is not None and first.offer.trigger_event_id == "ord-1"
    assert first.decision == Decision(
        decision_id=first.decision.decision_id,
        customer_id=CID,
        campaign="first_order",
        trigger_event_id="ord-1",
        outcome="suppressed",
        reason="no_consent:email",
        ts=T0 + 1,
        channel="email",
        offer_id=first.offer.offer_id,
    )


def test_first_order_after_an_unsubscribe_is_suppressed() -> None:
    state = run(
        [
            opt_in(at=0),
            Feedback("f1", T0 + 1, CID, action="unsubscribed", channel="email"),
            placed(at=2),
        ]
    )
    assert [(r.decision.campaign, r.decision.outcome, r.decision.reason) for r in state.outbox] == [
        ("welcome", "sent", "eligible"),
        ("first_order", "suppressed", "no_consent:email"),
    ]
    assert state.outbox[1].message is None


# --- ids and expiry ------------------------------------------------------------------------


def _ids_of(result: CampaignResult) -> tuple[str | None, str, str | None]:
    return (
        result.offer.offer_id if result.offer else None,
        result.decision.decision_id,
        result.message.message_id if result.message else None,
    )


def test_ids_are_deterministic_for_the_same_inputs() -> None:
    history = [opt_in(at=0, eid="u1"), placed("o1", at=1, eid="ord-1")]
    first = run(history)
    again = run(history)
    assert first.outbox == again.outbox
    assert [_ids_of(r) for r in first.outbox] == [_ids_of(r) for r in again.outbox]


def test_ids_differ_across_customers_and_triggers() -> None:
    a = run([opt_in(at=0, eid="u1"), placed("o1", at=1, eid="ord-1")], cid=CID)
    b = run([opt_in(at=0, eid="u1", cid="c2"), placed("o1", at=1, eid="ord-1", cid="c2")], cid="c2")
    c = run([opt_in(at=0, eid="u2"), placed("o1", at=1, eid="ord-2")], cid=CID)
    ids = [i for s in (a, b, c) for r in s.outbox for i in _ids_of(r)]
    assert len(ids) == 18
    assert len(set(ids)) == 18


def test_decide_campaigns_directly_is_pure_and_repeatable() -> None:
    before = Profile(customer_id=CID)
    event = opt_in(at=3, eid="u9")
    after = apply_event(before, event)
    one = decide_campaigns(before, after, event, config=CampaignConfig())
    two = decide_campaigns(before, after, event, config=CampaignConfig())
    assert one == two
    assert after.fired == {}  # the input profile is not changed
    profile, (welcome,) = one
    assert profile == replace(after, fired={"welcome": T0 + 3})
    assert welcome.decision.outcome == "sent"


def test_offer_expires_at_trigger_time_plus_offer_ttl_days() -> None:
    config = StepConfig(campaigns=CampaignConfig(offer_ttl_days=3, currency="NOK"))
    state = run([opt_in(at=7), placed(at=11)], config=config)
    welcome, first = state.outbox
    assert welcome.offer is not None and first.offer is not None
    assert welcome.message is not None and first.message is not None
    assert (welcome.offer.created_at, welcome.offer.expires_at) == (T0 + 7, T0 + 7 + 3 * DAY_MS)
    assert (first.offer.created_at, first.offer.expires_at) == (T0 + 11, T0 + 11 + 3 * DAY_MS)
    assert (welcome.message.expires_at, first.message.expires_at) == (
        T0 + 7 + 3 * DAY_MS,
        T0 + 11 + 3 * DAY_MS,
    )
    assert welcome.offer.title == "Welcome! 10 NOK off your next order"
    assert first.offer.coupon is not None and first.offer.coupon.currency == "NOK"


def test_a_redelivered_trigger_fires_nothing_new() -> None:
    event = opt_in(at=0, eid="u1")
    state = run([event])
    again = step(state, event, source="t/0", offset=0, config=CONFIG)
    assert again.duplicate and again.results == () and again.state == state
    retry = step(state, event, source="t/0", offset=5, config=CONFIG)
    assert retry.duplicate and retry.results == ()
    assert (retry.state.profile, retry.state.outbox) == (state.profile, state.outbox)
    assert retry.state.applied.offsets == {"t/0": 5}  # the retry's own offset is remembered
