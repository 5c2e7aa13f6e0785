"""The profile as the HTTP API shows it (contract section 3), at a given engine time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.affinity import AffinityConfig, affinity_at
from models.clock import format_ts
from models.lifecycle import lifecycle_stage
from models.profile import Profile, has_consent, order_totals
from models.rfm import Rfm
from models.segments import SegmentConfig
from models.tiers import tier_for
from models.windows import window_counts

TOP_VIEWED = 10
WINDOW_METRICS = ("views", "carts", "orders")


@dataclass(frozen=True, slots=True)
class ViewConfig:
    segments: SegmentConfig = field(default_factory=SegmentConfig)
    affinity: AffinityConfig = field(default_factory=AffinityConfig)


def profile_view(
    profile: Profile, *, now: int, rfm: Rfm | None, config: ViewConfig
) -> dict[str, Any]:
    """Time-dependent fields (lifecycle, windows, affinity) are evaluated at ``now``.

    ``rfm`` is scored by the caller against the current buyer population (it is
    a population-level fact); ``segments`` are the memberships last emitted on
    the ``segments`` topic.
    """
    totals = order_totals(profile)
    top = sorted(profile.views.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    lifecycle = config.segments.lifecycle
    return {
        "customer_id": profile.customer_id,
        "first_seen": format_ts(profile.first_seen),
        "last_seen": format_ts(profile.last_seen),
        "orders": totals.orders,
        "revenue": totals.revenue,
        "avg_order_value": round(totals.revenue / totals.orders, 2) if totals.orders else None,
        "last_order_at": format_ts(totals.last_order_at),
        "rfm": None
        if rfm is None
        else {"r": rfm.r, "f": rfm.f, "m": rfm.m, "code": rfm.code, "segment": rfm.segment},
        "lifecycle": lifecycle_stage(
            totals.orders, totals.last_order_at, now=now, config=lifecycle
        ),
        "tier": tier_for(totals.orders, totals.revenue, config=config.segments.tiers),
        "clv": None,
        "affinity": affinity_at(profile.affinity, now=now, config=config.affinity),
        "top_viewed": [{"product_id": pid, "views": n} for pid, (n, _) in top[:TOP_VIEWED]],
        "cart": [{"product_id": pid, "quantity": qty} for pid, qty in profile.cart.items()],
        "windows": window_counts(profile.windows, now=now, metrics=WINDOW_METRICS),
        "segments": sorted(profile.segments),
        "consent": {ch: has_consent(profile, ch) for ch in ("email", "sms", "push")},
        "contact": dict(profile.contact),
        "attributes": dict(profile.attributes),
        "aliases": list(profile.aliases),
        "as_of": format_ts(now),
    }
