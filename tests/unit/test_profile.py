"""The profile fold: each contract event's effect, table-driven, in every arrival order."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest

from models.events import Click, CustomerEvent, CustomerUpdate, Feedback, Order, OrderItem
from models.profile import (
    MAX_VIEWED,
    ConsentFact,
    OrderFact,
    OrderTotals,
    Profile,
    ProfileConfig,
    apply_click,
    apply_customer,
    apply_event,
    apply_feedback,
    apply_order,
    has_consent,
    order_totals,
)

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
CID = "c1"
CONFIG = ProfileConfig()
_ids = itertools.count()


def _eid() -> str:
    return f"e{next(_ids)}"


def click(kind: str, at: int = 0, product: str | None = None, qty: int = 1) -> Click:
    return Click(_eid(), T0 + at, CID, kind, product_id=product, quantity=qty)  # type: ignore[arg-type]


def placed(oid: str, total: float, at: int = 0, items: Iterable[str] = ()) -> Order:
    lines = tuple(OrderItem(product_id=pid) for pid in items)
    return Order(_eid(), T0 + at, CID, oid, status="placed", total=total, items=lines)


def undo(oid: str, status: str, at: int = 0) -> Order:
    return Order(_eid(), T0 + at, CID, oid, status=status)  # type: ignore[arg-type]


def consent(at: int = 0, **channels: bool) -> CustomerUpdate:
    return CustomerUpdate(_eid(), T0 + at, CID, consent=tuple(channels.items()))  # type: ignore[arg-type]


def unsubscribe(at: int = 0, channel: str | None = None, action: str = "unsubscribed") -> Feedback:
    return Feedback(_eid(), T0 + at, CID, action=action, channel=channel)  # type: ignore[arg-type]


def fold(events: Iterable[CustomerEvent], profile: Profile | None = None) -> Profile:
    profile = profile or Profile(customer_id=CID)
    for event in events:
        profile = apply_event(profile, event, config=CONFIG)
    return profile


def consents(profile: Profile) -> dict[str, bool]:
    return {ch: has_consent(profile, ch) for ch in ("email", "sms", "push")}


# --- first / last seen -----------------------------------------------------------------

SEEN_EVENTS = [
    click("page_view", at=5),
    placed("o1", 10.0, at=1),
    consent(at=9, email=True),
    unsubscribe(at=3, action="opened"),
]


@pytest.mark.parametrize("events", list(itertools.permutations(SEEN_EVENTS)))
def test_first_and_last_seen_are_min_and_max_event_time_in_any_arrival_order(
    events: tuple[CustomerEvent, ...],
) -> None:
    profile = fold(events)
    assert (profile.first_seen, profile.last_seen) == (T0 + 1, T0 + 9)


def test_a_new_profile_has_seen_nothing() -> None:
    new = Profile(customer_id=CID)
    assert new == Profile(
        customer_id=CID,
        first_seen=None,
        last_seen=None,
        order_facts={},
        views={},
        wishlist={},
        cart_lines={},
        cart_cleared={},
        pending=(),
        sent_log=(),
        offers=(),
    )
    assert new.cart == {}
    assert order_totals(new) == OrderTotals(0, 0.0, None)


# --- orders, revenue, last order, in every arrival order --------------------------------

ORDER_SCENARIOS = {
    "placed only": ([placed("o1", 40.0, at=1)], OrderTotals(1, 40.0, T0 + 1)),
    "placed then cancelled": (
        [placed("o1", 40.0, at=1), undo("o1", "cancelled", at=2)],
        OrderTotals(0, 0.0, None),
    ),
    "placed then refunded": (
        [placed("o1", 40.0, at=1), undo("o1", "refunded", at=5)],
        OrderTotals(0, 0.0, None),
    ),
    "cancellation stamped before the placement": (
        [placed("o1", 40.0, at=3), undo("o1", "cancelled", at=2)],
        OrderTotals(0, 0.0, None),
    ),
    "placed, cancelled and refunded": (
        [placed("o1", 40.0, at=1), undo("o1", "cancelled", at=2), undo("o1", "refunded", at=3)],
        OrderTotals(0, 0.0, None),
    ),
    "two orders, the later refunded": (
        [placed("o1", 40.0, at=1), placed("o2", 25.5, at=7), undo("o2", "refunded", at=8)],
        OrderTotals(1, 40.0, T0 + 1),
    ),
    "three orders, the middle cancelled": (
        [
            placed("o1", 19.99, at=1),
            placed("o2", 5.0, at=4),
            placed("o3", 0.02, at=3),
            undo("o2", "cancelled", at=6),
        ],
        OrderTotals(2, 20.01, T0 + 3),
    ),
    "a cancellation for an order never placed": (
        [placed("o1", 12.5, at=1), undo("o9", "cancelled", at=2)],
        OrderTotals(1, 12.5, T0 + 1),
    ),
}


def _order_cases() -> Iterable[object]:
    for name, (facts, expected) in ORDER_SCENARIOS.items():
        for n, perm in enumerate(itertools.permutations(facts)):
            yield pytest.param(perm, expected, id=f"{name}-{n}")


@pytest.mark.parametrize(("facts", "expected"), list(_order_cases()))
def test_order_totals_in_every_arrival_order(
    facts: tuple[Order, ...], expected: OrderTotals
) -> None:
    assert order_totals(fold(facts)) == expected


@pytest.mark.parametrize(
    "facts",
    [
        [placed("o1", 40.0, at=1), undo("o1", "cancelled", at=2)],
        [undo("o1", "cancelled", at=2), placed("o1", 40.0, at=1)],
    ],
    ids=["placed-first", "cancellation-first"],
)
def test_a_cancellation_wins_whenever_it_arrives_and_keeps_what_was_placed(
    facts: list[Order],
) -> None:
    profile = fold(facts)
    assert profile.order_facts == {"o1": OrderFact(status="cancelled", total=40.0, ts=T0 + 1)}
    assert order_totals(profile) == OrderTotals(orders=0, revenue=0.0, last_order_at=None)


def test_a_cancellation_alone_records_status_without_value() -> None:
    profile = apply_order(Profile(customer_id=CID), undo("o1", "refunded", at=2), config=CONFIG)
    assert profile.order_facts == {"o1": OrderFact(status="refunded", total=None, ts=None)}


# --- cart --------------------------------------------------------------------------------

CART_CASES = {
    "add": ([click("add_to_cart", product="p1", qty=2)], {"p1": 2}),
    "add twice adds quantities": (
        [click("add_to_cart", product="p1", qty=2), click("add_to_cart", product="p1")],
        {"p1": 3},
    ),
    "remove part": (
        [click("add_to_cart", product="p1", qty=3), click("remove_from_cart", product="p1")],
        {"p1": 2},
    ),
    "remove exactly all": (
        [click("add_to_cart", product="p1", qty=2), click("remove_from_cart", product="p1", qty=2)],
        {},
    ),
    "remove more than held": (
        [click("add_to_cart", product="p1"), click("remove_from_cart", product="p1", qty=5)],
        {},
    ),
    "remove what is not there": (
        [click("add_to_cart", product="p1"), click("remove_from_cart", product="p2")],
        {"p1": 1},
    ),
    "order removes bought lines only": (
        [
            click("add_to_cart", product="p1", qty=2),
            click("add_to_cart", product="p2"),
            click("add_to_cart", product="p3"),
            placed("o1", 30.0, items=["p1", "p3", "p9"]),
        ],
        {"p2": 1},
    ),
    "a cancelled-first order still empties its lines": (
        [
            click("add_to_cart", product="p1"),
            undo("o1", "cancelled"),
            placed("o1", 30.0, items=["p1"]),
        ],
        {},
    ),
    "add after the order starts a new line": (
        [
            click("add_to_cart", product="p1"),
            placed("o1", 30.0, at=1, items=["p1"]),
            click("add_to_cart", at=2, product="p1", qty=4),
        ],
        {"p1": 4},
    ),
    "an add at the order's own time is bought with it": (
        [
            click("add_to_cart", product="p1"),
            placed("o1", 30.0, items=["p1"]),
            click("add_to_cart", product="p1", qty=4),
        ],
        {},
    ),
    "an add before the order, arriving after it, is gone": (
        [placed("o1", 30.0, at=5, items=["p1"]), click("add_to_cart", at=3, product="p1", qty=2)],
        {},
    ),
    "an add after the order, arriving before it, stays": (
        [click("add_to_cart", at=7, product="p1", qty=2), placed("o1", 30.0, at=5, items=["p1"])],
        {"p1": 2},
    ),
    "only the adds after the order stay, whatever the arrival order": (
        [
            click("add_to_cart", at=9, product="p1", qty=2),
            click("add_to_cart", at=1, product="p1", qty=5),
            placed("o1", 30.0, at=5, items=["p1"]),
            click("add_to_cart", at=4, product="p1", qty=3),
            click("remove_from_cart", at=8, product="p1"),
        ],
        {"p1": 2},  # the removal at 8 takes nothing (empty since 5), the add at 9 gives 2
    ),
    "the latest order that bought the product empties its line": (
        [
            placed("o2", 30.0, at=8, items=["p1"]),
            click("add_to_cart", at=6, product="p1"),
            placed("o1", 30.0, at=5, items=["p1"]),
            click("add_to_cart", at=9, product="p1", qty=3),
        ],
        {"p1": 3},
    ),
    "removals replay in event time, not arrival order": (
        [
            click("remove_from_cart", at=2, product="p1", qty=2),
            click("add_to_cart", at=1, product="p1", qty=3),
            click("add_to_cart", at=3, product="p1"),
        ],
        {"p1": 2},
    ),
    "a removal before any add takes nothing away later": (
        [
            click("add_to_cart", at=3, product="p1", qty=2),
            click("remove_from_cart", at=1, product="p1"),
        ],
        {"p1": 2},
    ),
    "other click types leave the cart alone": (
        [
            click("add_to_cart", product="p1"),
            click("product_view", product="p1"),
            click("wishlist_add", product="p2"),
            click("page_view"),
            click("search"),
        ],
        {"p1": 1},
    ),
}


@pytest.mark.parametrize(("events", "expected"), CART_CASES.values(), ids=CART_CASES.keys())
def test_cart(events: list[CustomerEvent], expected: dict[str, int]) -> None:
    assert dict(fold(events).cart) == expected


#: Cart cases whose events all have distinct event times: the cart is the same in any arrival order.
EVENT_TIME_CASES = (
    "add after the order starts a new line",
    "an add before the order, arriving after it, is gone",
    "an add after the order, arriving before it, stays",
    "only the adds after the order stay, whatever the arrival order",
    "the latest order that bought the product empties its line",
    "removals replay in event time, not arrival order",
    "a removal before any add takes nothing away later",
)


@pytest.mark.parametrize("case", EVENT_TIME_CASES)
def test_the_cart_follows_event_time_in_every_arrival_order(case: str) -> None:
    events, expected = CART_CASES[case]
    assert len({e.ts for e in events}) == len(events)
    for arrival in itertools.permutations(events):
        profile = fold(arrival)
        assert dict(profile.cart) == expected, arrival


def test_cart_lines_are_listed_in_event_time_whatever_the_arrival_order() -> None:
    adds = [click("add_to_cart", at=at, product=p) for at, p in ((3, "b"), (1, "c"), (2, "a"))]
    for arrival in itertools.permutations(adds):
        assert list(fold(arrival).cart) == ["c", "a", "b"], arrival


# --- views -------------------------------------------------------------------------------

VIEW_CASES = {
    "one view": ([click("product_view", at=3, product="p1")], {"p1": (1, T0 + 3)}),
    "views count and keep the latest time whatever the arrival order": (
        [
            click("product_view", at=7, product="p1"),
            click("product_view", at=2, product="p1"),
            click("product_view", at=5, product="p2"),
        ],
        {"p1": (2, T0 + 7), "p2": (1, T0 + 5)},
    ),
    "only product views count": (
        [
            click("add_to_cart", product="p1"),
            click("wishlist_add", product="p1"),
            click("page_view"),
        ],
        {},
    ),
}


@pytest.mark.parametrize(("events", "expected"), VIEW_CASES.values(), ids=VIEW_CASES.keys())
def test_views(events: list[CustomerEvent], expected: dict[str, tuple[int, int]]) -> None:
    assert dict(fold(events).views) == expected


def _viewed_all(n: int) -> Profile:
    """Products p0..p{n-1} viewed once each, p<k> at T0 + k + 10."""
    return fold(click("product_view", at=10 + k, product=f"p{k}") for k in range(n))


def test_views_are_bounded_by_max_viewed_and_the_stalest_product_goes() -> None:
    profile = _viewed_all(MAX_VIEWED + 1)
    assert len(profile.views) == MAX_VIEWED
    assert dict(profile.views) == {f"p{k}": (1, T0 + 10 + k) for k in range(1, MAX_VIEWED + 1)}


def test_a_view_older_than_every_kept_view_does_not_win_a_place() -> None:
    profile = apply_click(
        _viewed_all(MAX_VIEWED), click("product_view", at=0, product="old"), config=CONFIG
    )
    assert dict(profile.views) == {f"p{k}": (1, T0 + 10 + k) for k in range(MAX_VIEWED)}


def test_viewing_a_kept_product_again_evicts_nothing() -> None:
    profile = apply_click(
        _viewed_all(MAX_VIEWED), click("product_view", at=99, product="p0"), config=CONFIG
    )
    assert len(profile.views) == MAX_VIEWED
    assert profile.views["p0"] == (2, T0 + 99)


# --- consent -----------------------------------------------------------------------------

NONE = {"email": False, "sms": False, "push": False}
CONSENT_CASES = {
    "never seen is not consent": ([], NONE),
    "an update without consent is not consent": (
        [CustomerUpdate(_eid(), T0, CID, email="a@example.com")],
        NONE,
    ),
    "explicit grant": ([consent(at=1, email=True)], {**NONE, "email": True}),
    "explicit false": ([consent(at=1, sms=False)], NONE),
    "a grant on one channel leaves the others": (
        [consent(at=1, email=True, push=True), consent(at=2, sms=False)],
        {"email": True, "sms": False, "push": True},
    ),
    "later revocation wins": ([consent(at=1, email=True), consent(at=2, email=False)], NONE),
    "later grant wins": (
        [consent(at=1, email=False), consent(at=2, email=True)],
        {**NONE, "email": True},
    ),
    "an older revocation arriving late loses": (
        [consent(at=2, email=True), consent(at=1, email=False)],
        {**NONE, "email": True},
    ),
    "an older grant arriving late loses": (
        [consent(at=2, email=False), consent(at=1, email=True)],
        NONE,
    ),
    "tie, revocation arrives second": (
        [consent(at=1, email=True), consent(at=1, email=False)],
        NONE,
    ),
    "tie, revocation arrives first": (
        [consent(at=1, email=False), consent(at=1, email=True)],
        NONE,
    ),
    "unsubscribed without channel revokes all three": (
        [consent(at=1, email=True, sms=True, push=True), unsubscribe(at=2)],
        NONE,
    ),
    "unsubscribed with a channel revokes only that one": (
        [consent(at=1, email=True, sms=True, push=True), unsubscribe(at=2, channel="sms")],
        {"email": True, "sms": False, "push": True},
    ),
    "unsubscribed older than the grant loses": (
        [consent(at=2, email=True), unsubscribe(at=1)],
        {**NONE, "email": True},
    ),
    "unsubscribed at the same time as the grant wins": (
        [consent(at=2, email=True, push=True), unsubscribe(at=2)],
        NONE,
    ),
    "unsubscribed before any grant, grant later": (
        [unsubscribe(at=1), consent(at=2, push=True)],
        {**NONE, "push": True},
    ),
    "other feedback actions change no consent": (
        [
            consent(at=1, email=True),
            *(
                unsubscribe(at=5, action=a)
                for a in ("delivered", "opened", "clicked", "dismissed", "bounced", "complained")
            ),
        ],
        {**NONE, "email": True},
    ),
}


@pytest.mark.parametrize(("events", "expected"), CONSENT_CASES.values(), ids=CONSENT_CASES.keys())
def test_consent(events: list[CustomerEvent], expected: dict[str, bool]) -> None:
    assert consents(fold(events)) == expected


def test_consent_facts_record_the_winning_event_time() -> None:
    profile = fold([consent(at=1, email=True, sms=True), unsubscribe(at=4, channel="sms")])
    assert profile.consent == {
        "email": ConsentFact(granted=True, ts=T0 + 1),
        "sms": ConsentFact(granted=False, ts=T0 + 4),
    }


def test_unsubscribed_without_channel_records_all_three_channels() -> None:
    profile = apply_feedback(Profile(customer_id=CID), unsubscribe(at=3))
    assert profile.consent == {
        ch: ConsentFact(granted=False, ts=T0 + 3) for ch in ("email", "sms", "push")
    }


# --- contact data and attributes -----------------------------------------------------------


def test_customer_update_sets_given_contact_fields_and_merges_attributes() -> None:
    first = CustomerUpdate(
        _eid(),
        T0,
        CID,
        email="a@example.com",
        phone="+4712345678",
        timezone="Europe/Oslo",
        attributes=(("age", 31), ("city", "Oslo")),
    )
    second = CustomerUpdate(
        _eid(),
        T0 + 1,
        CID,
        email="b@example.com",
        birthday="05-17",
        attributes=(("city", "Bergen"),),
    )
    profile = apply_customer(apply_customer(Profile(customer_id=CID), first), second)
    assert profile.contact == {
        "email": "b@example.com",
        "phone": "+4712345678",
        "timezone": "Europe/Oslo",
        "birthday": "05-17",
    }
    assert profile.attributes == {"age": 31, "city": "Bergen"}


def test_apply_event_only_touches_for_events_without_effect() -> None:
    before = Profile(customer_id=CID)
    after = apply_event(before, unsubscribe(at=4, action="opened"), config=CONFIG)
    assert after == Profile(customer_id=CID, first_seen=T0 + 4, last_seen=T0 + 4, clock=T0 + 4)
