"""Segment memberships (lifecycle, tier, RFM), their changes, and lifecycle timers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.customer import CustomerState, Envelope, StepConfig, fold, indexes, new_state, step
from models.events import Click, LifecycleTick, Order, OrderItem
from models.lifecycle import DAY_MS
from models.outputs import SegmentChange
from models.profile import OrderFact, Profile
from models.rfm import make_rfm
from models.segments import SegmentConfig, memberships, next_due, segment_changes

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
CID = "c1"
SEGMENTS = SegmentConfig()
CONFIG = StepConfig()
AT_RISK = T0 + 90 * DAY_MS
LAPSED = T0 + 180 * DAY_MS


def buyer(*totals: float, last: int = T0, clock: int | None = None, **fields: object) -> Profile:
    """A profile with one placed order per total, the last one (``o0``) placed at ``last``."""
    facts = {f"o{i}": OrderFact("placed", total, last - i * 1000) for i, total in enumerate(totals)}
    return Profile(CID, order_facts=facts, clock=last if clock is None else clock, **fields)  # type: ignore[arg-type]


def placed(eid: str, oid: str, at: int, total: float = 40.0) -> Order:
    return Order(eid, at, CID, oid, total=total, items=(OrderItem("p1"),))


def enter(segment: str, ts: int) -> SegmentChange:
    return SegmentChange(CID, segment, "enter", ts)


def exit_(segment: str, ts: int) -> SegmentChange:
    return SegmentChange(CID, segment, "exit", ts)


# --- memberships -----------------------------------------------------------------------------

MEMBERSHIP_CASES = {
    "no order: prospect, no tier": (Profile(CID), T0, {"lifecycle:prospect"}),
    "an order cancelled is no order": (
        Profile(CID, order_facts={"o1": OrderFact("cancelled", 40.0, T0)}),
        T0,
        {"lifecycle:prospect"},
    ),
    "one order: new and bronze": (buyer(40.0), T0, {"lifecycle:new", "tier:bronze"}),
    "two orders: active": (buyer(40.0, 40.0), T0, {"lifecycle:active", "tier:bronze"}),
    "three orders: still active": (
        buyer(40.0, 40.0, 40.0),
        T0,
        {"lifecycle:active", "tier:bronze"},
    ),
    "four orders: loyal": (
        buyer(40.0, 40.0, 40.0, 40.0),
        T0,
        {"lifecycle:loyal", "tier:bronze"},
    ),
    "one ms before 90 days: still new": (
        buyer(40.0),
        AT_RISK - 1,
        {"lifecycle:new", "tier:bronze"},
    ),
    "exactly 90 days: at_risk": (buyer(40.0), AT_RISK, {"lifecycle:at_risk", "tier:bronze"}),
    "recency overrides frequency at 90 days": (
        buyer(40.0, 40.0, 40.0, 40.0),
        AT_RISK,
        {"lifecycle:at_risk", "tier:bronze"},
    ),
    "one ms before 180 days: at_risk": (
        buyer(40.0),
        LAPSED - 1,
        {"lifecycle:at_risk", "tier:bronze"},
    ),
    "exactly 180 days: lapsed": (buyer(40.0), LAPSED, {"lifecycle:lapsed", "tier:bronze"}),
    "revenue just under 250: bronze": (buyer(249.99), T0, {"lifecycle:new", "tier:bronze"}),
    "revenue 250 exactly: silver": (buyer(250.0), T0, {"lifecycle:new", "tier:silver"}),
    "250 over two orders: silver": (buyer(200.0, 50.0), T0, {"lifecycle:active", "tier:silver"}),
    "revenue 1000: gold": (buyer(1000.0), T0, {"lifecycle:new", "tier:gold"}),
    "rfm cell of a buyer": (
        buyer(40.0, rfm=make_rfm(5, 5, 5)),
        T0,
        {"lifecycle:new", "tier:bronze", "rfm:champions"},
    ),
    "an rfm without orders is no membership": (
        Profile(CID, rfm=make_rfm(5, 5, 5)),
        T0,
        {"lifecycle:prospect"},
    ),
    "no rfm yet: no rfm membership": (buyer(40.0), T0, {"lifecycle:new", "tier:bronze"}),
}


@pytest.mark.parametrize(
    ("profile", "now", "expected"), MEMBERSHIP_CASES.values(), ids=MEMBERSHIP_CASES.keys()
)
def test_memberships(profile: Profile, now: int, expected: set[str]) -> None:
    assert memberships(profile, now=now, config=SEGMENTS) == frozenset(expected)


def test_the_last_live_order_sets_recency() -> None:
    # o0 at T0 was cancelled: the last order that counts is o1, one day earlier.
    profile = Profile(
        CID,
        order_facts={
            "o0": OrderFact("cancelled", 40.0, T0),
            "o1": OrderFact("placed", 40.0, T0 - DAY_MS),
        },
    )
    assert "lifecycle:at_risk" in memberships(profile, now=AT_RISK - DAY_MS, config=SEGMENTS)


# --- changes ---------------------------------------------------------------------------------


def test_segment_changes_list_exits_before_enters_each_sorted() -> None:
    old = frozenset({"tier:bronze", "lifecycle:new", "rfm:promising"})
    new = frozenset({"tier:silver", "lifecycle:active", "rfm:promising"})
    assert segment_changes(CID, old, new, ts=T0) == (
        exit_("lifecycle:new", T0),
        exit_("tier:bronze", T0),
        enter("lifecycle:active", T0),
        enter("tier:silver", T0),
    )


def test_no_change_no_record() -> None:
    same = frozenset({"lifecycle:new", "tier:bronze"})
    assert segment_changes(CID, same, same, ts=T0) == ()


# --- next_due --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clock", "due"),
    [
        (T0, AT_RISK),
        (AT_RISK - 1, AT_RISK),
        (AT_RISK, LAPSED),
        (LAPSED - 1, LAPSED),
        (LAPSED, None),
        (LAPSED + DAY_MS, None),
    ],
    ids=["at the order", "just before 90d", "at 90d", "just before 180d", "at 180d", "after"],
)
def test_next_due_follows_the_clock(clock: int, due: int | None) -> None:
    assert next_due(buyer(40.0, clock=clock), config=SEGMENTS) == due


def test_next_due_is_none_without_orders_or_clock() -> None:
    assert next_due(Profile(CID, clock=T0), config=SEGMENTS) is None
    assert next_due(replace(buyer(40.0), clock=None), config=SEGMENTS) is None
    cancelled = Profile(CID, clock=T0, order_facts={"o1": OrderFact("cancelled", 40.0, T0)})
    assert next_due(cancelled, config=SEGMENTS) is None


# --- through the step function ---------------------------------------------------------------


def one_order() -> CustomerState:
    state = fold(new_state(CID), [Envelope(placed("ord-1", "o1", T0), "t/0", 0)], config=CONFIG)
    return state.state


def test_a_first_order_enters_new_and_bronze_and_schedules_the_at_risk_timer() -> None:
    result = step(new_state(CID), placed("ord-1", "o1", T0), config=CONFIG)
    segment_outputs = [o for o in result.outputs if isinstance(o, SegmentChange)]
    assert segment_outputs == [enter("lifecycle:new", T0), enter("tier:bronze", T0)]
    assert result.state.profile.segments == {"lifecycle:new", "tier:bronze"}
    assert indexes(result.state, config=CONFIG).due == AT_RISK


def test_a_tick_at_the_due_time_moves_lifecycle_to_at_risk() -> None:
    result = step(one_order(), LifecycleTick("tick-1", AT_RISK, CID), config=CONFIG)
    assert not result.duplicate
    assert result.outputs == (exit_("lifecycle:new", AT_RISK), enter("lifecycle:at_risk", AT_RISK))
    assert result.state.outbox[-2:] == result.outputs
    assert result.state.profile.segments == {"lifecycle:at_risk", "tier:bronze"}
    assert result.state.profile.clock == AT_RISK
    assert indexes(result.state, config=CONFIG).due == LAPSED


def test_a_tick_at_180_days_moves_at_risk_to_lapsed_and_schedules_nothing() -> None:
    state = step(one_order(), LifecycleTick("tick-1", AT_RISK, CID), config=CONFIG).state
    result = step(state, LifecycleTick("tick-2", LAPSED, CID), config=CONFIG)
    assert result.outputs == (exit_("lifecycle:at_risk", LAPSED), enter("lifecycle:lapsed", LAPSED))
    assert indexes(result.state, config=CONFIG).due is None


def test_a_tick_before_the_due_time_changes_no_segment() -> None:
    result = step(one_order(), LifecycleTick("tick-0", AT_RISK - 1, CID), config=CONFIG)
    assert result.outputs == ()
    assert result.state.profile.segments == {"lifecycle:new", "tier:bronze"}
    assert result.state.profile.clock == AT_RISK - 1


def test_a_redelivered_tick_does_nothing() -> None:
    tick = LifecycleTick("tick-1", AT_RISK, CID)
    once = step(one_order(), tick, config=CONFIG, source="internal/0", offset=7).state
    # The same record again (same offset): a duplicate.
    again = step(once, tick, config=CONFIG, source="internal/0", offset=7)
    assert again.duplicate and again.outputs == ()
    assert (again.state.profile, again.state.outbox) == (once.profile, once.outbox)
    # The same id under another offset: ticks take no place in the id window (each claim
    # has a new id), and applying it again changes nothing.
    copy = step(once, tick, config=CONFIG, source="internal/0", offset=8)
    assert copy.outputs == () and copy.state.applied.recent_ids == once.applied.recent_ids
    assert (copy.state.profile, copy.state.outbox) == (once.profile, once.outbox)
    # A second timer for the same moment (new id) finds nothing left to change.
    other = step(once, LifecycleTick("tick-1b", AT_RISK, CID), config=CONFIG)
    assert not other.duplicate and other.outputs == ()
    assert other.state.profile == once.profile


def test_any_event_past_the_due_time_moves_lifecycle_at_the_due_time_without_a_tick() -> None:
    """Contract section 4: at exactly last order + N days, whatever moved the clock."""
    result = step(one_order(), Click("k1", AT_RISK + 5, CID, "page_view"), config=CONFIG)
    assert result.outputs == (
        exit_("lifecycle:new", AT_RISK),
        enter("lifecycle:at_risk", AT_RISK),
    )


def test_an_event_past_both_boundaries_steps_through_each_at_its_time() -> None:
    lapsed_at = AT_RISK + 90 * DAY_MS  # 180 days after the order
    result = step(one_order(), Click("k1", lapsed_at + 7, CID, "page_view"), config=CONFIG)
    assert result.outputs == (
        exit_("lifecycle:new", AT_RISK),
        enter("lifecycle:at_risk", AT_RISK),
        exit_("lifecycle:at_risk", lapsed_at),
        enter("lifecycle:lapsed", lapsed_at),
    )


def test_an_order_after_a_missed_boundary_still_passes_through_it() -> None:
    late = step(one_order(), Order("o2", AT_RISK + 5, CID, "o-2", total=10.0), config=CONFIG)
    lifecycle = [(c.segment, c.change, c.ts) for c in late.outputs if c.segment.startswith("lif")]
    assert lifecycle == [
        ("lifecycle:new", "exit", AT_RISK),
        ("lifecycle:at_risk", "enter", AT_RISK),
        ("lifecycle:at_risk", "exit", AT_RISK + 5),
        ("lifecycle:active", "enter", AT_RISK + 5),
    ]


def test_a_late_old_event_never_moves_lifecycle_backwards() -> None:
    at_risk = step(one_order(), LifecycleTick("tick-1", AT_RISK, CID), config=CONFIG).state
    late = step(at_risk, Click("k-old", T0 + DAY_MS, CID, "page_view"), config=CONFIG)
    assert not late.duplicate
    assert late.outputs == ()
    assert late.state.profile.clock == AT_RISK  # the clock is the max event time
    assert late.state.profile.segments == {"lifecycle:at_risk", "tier:bronze"}
    assert late.state.profile.last_seen == T0 + DAY_MS  # the event itself is recorded


def test_a_late_tick_changes_nothing() -> None:
    at_risk = step(one_order(), LifecycleTick("tick-2", AT_RISK + DAY_MS, CID), config=CONFIG)
    late = step(at_risk.state, LifecycleTick("tick-1", AT_RISK, CID), config=CONFIG)
    assert late.outputs == ()
    assert late.state.profile == at_risk.state.profile


def test_a_second_order_leaves_new_for_active_and_reschedules() -> None:
    state = step(one_order(), LifecycleTick("tick-1", AT_RISK, CID), config=CONFIG).state
    result = step(state, placed("ord-2", "o2", AT_RISK + 1, total=250.0), config=CONFIG)
    changes = [o for o in result.outputs if isinstance(o, SegmentChange)]
    assert changes == [
        exit_("lifecycle:at_risk", AT_RISK + 1),
        exit_("tier:bronze", AT_RISK + 1),
        enter("lifecycle:active", AT_RISK + 1),
        enter("tier:silver", AT_RISK + 1),
    ]
    assert indexes(result.state, config=CONFIG).due == AT_RISK + 1 + 90 * DAY_MS


def test_the_rfm_population_entry_is_rewritten_only_when_it_moves() -> None:
    first = one_order()
    entry = indexes(first, config=CONFIG, before=new_state(CID))
    assert (entry.buyer, entry.buyer_changed) == ((T0, 1, 40.0), True)
    browsed = step(first, Click("k-1", T0 + DAY_MS, CID, "page_view"), config=CONFIG).state
    unchanged = indexes(browsed, config=CONFIG, before=first)
    assert (unchanged.buyer_changed, unchanged.segment_changed) == (False, False)
    again = step(browsed, placed("ord-2", "o2", T0 + 2 * DAY_MS), config=CONFIG).state
    moved = indexes(again, config=CONFIG, before=browsed)
    assert (moved.buyer, moved.buyer_changed) == ((T0 + 2 * DAY_MS, 2, 80.0), True)


def test_a_browser_who_never_bought_writes_no_rfm_entries() -> None:
    browsed = step(new_state(CID), Click("k-1", T0, CID, "page_view"), config=CONFIG).state
    entry = indexes(browsed, config=CONFIG, before=new_state(CID))
    assert (entry.buyer, entry.buyer_changed, entry.segment_changed) == (None, False, False)


def test_an_order_consumed_after_later_clicks_enters_at_risk_at_its_due_time() -> None:
    """Consumed after clicks of months later (its topic lagged behind), the order still
    puts the customer at risk exactly 90 days after it, not when it was read."""
    browsing = step(new_state(CID), Click("k1", AT_RISK + DAY_MS, CID, "page_view"), config=CONFIG)
    late = step(browsing.state, placed("ord-1", "o1", T0), config=CONFIG)
    lifecycle = [
        (c.segment, c.change, c.ts)
        for c in late.outputs
        if isinstance(c, SegmentChange) and c.segment.startswith("lifecycle:")
    ]
    assert lifecycle == [
        ("lifecycle:prospect", "exit", AT_RISK),
        ("lifecycle:at_risk", "enter", AT_RISK),
    ]
