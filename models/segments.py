"""Segment memberships (lifecycle, tier, RFM cell) and the changes between two states.

A membership is a string ``family:name`` (``lifecycle:at_risk``, ``tier:gold``,
``rfm:champions``). Stored memberships are evaluated at the customer's own
clock; a lifecycle boundary that passes with no event for the customer is
reached through a timer (``next_due``) that the engine schedules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.lifecycle import DAY_MS, LifecycleConfig, lifecycle_stage
from models.outputs import SegmentChange
from models.profile import Profile, order_totals
from models.tiers import TierConfig, tier_for


@dataclass(frozen=True, slots=True)
class SegmentConfig:
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    tiers: TierConfig = field(default_factory=TierConfig)


def memberships(profile: Profile, *, now: int, config: SegmentConfig) -> frozenset[str]:
    totals = order_totals(profile)
    found = {
        "lifecycle:"
        + lifecycle_stage(totals.orders, totals.last_order_at, now=now, config=config.lifecycle)
    }
    tier = tier_for(totals.orders, totals.revenue, config=config.tiers)
    if tier is not None:
        found.add(f"tier:{tier}")
    if profile.rfm is not None and totals.orders > 0:
        found.add(f"rfm:{profile.rfm.segment}")
    return frozenset(found)


def segment_changes(
    customer_id: str, old: frozenset[str], new: frozenset[str], *, ts: int
) -> tuple[SegmentChange, ...]:
    """Exits before entries, each group sorted, so consumers see a stable order."""
    exits = [SegmentChange(customer_id, s, "exit", ts) for s in sorted(old - new)]
    enters = [SegmentChange(customer_id, s, "enter", ts) for s in sorted(new - old)]
    return (*exits, *enters)


def passed_boundaries(
    before: Profile, after: Profile, *, event_ts: int, config: SegmentConfig
) -> tuple[frozenset[str], tuple[SegmentChange, ...]]:
    """Lifecycle boundaries (last order + N days) passed between what the customer's
    stored memberships say and the clock ``after`` has reached: each change at its exact
    time, and the memberships reached.

    A boundary's timer usually fires first. When it does not, the change is still
    stamped when it happened in event time, not when it was noticed:

    * an event moves the clock past a boundary before its tick came (a lost or late
      tick, a jump in event time): ``before``'s boundaries between its clock and now;
    * an event arrives late (earlier than the clock: an order consumed after clicks of
      the following months, a cancellation delivered late) and its boundaries have
      passed already: ``after``'s boundaries between the event and now.
    """
    segments = before.segments
    now = after.clock
    if now is None:
        return segments, ()
    if before.clock is None or event_ts >= before.clock:
        basis, since = before, before.clock
    else:
        basis, since = after, event_ts
    totals = order_totals(basis)
    if totals.last_order_at is None or since is None:
        return segments, ()
    lc = config.lifecycle
    changes: tuple[SegmentChange, ...] = ()
    for days in (lc.at_risk_after_days, lc.lapsed_after_days):
        due = totals.last_order_at + days * DAY_MS
        if since < due <= now:
            reached = memberships(basis, now=due, config=config)
            changes += segment_changes(basis.customer_id, segments, reached, ts=due)
            segments = reached
    return segments, changes


def next_due(profile: Profile, *, config: SegmentConfig) -> int | None:
    """The next engine time at which the lifecycle stage changes with no new event."""
    totals = order_totals(profile)
    if totals.last_order_at is None or profile.clock is None:
        return None
    lc = config.lifecycle
    for days in (lc.at_risk_after_days, lc.lapsed_after_days):
        due = totals.last_order_at + days * DAY_MS
        if due > profile.clock:
            return due
    return None
