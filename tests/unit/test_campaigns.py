"""The library's welcome and a first-order thank-you, through the step function.

Campaigns are declarative now: the built-in library (``stream/data/campaigns.yaml``, its
control group set to 0 % so that every customer is treated) plus ``first_order``, written
in the same file format and appended to it.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from models.campaign_config import CampaignBook
from models.campaigns import CatalogFacts, EngineConfig, moment_of, run_campaigns
from models.customer import CustomerState, Envelope, StepConfig, fold, new_state, step
from models.events import Click, CustomerEvent, CustomerUpdate, Feedback, Order, OrderItem
from models.ledger import Sent
from models.lifecycle import DAY_MS
from models.outputs import CampaignResult, Coupon, Decision, Message, Offer, SegmentChange
from models.profile import Profile, ProfileConfig, apply_event
from stream.campaign_file import builtin_text, parse_book

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z, 11:00 in Berlin (outside quiet hours)
CID = "c1"
EMAIL = "ann@example.com"

FIRST_ORDER = """
  - name: first_order
    description: Thank a customer for their first order with a coupon for the second.
    trigger: {event: order_placed}
    audience: "orders == 1"
    once: true
    priority: 30
    offer:
      kind: coupon
      title: "Thank you! {coupon.value} {coupon.currency} off order two"
      reason: "placed a first order ({trigger.order_id})"
      coupon: {value: 15, min_spend: 60}
      expires: 14d
    channels:
      - {channel: email, template: first_order_thanks}
"""


def library(expires: str = "14d", currency: str = "EUR") -> CampaignBook:
    """The built-in library without control group, plus first_order; welcome's and
    first_order's offers expire after ``expires``."""
    text = builtin_text().replace("control_group_percent: 5", "control_group_percent: 0")
    text = text.replace("expires: 14d", f"expires: {expires}", 1)  # welcome, the first one
    text += FIRST_ORDER.replace("expires: 14d", f"expires: {expires}")
    return parse_book(text, source="test", currency=currency)


CONFIG = StepConfig(engine=EngineConfig(book=library()))
_ids = itertools.count()


def test_the_book_is_the_library_plus_first_order() -> None:
    book = CONFIG.engine.book
    names = [c.name for c in book.campaigns]
    assert (names[0], names[-1], len(names)) == ("welcome", "first_order", 14)
    assert book.ledger.control_group_percent == 0
    assert book.named("welcome").offer.expires_ms == 14 * DAY_MS  # type: ignore[union-attr]


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


def campaigns(outputs: tuple[object, ...]) -> list[CampaignResult]:
    """The campaign results among outputs (the outbox also holds segment changes)."""
    return [o for o in outputs if isinstance(o, CampaignResult)]


def only(state: CustomerState) -> CampaignResult:
    (result,) = campaigns(state.outbox)
    return result


def entered(cid: str, segment: str, at: int) -> SegmentChange:
    return SegmentChange(cid, segment, "enter", T0 + at)


def segment_changes(state: CustomerState) -> list[SegmentChange]:
    return [o for o in state.outbox if isinstance(o, SegmentChange)]


# --- welcome -------------------------------------------------------------------------------


def test_welcome_fires_on_first_email_opt_in_with_an_address() -> None:
    event = opt_in(at=5, eid="u-welcome")
    result = step(new_state(CID), event, source="t/0", offset=0, config=CONFIG)
    assert not result.duplicate
    assert result.outputs == result.state.outbox
    # A first event also places the customer in a lifecycle segment (before the campaign).
    (welcome,) = campaigns(result.outputs)
    prospect = entered(CID, "lifecycle:prospect", at=5)
    assert result.outputs.index(prospect) < result.outputs.index(welcome)
    offer_id = welcome.decision.offer_id
    assert offer_id is not None and len(offer_id) == 24
    code = f"WELCOME-{offer_id[:8].upper()}"
    expires = T0 + 5 + 14 * DAY_MS
    title = "Welcome! 10 EUR off your first order"
    reason = "opted in to email for the first time"
    assert welcome.offer == Offer(
        offer_id=offer_id,
        customer_id=CID,
        campaign="welcome",
        kind="coupon",
        title=title,
        reason=reason,
        created_at=T0 + 5,
        expires_at=expires,
        trigger_event_id="u-welcome",
        coupon=Coupon(code=code, value=10.0, currency="EUR", min_spend=30.0),
        priority=40,
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
        vars=(
            ("coupon_code", code),
            ("coupon_value", "10"),
            ("reason", reason),
            ("title", title),
        ),
        send_at=T0 + 5,
        expires_at=expires,
    )
    assert len({offer_id, welcome.decision.decision_id, welcome.message.message_id}) == 3
    profile = result.state.profile
    assert profile.fired == {"welcome": T0 + 5}
    assert profile.sent_log == (Sent(T0 + 5, "email", "welcome"),)
    assert profile.offers == (welcome.offer,)


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
    results = campaigns(state.outbox)
    assert [(r.decision.campaign, r.decision.outcome) for r in results] == [
        ("welcome", "sent"),
        ("welcome", "suppressed"),
        ("welcome", "suppressed"),
    ]
    assert {r.decision.reason for r in results[1:]} == {"cooldown"}  # once: never again
    assert all(r.offer is None and r.message is None for r in results[1:])
    assert state.profile.fired == {"welcome": T0 + 1}


def test_welcome_without_an_address_is_suppressed_with_neither_offer_nor_message() -> None:
    state = run([opt_in(at=1, email=None, eid="u-noaddr")])
    welcome = only(state)
    assert (welcome.offer, welcome.message) == (None, None)
    assert (welcome.decision.campaign, welcome.decision.outcome, welcome.decision.reason) == (
        "welcome",
        "suppressed",
        "no_address:email",
    )
    assert (welcome.decision.channel, welcome.decision.offer_id) == (None, None)
    assert welcome.decision.trigger_event_id == "u-noaddr"
    assert state.profile.fired == {}  # nothing left: it may fire on a later opt-in
    assert state.profile.offers == ()


def test_welcome_does_not_fire_again_when_the_address_arrives_later() -> None:
    state = run([opt_in(at=1, email=None), CustomerUpdate("u-addr", T0 + 2, CID, email=EMAIL)])
    assert [(r.decision.outcome, r.decision.reason) for r in campaigns(state.outbox)] == [
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
    assert state.outbox == (entered(CID, "lifecycle:prospect", at=0),)
    assert state.profile.fired == {}


def test_no_welcome_when_an_older_opt_in_arrives_after_a_newer_opt_out() -> None:
    state = run([opt_in(at=5, granted=False), opt_in(at=1)])
    assert state.outbox == (entered(CID, "lifecycle:prospect", at=5),)


def test_a_welcome_in_quiet_hours_is_deferred_to_the_morning() -> None:
    night = 11 * 3_600_000  # 22:00 in Berlin, the library's default zone
    state = run([opt_in(at=night, eid="u-night")])
    welcome = only(state)
    assert (welcome.decision.outcome, welcome.decision.reason) == ("deferred", "quiet_hours")
    assert (welcome.offer, welcome.message) == (None, None)
    (held,) = (p for p in state.profile.pending if p.kind == "send")
    assert held.due == T0 + 21 * 3_600_000  # 08:00 in Berlin


# --- first_order ---------------------------------------------------------------------------


def test_first_order_fires_on_the_first_placed_order() -> None:
    state = run([opt_in(at=0), placed("o1", at=10, eid="ord-1")])
    welcome, first = campaigns(state.outbox)
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
        priority=30,
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
    (first,) = campaigns(state.outbox)
    assert first.decision.campaign == "first_order"
    # No consent: suppressed, so no offer; later orders are no first order (the audience).
    assert (first.decision.outcome, first.decision.reason) == ("suppressed", "no_consent:email")


def test_first_order_reason_names_the_first_order() -> None:
    state = run([opt_in(at=0), placed("o1", at=1), placed("o2", at=2), placed("o3", at=3)])
    (_, first) = campaigns(state.outbox)
    assert first.offer is not None
    assert first.offer.reason == "placed a first order (o1)"


def test_first_order_not_fired_by_an_order_cancelled_before_it_arrived() -> None:
    cancelled = Order("x1", T0 + 2, CID, "o1", status="cancelled")
    state = run([cancelled, placed("o1", at=1)])
    assert campaigns(state.outbox) == []
    assert segment_changes(state) == [entered(CID, "lifecycle:prospect", at=2)]
    # ... the next live order is the first one
    state = run([cancelled, placed("o1", at=1), placed("o2", at=3, eid="ord-2")])
    assert [
        (r.decision.campaign, r.decision.trigger_event_id) for r in campaigns(state.outbox)
    ] == [("first_order", "ord-2")]


def test_first_order_without_email_consent_is_suppressed_with_neither_offer_nor_message() -> None:
    state = run([CustomerUpdate("u1", T0, CID, email=EMAIL), placed("o1", at=1, eid="ord-1")])
    first = only(state)
    assert (first.offer, first.message) == (None, None)
    assert first.decision == Decision(
        decision_id=first.decision.decision_id,
        customer_id=CID,
        campaign="first_order",
        trigger_event_id="ord-1",
        outcome="suppressed",
        reason="no_consent:email",
        ts=T0 + 1,
        channel=None,
        offer_id=None,
    )


def test_first_order_after_an_unsubscribe_is_suppressed() -> None:
    state = run(
        [
            opt_in(at=0),
            Feedback("f1", T0 + 1, CID, action="unsubscribed", channel="email"),
            placed(at=2),
        ]
    )
    results = campaigns(state.outbox)
    assert [(r.decision.campaign, r.decision.outcome, r.decision.reason) for r in results] == [
        ("welcome", "sent", "eligible"),
        ("first_order", "suppressed", "no_consent:email"),
    ]
    assert (results[1].offer, results[1].message) == (None, None)


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
    assert len(campaigns(first.outbox)) == 2
    assert [_ids_of(r) for r in campaigns(first.outbox)] == [
        _ids_of(r) for r in campaigns(again.outbox)
    ]


def test_ids_differ_across_customers_and_triggers() -> None:
    a = run([opt_in(at=0, eid="u1"), placed("o1", at=1, eid="ord-1")], cid=CID)
    b = run([opt_in(at=0, eid="u1", cid="c2"), placed("o1", at=1, eid="ord-1", cid="c2")], cid="c2")
    c = run([opt_in(at=0, eid="u2"), placed("o1", at=1, eid="ord-2")], cid=CID)
    ids = [i for s in (a, b, c) for r in campaigns(s.outbox) for i in _ids_of(r)]
    assert len(ids) == 18
    assert len(set(ids)) == 18


def test_run_campaigns_directly_is_pure_and_repeatable() -> None:
    before = Profile(customer_id=CID)
    event = opt_in(at=3, eid="u9")
    after = apply_event(before, event, config=ProfileConfig())
    moment = moment_of(before, after, event, ())
    assert moment.consent_granted == ("email",)
    one = run_campaigns(after, moment, config=CONFIG.engine, facts=CatalogFacts())
    two = run_campaigns(after, moment, config=CONFIG.engine, facts=CatalogFacts())
    assert one == two
    assert after.fired == {}  # the input profile is not changed
    profile, (welcome,) = one
    assert welcome.decision.outcome == "sent" and welcome.offer is not None
    assert profile == replace(
        after,
        fired={"welcome": T0 + 3},
        sent_log=(Sent(T0 + 3, "email", "welcome"),),
        offers=(welcome.offer,),
    )


def test_offer_expires_at_trigger_time_plus_the_offers_expiry() -> None:
    config = StepConfig(engine=EngineConfig(book=library(expires="3d", currency="NOK")))
    state = run([opt_in(at=7), placed(at=11)], config=config)
    welcome, first = campaigns(state.outbox)
    assert welcome.offer is not None and first.offer is not None
    assert welcome.message is not None and first.message is not None
    assert (welcome.offer.created_at, welcome.offer.expires_at) == (T0 + 7, T0 + 7 + 3 * DAY_MS)
    assert (first.offer.created_at, first.offer.expires_at) == (T0 + 11, T0 + 11 + 3 * DAY_MS)
    assert (welcome.message.expires_at, first.message.expires_at) == (
        T0 + 7 + 3 * DAY_MS,
        T0 + 11 + 3 * DAY_MS,
    )
    assert welcome.offer.title == "Welcome! 10 NOK off your first order"
    assert first.offer.coupon is not None and first.offer.coupon.currency == "NOK"


def test_a_message_lives_at_least_a_day_after_it_is_sent() -> None:
    config = StepConfig(engine=EngineConfig(book=library(expires="1h")))
    welcome = only(run([opt_in(at=7)], config=config))
    assert welcome.offer is not None and welcome.message is not None
    assert welcome.offer.expires_at == T0 + 7 + 3_600_000
    assert welcome.message.expires_at == T0 + 7 + DAY_MS


def test_a_redelivered_trigger_fires_nothing_new() -> None:
    event = opt_in(at=0, eid="u1")
    state = run([event])
    again = step(state, event, source="t/0", offset=0, config=CONFIG)
    assert again.duplicate and again.outputs == () and again.state == state
    retry = step(state, event, source="t/0", offset=5, config=CONFIG)
    assert retry.duplicate and retry.outputs == ()
    assert (retry.state.profile, retry.state.outbox) == (state.profile, state.outbox)
    assert retry.state.applied.offsets == {"t/0": 5}  # the retry's own offset is remembered
