"""Rolling windows: bucket edges, pruning, negative counts, merge and the plain form."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.windows import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    WINDOWS,
    Windows,
    add_count,
    bucket_start,
    merge_windows,
    window_counts,
    windows_from_plain,
    windows_to_plain,
)

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z: aligned to 5 min and to the hour
D0 = T0 - 10 * HOUR_MS  # 2026-11-22T00:00:00Z
ZERO = {"1h": 0, "24h": 0, "7d": 0, "30d": 0}
MAX_BUCKETS = {"5m": 13, "1h": 25, "1d": 31}


def one_event(ts: int = T0, metric: str = "views") -> Windows:
    return add_count({}, metric, ts, horizon_ms=ts)


def counts_at(w: Windows, now: int, metric: str = "views") -> tuple[int, int, int, int]:
    c = window_counts(w, now=now, metrics=(metric,))[metric]
    return c["1h"], c["24h"], c["7d"], c["30d"]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0, (1, 1, 1, 1)),
        (T0 + HOUR_MS - 1, (1, 1, 1, 1)),  # last ms of the exact hour
        (T0 + HOUR_MS, (1, 1, 1, 1)),  # far edge: the 5-min bucket still overlaps
        (T0 + 65 * MINUTE_MS - 2, (1, 1, 1, 1)),  # window's first ms = the bucket's last ms
        (T0 + 65 * MINUTE_MS - 1, (0, 1, 1, 1)),  # the bucket is wholly before the window
        (T0 + 24 * HOUR_MS, (0, 1, 1, 1)),  # hourly far edge over-counts up to an hour
        (T0 + 25 * HOUR_MS - 2, (0, 1, 1, 1)),
        (T0 + 25 * HOUR_MS - 1, (0, 0, 1, 1)),
        (D0 + 8 * DAY_MS - 2, (0, 0, 1, 1)),  # daily far edge: the whole UTC day of T0
        (D0 + 8 * DAY_MS - 1, (0, 0, 0, 1)),
        (D0 + 31 * DAY_MS - 2, (0, 0, 0, 1)),
        (D0 + 31 * DAY_MS - 1, (0, 0, 0, 0)),
        (T0 - 1, (0, 0, 1, 1)),  # before the event: later 5-min/hour buckets are not counted
    ],
)
def test_window_edges_of_one_event(now: int, expected: tuple[int, int, int, int]) -> None:
    assert counts_at(one_event(T0), now) == expected


def test_near_edge_counts_the_bucket_holding_now_whole() -> None:
    """Only for an ``as_of`` before the high-water mark: a later event in the same bucket counts."""
    w = add_count({}, "views", T0 + 10 * MINUTE_MS, horizon_ms=T0 + 10 * MINUTE_MS)
    # now = T0: the 5-min bucket of the event starts later (not counted); its hour has begun
    assert counts_at(w, T0) == (0, 1, 1, 1)
    assert counts_at(w, T0 - 1) == (0, 0, 1, 1)
    assert counts_at(w, D0 - 1) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("offsets_min", "now_min", "expected"),
    [
        ([0, 1, 2], 2, (3, 3, 3, 3)),
        ([0, 30, 59, 61], 61, (4, 4, 4, 4)),  # first bucket [0, 5) still holds ms 1..4
        ([0, 30, 59, 66], 66, (3, 4, 4, 4)),  # window (6, 66]: bucket [0, 5) dropped
        ([0, 30, 59, 66], 120, (1, 4, 4, 4)),  # window (60, 120]: buckets from [60, 65)
        ([0, 24 * 60, 24 * 60 + 1], 24 * 60 + 1, (2, 3, 3, 3)),
    ],
)
def test_counts_of_several_events(
    offsets_min: list[int], now_min: int, expected: tuple[int, int, int, int]
) -> None:
    w: Windows = {}
    horizon = T0
    for minute in offsets_min:
        ts = T0 + minute * MINUTE_MS
        horizon = max(horizon, ts)
        w = add_count(w, "views", ts, horizon_ms=horizon)
    assert counts_at(w, T0 + now_min * MINUTE_MS) == expected


def test_every_metric_gets_all_four_windows_and_forced_metrics_are_zero() -> None:
    w = add_count(one_event(T0, "orders"), "views", T0, n=3, horizon_ms=T0)
    assert window_counts(w, now=T0, metrics=("views", "carts", "orders")) == {
        "carts": ZERO,
        "orders": {"1h": 1, "24h": 1, "7d": 1, "30d": 1},
        "views": {"1h": 3, "24h": 3, "7d": 3, "30d": 3},
    }
    assert window_counts({}, now=T0) == {}
    assert list(window_counts(w, now=T0)) == ["orders", "views"]


def test_adding_n_and_a_cancellation_removes_the_bucket() -> None:
    w = add_count({}, "orders", T0, n=2, horizon_ms=T0)
    w = add_count(w, "orders", T0 + HOUR_MS, horizon_ms=T0 + HOUR_MS)
    w = add_count(w, "orders", T0, n=-1, horizon_ms=T0 + HOUR_MS)  # one order cancelled
    assert counts_at(w, T0 + HOUR_MS, "orders") == (2, 2, 2, 2)
    w = add_count(w, "orders", T0, n=-1, horizon_ms=T0 + HOUR_MS)
    assert w["orders"]["5m"] == {T0 + HOUR_MS: 1}  # the emptied bucket is gone, not 0
    w = add_count(w, "orders", T0 + HOUR_MS, n=-1, horizon_ms=T0 + HOUR_MS)
    assert w == {}


def test_a_removal_before_its_add_is_never_reported_negative() -> None:
    w = add_count({}, "orders", T0, n=-1, horizon_ms=T0)
    assert counts_at(w, T0, "orders") == (0, 0, 0, 0)
    assert add_count(w, "orders", T0, horizon_ms=T0) == {}


def test_add_of_zero_only_prunes_and_inputs_are_not_mutated() -> None:
    w = one_event(T0)
    before = windows_to_plain(w)
    assert add_count(w, "views", T0, n=0, horizon_ms=T0) == w
    assert add_count(w, "views", T0 + 40 * DAY_MS, n=0, horizon_ms=T0 + 40 * DAY_MS) == {}
    merge_windows(w, w, horizon_ms=T0 + 40 * DAY_MS)
    assert windows_to_plain(w) == before


@pytest.mark.parametrize(
    ("age", "kept"),
    [
        # age of the event behind the horizon -> granularities that still record it
        (0, {"5m", "1h", "1d"}),
        (60 * MINUTE_MS, {"5m", "1h", "1d"}),
        (65 * MINUTE_MS - 2, {"5m", "1h", "1d"}),  # bucket's last ms = horizon - 1h + 1
        (65 * MINUTE_MS - 1, {"1h", "1d"}),
        (25 * HOUR_MS - 2, {"1h", "1d"}),
        (25 * HOUR_MS - 1, {"1d"}),
        (30 * DAY_MS, {"1d"}),
        (31 * DAY_MS - 1, set()),  # T0's day ends 14 h after T0, before horizon - 30d
    ],
)
def test_a_late_event_is_recorded_only_where_it_can_still_count(age: int, kept: set[str]) -> None:
    horizon = T0 + age
    w = add_count(
        add_count({}, "carts", horizon, horizon_ms=horizon), "views", T0, horizon_ms=horizon
    )
    assert set(w.get("views", {})) == kept


def test_a_new_horizon_prunes_every_metric() -> None:
    w = add_count(one_event(T0, "views"), "orders", T0, horizon_ms=T0)
    later = T0 + 2 * DAY_MS
    w = add_count(w, "carts", later, horizon_ms=later)
    assert {m: set(g) for m, g in w.items()} == {
        "views": {"1d"},
        "orders": {"1d"},
        "carts": {"5m", "1h", "1d"},
    }


def test_merge_sums_buckets_and_prunes() -> None:
    a = add_count(one_event(T0, "views"), "orders", T0, horizon_ms=T0)
    b = add_count(one_event(T0 + MINUTE_MS, "views"), "carts", T0 - 2 * HOUR_MS, horizon_ms=T0)
    merged = merge_windows(a, b, horizon_ms=T0 + MINUTE_MS)
    assert window_counts(merged, now=T0 + MINUTE_MS) == {
        "carts": {"1h": 0, "24h": 1, "7d": 1, "30d": 1},
        "orders": {"1h": 1, "24h": 1, "7d": 1, "30d": 1},
        "views": {"1h": 2, "24h": 2, "7d": 2, "30d": 2},
    }
    assert set(merged["carts"]) == {"1h", "1d"}  # its 5-min bucket was beyond pruning
    assert merge_windows(a, {}, horizon_ms=T0) == a
    cancel = add_count({}, "orders", T0, n=-1, horizon_ms=T0)
    assert "orders" not in merge_windows(a, cancel, horizon_ms=T0)


def test_plain_form_is_compact_sorted_json() -> None:
    w = add_count(one_event(T0 + 5 * MINUTE_MS), "views", T0, n=2, horizon_ms=T0 + 5 * MINUTE_MS)
    plain = windows_to_plain(w)
    assert plain == {
        "views": {
            "1d": [[D0, 3]],
            "1h": [[T0, 3]],
            "5m": [[T0, 2], [T0 + 5 * MINUTE_MS, 1]],
        }
    }
    assert windows_from_plain(json.loads(json.dumps(plain))) == w
    assert windows_to_plain({}) == {}
    assert windows_from_plain({}) == {}


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"views": []},
        {"views": {"2h": []}},
        {"views": {"5m": {"0": 1}}},
        {"views": {"5m": [[T0]]}},
        {"views": {"5m": [[T0, "1"]]}},
        {"views": {"5m": [[T0, True]]}},
        {"views": {"5m": [[T0 + 1, 1]]}},  # not a bucket start
    ],
)
def test_from_plain_rejects_malformed_values(bad: object) -> None:
    with pytest.raises(ValueError):
        windows_from_plain(bad)  # type: ignore[arg-type]


def test_from_plain_drops_zero_counts() -> None:
    assert windows_from_plain({"views": {"5m": [[T0, 0]], "1h": []}}) == {}


# --- properties -------------------------------------------------------------------------

METRIC_NAMES = ("views", "carts", "orders")
events = st.lists(
    st.tuples(
        st.sampled_from(METRIC_NAMES),
        st.integers(min_value=0, max_value=45 * DAY_MS),  # offset from D0
        st.integers(min_value=1, max_value=3),
    ),
    max_size=40,
)


def fold(evts: list[tuple[str, int, int]]) -> tuple[Windows, int]:
    w: Windows = {}
    horizon = D0
    for metric, offset, n in evts:
        ts = D0 + offset
        horizon = max(horizon, ts)
        w = add_count(w, metric, ts, n, horizon_ms=horizon)
    return w, horizon


def reference(evts: list[tuple[str, int, int]], metric: str, now: int) -> dict[str, int]:
    """The documented semantics: events with bucket_start(now - W + 1) <= ts <= now."""
    out = {}
    for window, (granularity, span) in WINDOWS.items():
        first = bucket_start(now - span + 1, granularity)
        out[window] = sum(n for m, off, n in evts if m == metric and first <= D0 + off <= now)
    return out


@settings(max_examples=150, deadline=None)
@given(evts=events, later=st.integers(min_value=0, max_value=40 * DAY_MS))
def test_counts_match_the_raw_events_at_or_after_the_horizon(
    evts: list[tuple[str, int, int]], later: int
) -> None:
    w, horizon = fold(evts)
    now = horizon + later
    counts = window_counts(w, now=now, metrics=METRIC_NAMES)
    for metric in METRIC_NAMES:
        assert counts[metric] == reference(evts, metric, now)
        exact = {
            window: sum(n for m, off, n in evts if m == metric and now - span < D0 + off <= now)
            for window, (_, span) in WINDOWS.items()
        }
        for window, (granularity, _) in WINDOWS.items():  # the documented error bound
            size = {"5m": 5 * MINUTE_MS, "1h": HOUR_MS, "1d": DAY_MS}[granularity]
            slack = sum(
                n
                for m, off, n in evts
                if m == metric and now - WINDOWS[window][1] - size < D0 + off <= now
            )
            assert exact[window] <= counts[metric][window] <= slack


@settings(max_examples=100, deadline=None)
@given(evts=events, data=st.data())
def test_arrival_order_does_not_change_the_state(
    evts: list[tuple[str, int, int]], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(evts))
    assert windows_to_plain(fold(shuffled)[0]) == windows_to_plain(fold(evts)[0])


@settings(max_examples=100, deadline=None)
@given(evts=events)
def test_memory_is_bounded(evts: list[tuple[str, int, int]]) -> None:
    w: Windows = {}
    horizon = D0
    for metric, offset, n in evts:
        ts = D0 + offset
        horizon = max(horizon, ts)
        w = add_count(w, metric, ts, n, horizon_ms=horizon)
        for grans in w.values():
            for granularity, buckets in grans.items():
                assert 0 < len(buckets) <= MAX_BUCKETS[granularity]
                assert all(count != 0 for count in buckets.values())


@settings(max_examples=100, deadline=None)
@given(evts=events)
def test_cancelling_every_add_leaves_nothing(evts: list[tuple[str, int, int]]) -> None:
    w, horizon = fold(evts)
    for metric, offset, n in reversed(evts):
        w = add_count(w, metric, D0 + offset, -n, horizon_ms=horizon)
    assert w == {}


@settings(max_examples=100, deadline=None)
@given(a=events, b=events)
def test_merge_equals_folding_both_histories(
    a: list[tuple[str, int, int]], b: list[tuple[str, int, int]]
) -> None:
    wa, ha = fold(a)
    wb, hb = fold(b)
    horizon = max(ha, hb)
    merged = merge_windows(wa, wb, horizon_ms=horizon)
    assert windows_to_plain(merged) == windows_to_plain(merge_windows(wb, wa, horizon_ms=horizon))
    assert windows_to_plain(merged) == windows_to_plain(fold(a + b)[0])


@settings(max_examples=100, deadline=None)
@given(evts=events)
def test_plain_round_trip_through_json(evts: list[tuple[str, int, int]]) -> None:
    w, _ = fold(evts)
    plain = windows_to_plain(w)
    assert windows_from_plain(json.loads(json.dumps(plain))) == w
