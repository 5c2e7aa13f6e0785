"""The API's profile view: time-dependent fields are evaluated at ``now``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.affinity import AffinityConfig
from models.events import Click, CustomerEvent, CustomerUpdate, Order, OrderItem
from models.lifecycle import DAY_MS
from models.profile import Profile, ProfileConfig, apply_event
from models.rfm import make_rfm
from models.view import ViewConfig, profile_view

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
CID = "c1"
MINUTE_MS = 60_000
VIEW = ViewConfig()
ZERO = {"1h": 0, "24h": 0, "7d": 0, "30d": 0}


def fold(events: list[CustomerEvent], **fields: object) -> Profile:
    profile = Profile(customer_id=CID, **fields)  # type: ignore[arg-type]
    for event in events:
        profile = apply_event(profile, event, config=ProfileConfig())
    return profile


def browsing() -> Profile:
    """A view of shoes (weight 1) and a cart add of bags (weight 3), both at T0."""
    return fold(
        [
            Click("k1", T0, CID, "product_view", product_id="p1", category="shoes"),
            Click("k2", T0, CID, "add_to_cart", product_id="p2", category="bags", quantity=2),
        ]
    )


def bought(total: float = 300.0) -> Profile:
    item = OrderItem("p3", category="hats", unit_price=total)
    return fold([Order("o1", T0, CID, "o1", total=total, items=(item,))])


def test_affinity_is_decayed_to_now_best_first() -> None:
    profile = browsing()
    assert profile_view(profile, now=T0, rfm=None, config=VIEW)["affinity"] == {
        "bags": 3.0,
        "shoes": 1.0,
    }
    later = profile_view(profile, now=T0 + 30 * DAY_MS, rfm=None, config=VIEW)["affinity"]
    assert later == {"bags": 1.5, "shoes": 0.5}  # one half-life later
    assert list(later) == ["bags", "shoes"]


def test_affinity_uses_the_view_config() -> None:
    config = ViewConfig(affinity=AffinityConfig(half_life_days=10.0))
    view = profile_view(browsing(), now=T0 + 10 * DAY_MS, rfm=None, config=config)
    assert view["affinity"] == {"bags": 1.5, "shoes": 0.5}


def test_windows_report_views_carts_and_orders_even_when_empty() -> None:
    view = profile_view(browsing(), now=T0 + 90 * MINUTE_MS, rfm=None, config=VIEW)
    assert view["windows"] == {
        "carts": {"1h": 0, "24h": 1, "7d": 1, "30d": 1},
        "orders": ZERO,
        "views": {"1h": 0, "24h": 1, "7d": 1, "30d": 1},
    }
    empty = profile_view(Profile(CID), now=T0, rfm=None, config=VIEW)
    assert empty["windows"] == {"carts": ZERO, "orders": ZERO, "views": ZERO}


def test_an_order_counts_in_the_order_windows_until_it_is_cancelled() -> None:
    profile = bought()
    assert profile_view(profile, now=T0, rfm=None, config=VIEW)["windows"]["orders"] == {
        "1h": 1,
        "24h": 1,
        "7d": 1,
        "30d": 1,
    }
    cancelled = apply_event(
        profile, Order("o1x", T0 + 1, CID, "o1", status="cancelled"), config=ProfileConfig()
    )
    assert profile_view(cancelled, now=T0 + 1, rfm=None, config=VIEW)["windows"]["orders"] == ZERO


def test_segments_are_listed_sorted() -> None:
    profile = Profile(CID, segments=frozenset({"tier:gold", "lifecycle:loyal", "rfm:champions"}))
    view = profile_view(profile, now=T0, rfm=None, config=VIEW)
    assert view["segments"] == ["lifecycle:loyal", "rfm:champions", "tier:gold"]


@pytest.mark.parametrize(
    ("total", "tier"),
    [
        (10.0, "bronze"),
        (249.99, "bronze"),
        (250.0, "silver"),
        (1000.0, "gold"),
        (5000.0, "platinum"),
    ],
)
def test_tier_follows_revenue(total: float, tier: str) -> None:
    assert profile_view(bought(total), now=T0, rfm=None, config=VIEW)["tier"] == tier


def test_no_tier_without_orders() -> None:
    assert profile_view(browsing(), now=T0, rfm=None, config=VIEW)["tier"] is None


def test_rfm_is_shown_when_given_and_null_otherwise() -> None:
    rfm = make_rfm(5, 4, 3)
    view = profile_view(bought(), now=T0, rfm=rfm, config=VIEW)
    assert view["rfm"] == {"r": 5, "f": 4, "m": 3, "code": "543", "segment": rfm.segment}
    assert view["rfm"]["segment"] == "champions"  # R 5, FM (4 + 3 + 1) // 2 = 4
    assert profile_view(bought(), now=T0, rfm=None, config=VIEW)["rfm"] is None


@pytest.mark.parametrize(
    ("days", "stage"),
    [(0, "new"), (89, "new"), (90, "at_risk"), (179, "at_risk"), (180, "lapsed")],
)
def test_lifecycle_is_evaluated_at_now_not_at_the_stored_segments(days: int, stage: str) -> None:
    profile = bought()
    # Stored memberships were last computed at the order; the view does not read them.
    profile = replace(profile, segments=frozenset({"lifecycle:new"}))
    view = profile_view(profile, now=T0 + days * DAY_MS, rfm=None, config=VIEW)
    assert view["lifecycle"] == stage
    assert view["segments"] == ["lifecycle:new"]


def test_a_prospect_has_no_order_figures() -> None:
    view = profile_view(browsing(), now=T0, rfm=None, config=VIEW)
    assert view["lifecycle"] == "prospect"
    assert (view["orders"], view["revenue"], view["avg_order_value"], view["last_order_at"]) == (
        0,
        0.0,
        None,
        None,
    )


def test_order_figures_times_and_the_rest_of_the_view() -> None:
    profile = fold(
        [
            CustomerUpdate("u1", T0 - 1000, CID, email="a@example.com", consent=(("email", True),)),
            Order("o1", T0, CID, "o1", total=100.0, items=(OrderItem("p1"),)),
            Order("o2", T0 + 1000, CID, "o2", total=50.0, items=(OrderItem("p2"),)),
            Click("k1", T0 + 2000, CID, "add_to_cart", product_id="p9", quantity=3),
            Click("k2", T0 + 3000, CID, "identify", anonymous_id="anon-1"),
        ]
    )
    view = profile_view(profile, now=T0 + 4000, rfm=None, config=VIEW)
    assert view["customer_id"] == CID
    assert (view["first_seen"], view["last_seen"]) == (
        "2026-11-22T09:59:59.000Z",
        "2026-11-22T10:00:03.000Z",
    )
    assert (view["orders"], view["revenue"], view["avg_order_value"]) == (2, 150.0, 75.0)
    assert view["last_order_at"] == "2026-11-22T10:00:01.000Z"
    assert view["lifecycle"] == "active"
    assert view["cart"] == [{"product_id": "p9", "quantity": 3}]
    assert view["consent"] == {"email": True, "sms": False, "push": False}
    assert view["contact"] == {"email": "a@example.com"}
    assert view["aliases"] == ["anon-1"]
    assert view["clv"] is None
    assert view["as_of"] == "2026-11-22T10:00:04.000Z"
