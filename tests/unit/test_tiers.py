"""Spend tiers: inclusive thresholds, no tier without live orders, a validated ladder."""

from __future__ import annotations

import pytest

from models.tiers import TierConfig, tier_for

CFG = TierConfig()


@pytest.mark.parametrize(
    ("orders", "revenue", "tier"),
    [
        (0, 0.0, None),
        (0, 9999.0, None),  # revenue without live orders (all refunded) gives no tier
        (-1, 10.0, None),
        (1, 0.0, "bronze"),
        (1, 249.99, "bronze"),
        (2, 250.0, "silver"),  # thresholds are inclusive
        (3, 999.99, "silver"),
        (4, 1000.0, "gold"),
        (9, 4999.99, "gold"),
        (10, 5000.0, "platinum"),
        (99, 1e9, "platinum"),
        (1, -5.0, "bronze"),  # not possible from contract data: still the first tier
    ],
)
def test_tier_for_default_ladder(orders: int, revenue: float, tier: str | None) -> None:
    assert tier_for(orders, revenue, config=CFG) == tier


def test_the_ladder_is_configuration() -> None:
    config = TierConfig(tiers=(("member", 0.0), ("vip", 100.0)))
    assert [tier_for(1, r, config=config) for r in (0.0, 99.0, 100.0, 1e6)] == [
        "member",
        "member",
        "vip",
        "vip",
    ]
    assert tier_for(1, 1e6, config=TierConfig(tiers=(("all", 0.0),))) == "all"


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ((), "at least one tier"),
        ((("bronze", 10.0), ("silver", 250.0)), "threshold 0"),
        ((("bronze", 0.0), ("silver", 250.0), ("gold", 100.0)), "strictly ascending"),
        ((("bronze", 0.0), ("silver", 250.0), ("gold", 250.0)), "strictly ascending"),
        ((("bronze", 0.0), ("silver", 250.0), ("bronze", 1000.0)), "unique"),
        ((("bronze", 0.0), ("", 250.0)), "non-empty"),
        ((("bronze", 0.0), ("silver", float("inf"))), "finite"),
        ((("bronze", 0.0), ("silver", float("nan"))), "finite"),
    ],
)
def test_config_is_validated(tiers: tuple[tuple[str, float], ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TierConfig(tiers=tiers)
