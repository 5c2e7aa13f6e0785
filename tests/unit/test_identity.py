"""Identity resolution: an anonymous visitor identified as a customer hands its profile over.

The three hops travel on the internal topic between the owners of two keys:
``identify`` on K -> ``merge_out`` for A -> ``merge_in`` for K. Here each hop's output is
turned into the event its owner applies, as the internal codec does.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.customer import CustomerState, MergeIn, StepConfig, new_state, step
from models.events import Click, CustomerEvent, EraseRequest, MergeOut, Order, OrderItem
from models.outputs import Forward, Internal, Output, SegmentChange
from models.profile import Profile, ProfileConfig, apply_event, order_totals

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
K = "c-known"
A = "anon-1"
CONFIG = StepConfig()


def view(eid: str, at: int, cid: str = A, product: str = "p1", category: str = "shoes") -> Click:
    return Click(eid, T0 + at, cid, "product_view", product_id=product, category=category)


def add(eid: str, at: int, cid: str = A, product: str = "p2", qty: int = 1) -> Click:
    return Click(
        eid, T0 + at, cid, "add_to_cart", product_id=product, category="bags", quantity=qty
    )


def placed(eid: str, oid: str, at: int, cid: str, product: str, total: float) -> Order:
    item = OrderItem(product, category="hats", unit_price=total)
    return Order(eid, T0 + at, cid, oid, total=total, items=(item,))


def identify(eid: str = "id-1", at: int = 10) -> Click:
    return Click(eid, T0 + at, K, "identify", anonymous_id=A)


def run(cid: str, events: list[CustomerEvent], state: CustomerState | None = None) -> CustomerState:
    state = state or new_state(cid)
    for event in events:
        state = step(state, event, config=CONFIG).state
    return state


def internals(outputs: tuple[Output, ...], kind: str) -> list[Internal]:
    return [o for o in outputs if isinstance(o, Internal) and o.kind == kind]


def merge_out_event(internal: Internal) -> MergeOut:
    body = dict(internal.body)
    return MergeOut(internal.event_id, internal.ts, internal.customer_id, into=str(body["into"]))


def merge_in_event(internal: Internal) -> MergeIn:
    body = dict(internal.body)
    profile = body["profile"]
    assert isinstance(profile, Profile)
    return MergeIn(internal.event_id, internal.ts, internal.customer_id, str(body["from"]), profile)


A_BEFORE: list[CustomerEvent] = [
    view("a1", 1),
    add("a2", 2, qty=2),
    view("a3", 3, product="p5", category="bags"),
    placed("a4", "o-anon", 4, A, "p9", 30.0),
]
K_BEFORE: list[CustomerEvent] = [view("k1", 5, cid=K), placed("k2", "o-known", 6, K, "p3", 80.0)]
A_AFTER: list[CustomerEvent] = [view("a5", 11), add("a6", 12), view("a7", 0, product="p7")]


# --- hop 1: identify on K ----------------------------------------------------------------------


def test_identify_adds_the_alias_and_asks_the_anonymous_owner_for_its_profile() -> None:
    known = run(K, K_BEFORE)
    result = step(known, identify(), config=CONFIG)
    assert result.state.profile.aliases == (A,)
    assert [o for o in result.outputs if isinstance(o, Internal)] == [
        Internal("merge_out", A, f"merge-out:{A}:{K}", T0 + 10, body=(("into", K),))
    ]
    assert result.state.outbox[-len(result.outputs) :] == result.outputs


def test_identifying_the_same_anonymous_id_again_asks_nothing_new() -> None:
    known = run(K, [identify()])
    again = step(known, identify("id-2", at=20), config=CONFIG)
    assert not again.duplicate
    assert internals(again.outputs, "merge_out") == []
    assert again.state.profile.aliases == (A,)


# --- hop 2: merge_out on A ---------------------------------------------------------------------


def test_merge_out_hands_the_profile_over_and_leaves_a_forwarding_address() -> None:
    anon = run(A, A_BEFORE)
    request = internals(step(run(K, K_BEFORE), identify(), config=CONFIG).outputs, "merge_out")
    result = step(anon, merge_out_event(request[0]), config=CONFIG)
    exits = tuple(SegmentChange(A, s, "exit", T0 + 10) for s in sorted(anon.profile.segments))
    assert exits  # the anonymous visitor bought once: lifecycle:new, tier:bronze
    handed = Internal(
        "merge_in",
        K,
        f"merge-in:{A}:{K}",
        T0 + 10,
        body=(("from", A), ("profile", anon.profile)),
    )
    assert result.outputs == (*exits, handed)
    assert result.state.profile == Profile(customer_id=A, merged_into=K)


def test_a_second_merge_out_does_nothing() -> None:
    anon = run(A, A_BEFORE)
    handed_over = step(anon, MergeOut("mo-1", T0 + 10, A, K), config=CONFIG).state
    again = step(handed_over, MergeOut("mo-2", T0 + 30, A, K), config=CONFIG)
    assert not again.duplicate  # a new id: only the forwarding address recognises it
    assert again.outputs == ()
    assert again.state.profile == handed_over.profile
    assert again.state.outbox == handed_over.outbox


def test_a_merge_out_for_a_visitor_never_seen_hands_over_an_empty_profile() -> None:
    result = step(new_state(A), MergeOut("mo-1", T0 + 10, A, K), config=CONFIG)
    assert internals(result.outputs, "merge_in") == [
        Internal(
            "merge_in", K, f"merge-in:{A}:{K}", T0 + 10, (("from", A), ("profile", Profile(A)))
        )
    ]
    assert result.state.profile == Profile(customer_id=A, merged_into=K)


def test_events_for_a_merged_anonymous_id_are_forwarded_unchanged() -> None:
    merged = run(A, [*A_BEFORE, MergeOut("mo-1", T0 + 10, A, K)])
    raw = b'{"customer_id": "anon-1", "type": "product_view", \xff\x00 "opaque"}'
    result = step(merged, A_AFTER[0], config=CONFIG, topic="clicks", raw=raw)
    assert not result.duplicate
    assert result.outputs == (Forward("clicks", K, raw),)
    assert result.state.profile == merged.profile
    # Without the record's coordinates there is nothing to forward, and still no change.
    bare = step(merged, A_AFTER[1], config=CONFIG)
    assert bare.outputs == ()
    assert bare.state.profile == merged.profile


# --- hop 3: merge_in on K ----------------------------------------------------------------------


def merged_known() -> tuple[CustomerState, CustomerState, CustomerState]:
    """(K before the merge_in, A's state before handing over, K after the merge_in)."""
    known = step(run(K, K_BEFORE), identify(), config=CONFIG)
    anon = run(A, A_BEFORE)
    handed = step(anon, merge_out_event(internals(known.outputs, "merge_out")[0]), config=CONFIG)
    merge_in = merge_in_event(internals(handed.outputs, "merge_in")[0])
    return known.state, anon, step(known.state, merge_in, config=CONFIG).state


def test_merge_in_adds_up_views_and_cart_and_widens_first_and_last_seen() -> None:
    known, anon, merged = merged_known()
    profile = merged.profile
    assert dict(profile.views) == {
        "p1": (2, T0 + 5),  # once by A at +1, once by K at +5
        "p5": (1, T0 + 3),
    }
    assert dict(profile.cart) == {"p2": 2}
    assert (profile.first_seen, profile.last_seen) == (T0 + 1, T0 + 10)
    assert profile.aliases == (A,)
    assert profile.contact == known.profile.contact
    assert anon.profile.first_seen == T0 + 1


def test_merge_in_joins_order_facts_windows_and_affinity() -> None:
    known, anon, merged = merged_known()
    profile = merged.profile
    assert set(profile.order_facts) == {"o-anon", "o-known"}
    assert profile.order_facts["o-anon"] == anon.profile.order_facts["o-anon"]
    assert order_totals(profile).orders == 2
    assert order_totals(profile).revenue == 110.0
    for metric, expected in (("views", 3), ("carts", 1), ("orders", 2)):
        assert sum(profile.windows[metric]["1d"].values()) == expected
    assert set(profile.affinity) == {"shoes", "bags", "hats"}
    # A's shoes interest adds to K's; bags came only from A.
    assert profile.affinity["bags"] == anon.profile.affinity["bags"]
    assert profile.affinity["shoes"][0] > known.profile.affinity["shoes"][0]


def test_merge_in_recomputes_segments_of_the_known_customer() -> None:
    known = step(run(K, K_BEFORE), identify(), config=CONFIG)
    anon = run(A, A_BEFORE)
    handed = step(anon, MergeOut("mo-1", T0 + 10, A, K), config=CONFIG)
    result = step(
        known.state, merge_in_event(internals(handed.outputs, "merge_in")[0]), config=CONFIG
    )
    assert result.outputs == (
        SegmentChange(K, "lifecycle:new", "exit", T0 + 10),
        SegmentChange(K, "lifecycle:active", "enter", T0 + 10),
    )
    assert result.state.profile.segments == {"lifecycle:active", "tier:bronze"}


def test_a_redelivered_merge_in_is_a_duplicate() -> None:
    _, anon, merged = merged_known()
    handed = step(anon, MergeOut("mo-1", T0 + 10, A, K), config=CONFIG)
    again = step(merged, merge_in_event(internals(handed.outputs, "merge_in")[0]), config=CONFIG)
    assert again.duplicate
    assert again.state.profile == merged.profile


# --- the whole journey equals having known the customer all along -----------------------------


@pytest.mark.parametrize("anon_first", [True, False], ids=["anon-first", "known-first"])
def test_merge_equals_applying_every_event_to_the_customer(anon_first: bool) -> None:
    known = run(K, K_BEFORE)
    anon = run(A, A_BEFORE)
    if not anon_first:  # K identifies before A's early events were applied to A
        anon = new_state(A)
    identified = step(known, identify(), config=CONFIG)
    handed = step(
        anon, merge_out_event(internals(identified.outputs, "merge_out")[0]), config=CONFIG
    )
    if not anon_first:  # A's events reach A after the hand-over: they are forwarded
        for i, event in enumerate(A_BEFORE):
            topic, raw = ("orders" if isinstance(event, Order) else "clicks"), b"raw-%d" % i
            forwarded = step(handed.state, event, config=CONFIG, topic=topic, raw=raw)
            assert forwarded.outputs == (Forward(topic, K, raw),)
            assert forwarded.state.profile == handed.state.profile
    merge_in = merge_in_event(internals(handed.outputs, "merge_in")[0])
    state = step(identified.state, merge_in, config=CONFIG).state
    later = A_AFTER if anon_first else [*A_BEFORE, *A_AFTER]
    for event in later:  # forwarded to K, applied as K's own
        state = step(state, replace(event, customer_id=K), config=CONFIG).state

    direct = Profile(customer_id=K)
    for event in [*A_BEFORE, *K_BEFORE, identify(), *A_AFTER]:
        direct = apply_event(direct, replace(event, customer_id=K), config=ProfileConfig())

    got = state.profile
    assert dict(got.views) == dict(direct.views)
    assert dict(got.cart) == dict(direct.cart)
    assert (got.first_seen, got.last_seen, got.clock) == (
        direct.first_seen,
        direct.last_seen,
        direct.clock,
    )
    assert dict(got.order_facts) == dict(direct.order_facts)
    assert order_totals(got) == order_totals(direct)
    assert got.windows == direct.windows
    assert got.affinity.keys() == direct.affinity.keys()
    for category, (score, ref) in direct.affinity.items():
        assert got.affinity[category] == (pytest.approx(score, rel=1e-12), ref)
    assert got.aliases == (A,)


# --- identifying a customer as itself ---------------------------------------------------------


def test_identifying_a_customer_as_itself_asks_no_one_to_erase_it_again() -> None:
    result = step(new_state(K), Click("id-self", T0, K, "identify", anonymous_id=K), config=CONFIG)
    state = result.state
    assert state.profile.aliases == ()  # the identify is ignored: K is not its own alias
    assert internals(result.outputs, "merge_out") == []
    gone = step(state, EraseRequest("x1", T0 + 1, K), config=CONFIG).state
    assert internals(gone.outbox, "erase") == []


def test_every_input_record_counts_once_for_the_person_whatever_the_path() -> None:
    known, anon, merged = merged_known()
    assert anon.profile.events == len(A_BEFORE)
    assert known.profile.events == len(K_BEFORE) + 1  # the identify click
    assert merged.profile.events == len(A_BEFORE) + len(K_BEFORE) + 1  # internal ones: none
    handed = run(A, [*A_BEFORE, MergeOut("mo-1", T0 + 10, A, K), *A_AFTER])
    assert handed.profile.events == 0  # forwarded to K, counted there


def test_an_anonymous_cart_line_older_than_the_customers_own_joins_it() -> None:
    """The visitor added p2 the day before; the customer adds two more after identifying:
    three in the cart (the older line was dropped at the merge; soak finding)."""
    anon = run(A, [add("a1", 1, qty=1)])
    known = run(K, [add("k1", 50, cid=K, qty=2)])
    merge_in = MergeIn("mi-1", T0 + 60, K, profile=anon.profile, source_id=A)
    merged = step(known, merge_in, config=CONFIG).state
    assert dict(merged.profile.cart) == {"p2": 3}
