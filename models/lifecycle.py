"""Lifecycle stage from order count and recency, evaluated at a given engine time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Stage = Literal["prospect", "new", "active", "loyal", "at_risk", "lapsed"]
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    active_from_orders: int = 2
    loyal_from_orders: int = 4
    at_risk_after_days: int = 90
    lapsed_after_days: int = 180


def lifecycle_stage(
    orders: int, last_order_at: int | None, *, now: int, config: LifecycleConfig
) -> Stage:
    """Recency overrides frequency: a loyal customer silent for 180 days is lapsed.

    The boundary is inclusive: at exactly last order + N days the stage changes.
    """
    if orders == 0 or last_order_at is None:
        return "prospect"
    idle = now - last_order_at
    if idle >= config.lapsed_after_days * DAY_MS:
        return "lapsed"
    if idle >= config.at_risk_after_days * DAY_MS:
        return "at_risk"
    if orders >= config.loyal_from_orders:
        return "loyal"
    if orders >= config.active_from_orders:
        return "active"
    return "new"
