"""Lifecycle stages at their boundaries, the engine clock and the wire format of instants."""

from __future__ import annotations

import pytest

from models.clock import engine_now, format_ts
from models.lifecycle import DAY_MS, LifecycleConfig, lifecycle_stage

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
CFG = LifecycleConfig()


@pytest.mark.parametrize(
    ("orders", "last", "now", "stage"),
    [
        (0, None, T0, "prospect"),
        (0, T0, T0 + 365 * DAY_MS, "prospect"),  # 0 orders is a prospect whatever the time
        (3, None, T0, "prospect"),  # no last order known: nothing live to be recent about
        (1, T0, T0, "new"),
        (2, T0, T0, "active"),
        (3, T0, T0, "active"),
        (4, T0, T0, "loyal"),
        (40, T0, T0, "loyal"),
        # at_risk: exactly last order + 90 days; one ms earlier is the previous stage
        (1, T0, T0 + 90 * DAY_MS - 1, "new"),
        (1, T0, T0 + 90 * DAY_MS, "at_risk"),
        (3, T0, T0 + 90 * DAY_MS - 1, "active"),
        (3, T0, T0 + 90 * DAY_MS, "at_risk"),
        (4, T0, T0 + 90 * DAY_MS - 1, "loyal"),
        (4, T0, T0 + 90 * DAY_MS, "at_risk"),
        # lapsed: exactly last order + 180 days
        (4, T0, T0 + 180 * DAY_MS - 1, "at_risk"),
        (4, T0, T0 + 180 * DAY_MS, "lapsed"),
        (1, T0, T0 + 180 * DAY_MS, "lapsed"),
        (9, T0, T0 + 1000 * DAY_MS, "lapsed"),
        # an engine time before the last order (late clock) is simply "recent"
        (1, T0, T0 - DAY_MS, "new"),
    ],
)
def test_lifecycle_stage_with_default_thresholds(
    orders: int, last: int | None, now: int, stage: str
) -> None:
    assert lifecycle_stage(orders, last, now=now, config=CFG) == stage


@pytest.mark.parametrize(
    ("orders", "now", "stage"),
    [
        (1, T0 + 10 * DAY_MS - 1, "new"),
        (1, T0 + 10 * DAY_MS, "at_risk"),
        (1, T0 + 20 * DAY_MS, "lapsed"),
        (2, T0, "new"),
        (3, T0, "active"),
        (5, T0, "active"),
        (6, T0, "loyal"),
    ],
)
def test_lifecycle_thresholds_are_configuration(orders: int, now: int, stage: str) -> None:
    config = LifecycleConfig(
        active_from_orders=3, loyal_from_orders=6, at_risk_after_days=10, lapsed_after_days=20
    )
    assert lifecycle_stage(orders, T0, now=now, config=config) == stage


@pytest.mark.parametrize(
    ("watermark", "wall", "mode", "now"),
    [
        (T0, T0 + 5, "live", T0 + 5),  # idle input: live follows wall time
        (T0 + 5, T0, "live", T0 + 5),  # events ahead of the wall clock: the watermark
        (None, T0, "live", T0),
        (T0, T0 + 5, "event", T0),  # replay: only events move the clock
        (T0 + 5, T0, "event", T0 + 5),
        (None, T0, "event", 0),
    ],
)
def test_engine_now(watermark: int | None, wall: int, mode: str, now: int) -> None:
    assert engine_now(watermark, wall, mode=mode) == now


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, None),
        (0, "1970-01-01T00:00:00.000Z"),
        (999, "1970-01-01T00:00:00.999Z"),
        (T0, "2026-11-22T10:00:00.000Z"),
        (T0 + 7, "2026-11-22T10:00:00.007Z"),
        (T0 + 123, "2026-11-22T10:00:00.123Z"),
        (T0 + DAY_MS - 1, "2026-11-23T09:59:59.999Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
    ],
)
def test_format_ts(ms: int | None, text: str | None) -> None:
    assert format_ts(ms) == text
