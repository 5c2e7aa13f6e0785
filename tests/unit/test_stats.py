"""Dashboard aggregates: population grid, quantiles, sampled rates, optional hashes, caching."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from models.associations import Association
from models.segments import SegmentConfig
from stream.metrics import Metrics
from stream.stats import (
    DashboardStats,
    Sampler,
    campaign_rows,
    capped,
    histogram_quantile,
    population_stats,
    rates,
    strongest_pairs,
    totals,
)

DAY = 86_400_000
NOW = 1_795_341_600_000


def test_population_stats_counts_every_buyer_once_in_each_view() -> None:
    buyers = {
        "a": (NOW, 5, 1200.0),  # recent, frequent, gold, loyal
        "b": (NOW - 100 * DAY, 1, 40.0),  # at risk, bronze
        "c": (NOW - 200 * DAY, 2, 300.0),  # lapsed, silver
        "d": (NOW - 3 * DAY, 2, 60.0),  # active
        "none": (NOW, 0, 0.0),  # not a buyer: left out
    }
    stats = population_stats(buyers, now=NOW, config=SegmentConfig())
    assert stats.buyers == 4
    assert stats.revenue == 1600.0
    assert [row.r for row in stats.grid] == [5, 4, 3, 2, 1]
    assert all([c.f for c in row.cells] == [1, 2, 3, 4, 5] for row in stats.grid)
    cells = {(row.r, c.f): c for row in stats.grid for c in row.cells}
    assert sum(c.customers for c in cells.values()) == 4
    # mid-rank scores (R, F, M): a 555, b 211, c 134, d 432; the grid is R by F
    assert cells[(5, 5)].customers == 1 and cells[(5, 5)].avg_revenue == 1200.0  # "a"
    assert cells[(2, 1)].avg_revenue == 40.0  # "b": one customer worse on recency, fewest orders
    assert cells[(1, 3)].avg_revenue == 300.0  # "c": the oldest last order, 2 orders
    assert cells[(4, 3)].avg_revenue == 60.0  # "d"
    assert cells[(3, 3)].avg_revenue is None  # empty cell
    assert {c.name: c.customers for c in stats.tiers} == {
        "bronze": 2,
        "silver": 1,
        "gold": 1,
        "platinum": 0,
    }
    assert {c.name: c.customers for c in stats.lifecycle} == {
        "new": 0,
        "active": 1,
        "loyal": 1,
        "at_risk": 1,
        "lapsed": 1,
    }
    assert sum(c.customers for c in stats.segments) == 4


def test_empty_population_gives_an_empty_grid() -> None:
    stats = population_stats({}, now=NOW, config=SegmentConfig())
    assert stats.buyers == 0
    assert all(c.customers == 0 and c.avg_revenue is None for r in stats.grid for c in r.cells)


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, [(1.0, 0.0), (math.inf, 0.0)], None),
        (0.5, [], None),
        (0.5, [(1.0, 10.0), (2.0, 20.0), (math.inf, 20.0)], 1.0),
        (0.75, [(1.0, 10.0), (2.0, 20.0), (math.inf, 20.0)], 1.5),
        (0.95, [(1.0, 10.0), (math.inf, 20.0)], math.inf),
    ],
)
def test_histogram_quantile_interpolates_like_prometheus(
    q: float, buckets: list[tuple[float, float]], expected: float | None
) -> None:
    assert histogram_quantile(q, buckets) == expected


def test_a_quantile_beyond_the_last_bound_is_that_bound_flagged() -> None:
    assert capped(math.inf, [0.5, 300.0, math.inf]) == (300.0, True)
    assert capped(1.23456, [300.0]) == (1.235, False)
    assert capped(None, [300.0]) == (None, False)


def test_rates_are_counter_deltas_over_the_sampled_window() -> None:
    metrics = Metrics(CollectorRegistry())
    sampler = Sampler(metrics.registry)
    sampler.sample(mono=0.0, wall=1000.0)
    metrics.events.labels("orders", "accepted").inc(100)
    metrics.events.labels("clicks", "rejected").inc(20)
    metrics.deadletters.labels("clicks", "malformed").inc(20)
    metrics.event_to_decision.observe(0.02)
    sampler.sample(mono=10.0, wall=1010.0)
    first, last = sampler.window(60.0) or pytest.fail("two samples make a window")
    r = rates(first, last)
    assert r.events_per_second == 12.0
    assert r.by_outcome == {"accepted": 10.0, "duplicate": 0.0, "rejected": 2.0}
    assert r.by_topic == {"clicks": 2.0, "orders": 10.0}
    assert r.deadletters_per_second == 2.0
    assert r.decision_p95_seconds is not None and 0.01 < r.decision_p95_seconds <= 0.025


def test_window_keeps_only_the_last_minute_of_a_long_history() -> None:
    sampler = Sampler(CollectorRegistry(), keep_seconds=120.0)
    for second in range(0, 300, 2):
        sampler.sample(mono=float(second), wall=float(second))
    first, last = sampler.window(60.0) or pytest.fail("window expected")
    assert last.mono - first.mono == 60.0
    assert sampler.samples[0].mono >= 298 - 120


def test_totals_name_suppression_reasons_and_prefer_the_workers_watermark() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.decisions.labels("sent", "").inc(5)
    metrics.decisions.labels("suppressed", "no_consent:email").inc(3)
    metrics.decisions.labels("suppressed", "frequency_cap:day").inc(7)
    sampler = Sampler(metrics.registry)
    before = totals(sampler.sample(mono=0, wall=100.0), wall=100.0, watermark=40.0)
    assert before.freshness_seconds == 60.0  # no own watermark yet: the stand-in
    metrics.watermark.set(90.0)
    after = totals(sampler.sample(mono=1, wall=100.0), wall=100.0, watermark=40.0)
    assert after.freshness_seconds == 10.0
    assert [s["reason"] for s in after.suppression] == ["frequency_cap:day", "no_consent:email"]
    assert after.decisions == [
        {"outcome": "sent", "count": 5},
        {"outcome": "suppressed", "count": 10},
    ]


def test_campaign_rows_parse_leniently() -> None:
    rows = campaign_rows(
        {
            "small": {"sent": 3},
            "big": {"sent": 10, "converted": 2, "uplift": 0.05, "uplift_low": "x"},
        }
    )
    assert [r.campaign for r in rows] == ["big", "small"]
    assert rows[0].uplift == 0.05 and rows[0].uplift_low is None


def test_strongest_pairs_list_each_pair_once_by_lift() -> None:
    by_product = [
        ("shoe", [Association("sock", 0.2, 0.5, 2.0, 20), Association("hat", 0.01, 0.1, 4.0, 2)]),
        ("sock", [Association("shoe", 0.2, 0.8, 2.0, 20), Association("lace", 0.1, 0.3, 2.0, 9)]),
    ]
    pairs = strongest_pairs(by_product, limit=10)
    assert [(p.product_id, p.other_product_id) for p in pairs] == [
        ("shoe", "hat"),
        ("shoe", "sock"),  # seen from the better seller only; more baskets than sock|lace
        ("sock", "lace"),
    ]
    assert pairs[1].confidence == 0.5
    assert strongest_pairs(by_product, limit=1) == pairs[:1]


@dataclass
class FakeStore:
    buyers: dict[str, tuple[int, int, float]]
    reads: int = 0
    redis: Any = None
    prefix: str = "test:"

    async def population(self) -> Any:
        self.reads += 1

        @dataclass
        class Population:
            buyers: dict[str, tuple[int, int, float]]

        return Population(dict(self.buyers))

    async def read_clock(self) -> int | None:
        return NOW


async def test_redis_aggregates_are_cached_for_the_ttl() -> None:
    store = FakeStore({"a": (NOW, 1, 10.0)})
    clock = {"wall": 1000.0}

    async def nothing() -> list[Any]:
        return []

    stats = DashboardStats(
        store,
        CollectorRegistry(),
        clock_mode="event",
        segments=SegmentConfig,
        currency="EUR",
        campaigns=nothing,
        associations=nothing,
        ttl=3.0,
        wall=lambda: clock["wall"],
        mono=lambda: clock["wall"],
    )
    first = await stats.data()
    store.buyers["b"] = (NOW, 2, 20.0)
    clock["wall"] += 1.0
    assert (await stats.data())["rfm"]["buyers"] == first["rfm"]["buyers"] == 1
    clock["wall"] += 3.0
    assert (await stats.data())["rfm"]["buyers"] == 2
    assert store.reads == 2
    assert first["engine_clock"] == "2026-11-22T10:00:00.000Z"
    assert first["campaigns"] == [] and first["associations"] == []
