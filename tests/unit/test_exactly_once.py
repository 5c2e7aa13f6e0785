"""Exactly-once effect under at-least-once delivery, as properties over random histories.

Kafka redelivers a partition from the last committed offset after a crash (same records,
same offsets); producers may retry (same event id, new offset). Neither may change the
state a customer ends up with, and nothing may leave without consent.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import CONFIG, CUSTOMERS, SOURCE, T0, cents, fold_all, histories, timestamps

from models.customer import Envelope, StepConfig, fold, new_state, step
from models.events import Click, CustomerUpdate, Order, OrderItem
from models.outputs import CampaignResult
from models.profile import (
    OrderTotals,
    Profile,
    ProfileConfig,
    apply_event,
    has_consent,
    order_totals,
)

MAIN = settings(max_examples=150, deadline=None)
SMALL = settings(max_examples=100, deadline=None)


@st.composite
def with_redeliveries(draw: st.DrawFn) -> tuple[list[Envelope], list[Envelope]]:
    """(clean delivery, delivery with 1..3 crashes that restart from an earlier offset)."""
    clean = draw(histories(erase=True))
    delivered: list[Envelope] = []
    position = 0
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        crash_at = draw(st.integers(min_value=position, max_value=len(clean)))
        delivered += clean[position:crash_at]
        # Restart from any offset already delivered (never past the crash point).
        position = draw(st.integers(min_value=0, max_value=crash_at))
    delivered += clean[position:]
    return clean, delivered


@MAIN
@given(with_redeliveries())
def test_redelivery_with_same_offsets_gives_the_same_final_state(
    case: tuple[list[Envelope], list[Envelope]],
) -> None:
    clean, delivered = case
    assert fold_all(delivered) == fold_all(clean)
    # With a one-id window, only the (source, offset) check can recognise the redelivery.
    tiny = StepConfig(dedup_ids=1)
    assert fold_all(delivered, tiny) == fold_all(clean, tiny)


@MAIN
@given(with_redeliveries())
def test_redelivered_records_are_all_counted_as_duplicates(
    case: tuple[list[Envelope], list[Envelope]],
) -> None:
    clean, delivered = case
    accepted = duplicates = 0
    states = {}
    for envelope in delivered:
        cid = envelope.event.customer_id
        folded = fold(states.get(cid) or new_state(cid), [envelope], config=CONFIG)
        states[cid] = folded.state
        accepted += folded.accepted
        duplicates += folded.duplicates
    assert (accepted, duplicates) == (len(clean), len(delivered) - len(clean))


@MAIN
@given(histories(min_size=1, erase=True), st.data())
def test_producer_retries_under_new_offsets_change_nothing_within_the_dedup_window(
    clean: list[Envelope], data: st.DataObject
) -> None:
    # Re-send a few already-sent events (same event id and payload) at fresh offsets.
    events = [env.event for env in clean]
    for _ in range(data.draw(st.integers(min_value=1, max_value=5))):
        at = data.draw(st.integers(min_value=1, max_value=len(events)))
        events.insert(at, data.draw(st.sampled_from(events[:at])))
    retried = [Envelope(event=e, source=SOURCE, offset=i) for i, e in enumerate(events)]

    expected = fold_all(clean)
    actual = fold_all(retried)
    assert actual.keys() == expected.keys()
    for cid, state in expected.items():
        # Offsets differ by construction (retries consumed offsets); all else is equal.
        assert actual[cid].profile == state.profile
        assert actual[cid].outbox == state.outbox
        assert actual[cid].applied.recent_ids == state.applied.recent_ids


@MAIN
@given(histories())
def test_no_message_without_consent_and_decision_ids_are_unique(
    envelopes: list[Envelope],
) -> None:
    states = {}
    addresses: dict[str, set[str]] = {}
    decision_ids: list[str] = []
    for envelope in envelopes:
        cid = envelope.event.customer_id
        event = envelope.event
        if isinstance(event, CustomerUpdate):
            given_now = (event.email, event.phone, event.push_token)
            addresses.setdefault(cid, set()).update(a for a in given_now if a is not None)
        result = step(
            states.get(cid) or new_state(cid),
            event,
            source=envelope.source,
            offset=envelope.offset,
            config=CONFIG,
        )
        states[cid] = result.state
        profile = result.state.profile
        for decided in result.outputs:
            if not isinstance(decided, CampaignResult):
                continue
            decision_ids.append(decided.decision.decision_id)
            if decided.decision.outcome != "sent":
                # Only a sent decision carries an offer (or a message).
                assert (decided.offer, decided.message) == (None, None)
                continue
            assert decided.offer is not None
            assert decided.decision.offer_id == decided.offer.offer_id
            if decided.message is not None:
                channel = decided.message.channel
                assert decided.decision.channel == channel
                assert has_consent(profile, channel)
                assert decided.message.to in addresses.get(cid, set())
    assert len(decision_ids) == len(set(decision_ids))
    outbox_ids = [
        r.decision.decision_id
        for s in states.values()
        for r in s.outbox
        if isinstance(r, CampaignResult)
    ]
    assert sorted(outbox_ids) == sorted(decision_ids)


# --- order accounting does not depend on the arrival order of one order's facts ---------


_order_counts = st.integers(min_value=1, max_value=4)
_undone = st.lists(st.sampled_from(("cancelled", "refunded")), max_size=2)


@st.composite
def order_facts(draw: st.DrawFn) -> tuple[list[Order], OrderTotals]:
    """One placed fact per order id, maybe a cancellation and/or refund; the expected totals."""
    facts: list[Order] = []
    live: list[Order] = []
    for n in range(draw(_order_counts)):
        oid = f"o{n}"
        placed = Order(
            event_id=f"{oid}-placed",
            ts=draw(timestamps),
            customer_id="c1",
            order_id=oid,
            total=draw(cents),
            items=(OrderItem("p1"),),
        )
        facts.append(placed)
        undone = draw(_undone)
        for k, status in enumerate(undone):
            facts.append(
                Order(f"{oid}-{status}-{k}", draw(timestamps), "c1", oid, status=status)  # type: ignore[arg-type]
            )
        if not undone:
            live.append(placed)
    expected = OrderTotals(
        orders=len(live),
        revenue=round(sum(o.total or 0.0 for o in live), 2),
        last_order_at=max((o.ts for o in live), default=None),
    )
    return facts, expected


@MAIN
@given(order_facts(), st.randoms(use_true_random=False))
def test_order_totals_do_not_depend_on_the_arrival_order_of_an_orders_facts(
    case: tuple[list[Order], OrderTotals], rnd
) -> None:
    facts, expected = case
    shuffled = list(facts)
    rnd.shuffle(shuffled)
    profile = Profile(customer_id="c1")
    for fact in shuffled:
        profile = apply_event(profile, fact, config=ProfileConfig())
    assert order_totals(profile) == expected


@SMALL
@given(order_facts(), st.permutations(range(12)))
def test_order_totals_are_the_same_through_the_step_function_in_any_order(
    case: tuple[list[Order], OrderTotals], permutation: list[int]
) -> None:
    facts, expected = case
    ordered = [facts[i] for i in permutation if i < len(facts)]
    envelopes = [Envelope(e, SOURCE, i) for i, e in enumerate(ordered)]
    state = fold(new_state("c1"), envelopes, config=CONFIG).state
    assert order_totals(state.profile) == expected


# --- a record skipped by id must still advance its offset (regression) ---------------------


def test_redelivery_of_a_retried_record_after_its_id_left_the_window_is_a_duplicate() -> None:
    """A record recognised as a duplicate by event id does not advance its source's offset.

    The customer's events come from several partitions (clicks, orders, ...), which share
    one id window. So: E at clicks/0 offset 0; producer retry of E at clicks/0 offset 1
    (correctly skipped by id, but offset 1 is not remembered); then ``dedup_ids`` events on
    orders/0 push E out of the window; then the clicks partition is redelivered from offset 1
    after a crash. Offset 1 was processed already, so the redelivery must change nothing;
    instead E is applied a second time and the cart holds 2 instead of 1.
    """
    config = StepConfig(dedup_ids=4)
    add = Click("E", T0, "c1", "add_to_cart", product_id="p1")
    delivery = [Envelope(add, "clicks/0", 0), Envelope(add, "clicks/0", 1)]
    delivery += [
        Envelope(Order(f"x{i}", T0 + i, "c1", f"o{i}", status="cancelled"), "orders/0", i)
        for i in range(config.dedup_ids)
    ]
    state = fold(new_state("c1"), delivery, config=config).state
    assert dict(state.profile.cart) == {"p1": 1}

    redelivered = fold(state, [Envelope(add, "clicks/0", 1)], config=config)

    assert redelivered.duplicates == 1
    assert dict(redelivered.state.profile.cart) == {"p1": 1}


def test_every_customer_in_the_pool_gets_its_own_state() -> None:
    envelopes = [
        Envelope(Click(f"e{i}", T0, cid, "page_view"), SOURCE, i) for i, cid in enumerate(CUSTOMERS)
    ]
    states = fold_all(envelopes)
    assert {cid: s.profile.first_seen for cid, s in states.items()} == dict.fromkeys(CUSTOMERS, T0)
    assert all(s.applied.offsets == {SOURCE: i} for i, s in enumerate(states.values()))
    c1 = states["c1"].profile
    assert (c1.clock, c1.segments, c1.events) == (T0, frozenset({"lifecycle:prospect"}), 1)
    bare = replace(
        c1, first_seen=None, last_seen=None, clock=None, segments=frozenset(), events=0
    )
    assert bare == Profile("c1")


def test_a_backlog_of_timer_ticks_does_not_push_real_ids_out_of_the_window() -> None:
    """Re-claimed timers bring a tick with a new id each time; a hundred of them must not
    make a producer's re-sent event look new (soak finding: doubled carts and messages)."""
    from models.events import LifecycleTick

    cart = Click("e1", T0, "c1", "add_to_cart", product_id="p1")
    state = step(new_state("c1"), cart, config=CONFIG, source=SOURCE, offset=1).state
    for n in range(100):
        tick = LifecycleTick(f"tick-{n}", T0 + n, "c1")
        state = step(state, tick, config=CONFIG, source="internal/0", offset=n).state
    again = step(state, cart, config=CONFIG, source=SOURCE, offset=500)  # re-sent: new offset
    assert again.duplicate
    assert again.state.profile.cart == {"p1": 1}


def test_a_batch_is_applied_in_event_time_across_topics_and_in_order_within_one() -> None:
    """An unsubscribe of 17:12 fetched after an add-to-cart of 18:08 from another topic is
    applied first; two records of one partition keep their order whatever their times."""
    from models.customer import in_event_time

    cart = Envelope(Click("e1", T0 + 2, "c1", "add_to_cart", product_id="p1"), "clicks/0", 5)
    late = Envelope(Click("e2", T0 + 1, "c1", "page_view"), "clicks/0", 6)
    unsubscribe = Envelope(
        CustomerUpdate("e3", T0 + 0, "c1", consent=(("email", False),)), "customers/0", 9
    )
    ordered = in_event_time([cart, late, unsubscribe])
    assert [e.event.event_id for e in ordered] == ["e3", "e1", "e2"]
