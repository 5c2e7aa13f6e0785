"""The profile as the HTTP API shows it (contract section 3), at a given engine time."""

from __future__ import annotations

from typing import Any

from models.clock import format_ts
from models.lifecycle import LifecycleConfig, lifecycle_stage
from models.profile import Profile, has_consent, order_totals

TOP_VIEWED = 10


def profile_view(profile: Profile, *, now: int, lifecycle: LifecycleConfig) -> dict[str, Any]:
    """Fields not computed yet by this version (RFM, tier, CLV) are null, as the contract allows."""
    totals = order_totals(profile)
    top = sorted(profile.views.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    return {
        "customer_id": profile.customer_id,
        "first_seen": format_ts(profile.first_seen),
        "last_seen": format_ts(profile.last_seen),
        "orders": totals.orders,
        "revenue": totals.revenue,
        "avg_order_value": round(totals.revenue / totals.orders, 2) if totals.orders else None,
        "last_order_at": format_ts(totals.last_order_at),
        "rfm": None,
        "lifecycle": lifecycle_stage(
            totals.orders, totals.last_order_at, now=now, config=lifecycle
        ),
        "tier": None,
        "clv": None,
        "affinity": {},
        "top_viewed": [{"product_id": pid, "views": n} for pid, (n, _) in top[:TOP_VIEWED]],
        "cart": [{"product_id": pid, "quantity": qty} for pid, qty in profile.cart.items()],
        "segments": [],
        "consent": {ch: has_consent(profile, ch) for ch in ("email", "sms", "push")},
        "contact": dict(profile.contact),
        "attributes": dict(profile.attributes),
        "as_of": format_ts(now),
    }
