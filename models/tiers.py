"""Spend tiers: a loyalty ladder on live revenue.

Business rule. A customer with at least one live order (placed and not
cancelled/refunded) is in the highest tier whose threshold is at or below their
revenue; the boundary is inclusive (exactly 1000.0 is gold with the default
ladder). A customer without live orders has no tier (``None``), whatever the
revenue says. The first threshold is 0, so every buyer has a tier; revenue below 0
(not possible with contract data) still gets the first tier.

Tiers follow revenue both ways: a refund that takes revenue below a threshold
moves the customer down, and arrival order does not matter because the tier is
a function of the current totals only.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TierConfig:
    """Ascending ``(name, minimum revenue)`` pairs; the first threshold is 0.

    Raises ``ValueError`` unless: at least one tier, names are unique non-empty
    strings, thresholds are finite, strictly ascending and start at 0.
    """

    tiers: tuple[tuple[str, float], ...] = (
        ("bronze", 0.0),
        ("silver", 250.0),
        ("gold", 1000.0),
        ("platinum", 5000.0),
    )

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError("tiers must name at least one tier")
        names = [name for name, _ in self.tiers]
        thresholds = [threshold for _, threshold in self.tiers]
        if any(not isinstance(name, str) or not name for name in names):
            raise ValueError(f"tier names must be non-empty strings, got {names}")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"tier names must be unique, repeated: {duplicates}")
        if any(not math.isfinite(t) for t in thresholds):
            raise ValueError(f"tier thresholds must be finite numbers, got {thresholds}")
        if thresholds[0] != 0:
            raise ValueError(
                f"the first tier ({names[0]!r}) must have threshold 0, got {thresholds[0]}"
            )
        for (lower, low), (upper, high) in zip(self.tiers, self.tiers[1:], strict=False):
            if not high > low:
                raise ValueError(
                    "tier thresholds must be strictly ascending: "
                    f"{upper!r} ({high}) is not above {lower!r} ({low})"
                )


def tier_for(orders: int, revenue: float, *, config: TierConfig) -> str | None:
    """The tier for live totals: ``None`` without live orders, else the highest reached."""
    if orders <= 0:
        return None
    thresholds = [threshold for _, threshold in config.tiers]
    index = max(bisect.bisect_right(thresholds, revenue) - 1, 0)
    return config.tiers[index][0]
