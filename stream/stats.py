"""Read-only aggregates for the dashboard: the buyer population, this worker's flow, campaigns.

Two sources, two scopes, said on the page too:

* **Redis** (every worker answers the same): the RFM buyer population scored
  exactly at the engine clock (``models.rfm.score_population``) and counted
  in an R x F grid with average revenue per cell, RFM segments, spend tiers
  and lifecycle stages of buyers; the strongest product pairs among the best
  sellers (``stream.models_store``); campaign results once attribution writes
  them (an absent key is an empty list). Prospects (no live order) are in no
  index, so they are not counted.
* **this worker's Prometheus registry**: counter snapshots sampled in memory
  (``Sampler``) give events/s, deadletters/s and decision latency over the
  last minute as deltas; decision outcomes and suppression reasons are
  totals since the worker started. Freshness is wall time minus the
  event-time watermark. Across workers, Prometheus sums the same counters.

Nothing here writes. Redis aggregates are cached for a few seconds (longer
when the population is so large that scoring it takes a while), computed by
one caller at a time, with the scoring itself in a thread so the worker's
event loop keeps serving its partitions.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any, Protocol

import orjson
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from models.associations import Association
from models.clock import engine_now, format_ts
from models.lifecycle import lifecycle_stage
from models.rfm import SEGMENTS, score_population
from models.segments import SegmentConfig
from models.tiers import tier_for
from stream.keys import assoc_items_key
from stream.models_store import ModelsStore

#: Lifecycle stages a buyer can be in, in funnel order (``prospect`` has no order).
BUYER_STAGES = ("new", "active", "loyal", "at_risk", "lapsed")
SCORES = (1, 2, 3, 4, 5)
OUTCOMES = ("accepted", "duplicate", "rejected")
#: Rows read from the optional campaign hash: a bound on the page's cost.
MAX_HASH_ROWS = 500
TOP_PAIRS = 10
TOP_SELLERS = 20

Labels = tuple[tuple[str, str], ...]
SampleKey = tuple[str, Labels]

EVENTS = "rapport_events_total"
DEADLETTERS = "rapport_deadletter_total"
DECISIONS = "rapport_decisions_total"
OFFERS = "rapport_offers_total"
MESSAGES = "rapport_messages_total"
LATENCY_BUCKET = "rapport_event_to_decision_seconds_bucket"
WATERMARK = "rapport_event_time_watermark_seconds"
WATCHED = frozenset({EVENTS, DEADLETTERS, DECISIONS, OFFERS, MESSAGES, LATENCY_BUCKET, WATERMARK})


# --- the buyer population ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GridCell:
    f: int
    customers: int
    avg_revenue: float | None


@dataclass(frozen=True, slots=True)
class GridRow:
    r: int
    cells: tuple[GridCell, ...]


@dataclass(frozen=True, slots=True)
class Count:
    name: str
    customers: int


@dataclass(frozen=True, slots=True)
class PopulationStats:
    """The buyer population at ``now``: grid rows R 5..1, cells F 1..5."""

    buyers: int
    revenue: float
    grid: tuple[GridRow, ...]
    segments: tuple[Count, ...]
    tiers: tuple[Count, ...]
    lifecycle: tuple[Count, ...]


def population_stats(
    buyers: Mapping[str, tuple[int, int, float]], *, now: int, config: SegmentConfig
) -> PopulationStats:
    """Exact RFM cells, segments, tiers and lifecycle stages of every buyer at ``now``.

    ``buyers`` maps a customer to ``(last_order_at, orders, revenue)`` as indexed
    in Redis; customers without live orders are not buyers and are left out.
    """
    scores = score_population(buyers, now=now)
    count: dict[tuple[int, int], int] = {}
    spend: dict[tuple[int, int], float] = {}
    segments = dict.fromkeys(SEGMENTS, 0)
    tiers = {name: 0 for name, _ in config.tiers.tiers}
    stages = dict.fromkeys(BUYER_STAGES, 0)
    revenue_total = 0.0
    for cid, rfm in scores.items():
        last, orders, revenue = buyers[cid]
        cell = (rfm.r, rfm.f)
        count[cell] = count.get(cell, 0) + 1
        spend[cell] = spend.get(cell, 0.0) + revenue
        segments[rfm.segment] = segments.get(rfm.segment, 0) + 1
        tier = tier_for(orders, revenue, config=config.tiers)
        if tier is not None:
            tiers[tier] += 1
        stage = lifecycle_stage(orders, last, now=now, config=config.lifecycle)
        stages[stage] = stages.get(stage, 0) + 1
        revenue_total += revenue
    grid = tuple(
        GridRow(
            r=r,
            cells=tuple(
                GridCell(
                    f=f,
                    customers=count.get((r, f), 0),
                    avg_revenue=round(spend[(r, f)] / count[(r, f)], 2)
                    if (r, f) in count
                    else None,
                )
                for f in SCORES
            ),
        )
        for r in reversed(SCORES)
    )
    return PopulationStats(
        buyers=len(scores),
        revenue=round(revenue_total, 2),
        grid=grid,
        segments=tuple(Count(name, n) for name, n in segments.items()),
        tiers=tuple(Count(name, n) for name, n in tiers.items()),
        lifecycle=tuple(Count(name, n) for name, n in stages.items()),
    )


# --- campaign rows ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CampaignRow:
    campaign: str
    sent: int | None = None
    suppressed: int | None = None
    holdout: int | None = None
    converted: int | None = None
    uplift: float | None = None
    uplift_low: float | None = None
    uplift_high: float | None = None


class CampaignSource(Protocol):
    """Where campaign results come from (attribution and uplift); may be empty."""

    async def __call__(self) -> list[CampaignRow]: ...


async def read_json_hash(redis: Redis, key: str, *, limit: int = MAX_HASH_ROWS) -> dict[str, Any]:
    """Up to ``limit`` fields of a hash whose values are JSON objects; others are skipped."""
    found: dict[str, Any] = {}
    async for name, raw in redis.hscan_iter(key, count=limit):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            found[name.decode() if isinstance(name, bytes) else str(name)] = value
        if len(found) >= limit:
            break
    return found


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def campaign_rows(raw: Mapping[str, Mapping[str, Any]]) -> list[CampaignRow]:
    rows = [
        CampaignRow(
            campaign=name,
            sent=_count(v.get("sent")),
            suppressed=_count(v.get("suppressed")),
            holdout=_count(v.get("holdout")),
            converted=_count(v.get("converted")),
            uplift=_number(v.get("uplift")),
            uplift_low=_number(v.get("uplift_low")),
            uplift_high=_number(v.get("uplift_high")),
        )
        for name, v in raw.items()
    ]
    return sorted(rows, key=lambda row: (-(row.sent or 0), row.campaign))


# --- product associations (stream.models_store) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Pair:
    """Two products bought together; ``product_id`` is the better seller of the two."""

    product_id: str
    other_product_id: str
    support: float
    confidence: float  # P(other | product)
    lift: float
    baskets: int


class PairSource(Protocol):
    """Where the strongest product pairs come from; may be empty."""

    async def __call__(self) -> list[Pair]: ...


def strongest_pairs(
    by_product: Iterable[tuple[str, Iterable[Association]]], *, limit: int = TOP_PAIRS
) -> list[Pair]:
    """Each unordered pair once, from the side listed first; highest lift, then most baskets.

    ``by_product`` lists products best seller first, each with its associations as
    ``GET /products/{id}/associations`` answers them.
    """
    seen: set[frozenset[str]] = set()
    pairs = []
    for product, associations in by_product:
        for a in associations:
            key = frozenset((product, a.product_id))
            if key in seen:
                continue
            seen.add(key)
            pairs.append(Pair(product, a.product_id, a.support, a.confidence, a.lift, a.baskets))
    pairs.sort(key=lambda p: (-p.lift, -p.baskets, p.product_id, p.other_product_id))
    return pairs[:limit]


def store_pairs(
    models: ModelsStore, *, sellers: int = TOP_SELLERS, per_product: int = 5
) -> PairSource:
    """The strongest partners of the best sellers (products in the most live baskets).

    One read of the basket counts per product (a hash of one field per product
    ever sold), then one association read per best seller; empty until orders
    with items arrive.
    """

    async def read() -> list[Pair]:
        counts = await models.redis.hgetall(assoc_items_key(models.prefix))
        ranked = sorted(
            ((int(n), k.decode() if isinstance(k, bytes) else str(k)) for k, n in counts.items()),
            key=lambda item: (-item[0], item[1]),
        )
        best = [product for n, product in ranked[:sellers] if n > 0]
        answers = await models.associations_of(best, top_k=per_product)
        return strongest_pairs((product, answers[product]) for product in best)

    return read


# --- this worker's metrics, sampled in memory -------------------------------------------------


def read_metrics(registry: CollectorRegistry) -> dict[SampleKey, float]:
    """The watched samples of a registry, keyed by name and sorted labels."""
    values: dict[SampleKey, float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name in WATCHED:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def total(values: Mapping[SampleKey, float], name: str, **match: str) -> float:
    """Sum of a metric's samples whose labels include ``match``."""
    return sum(
        value
        for (metric, labels), value in values.items()
        if metric == name and all((k, v) in labels for k, v in match.items())
    )


def by_label(
    values: Mapping[SampleKey, float], name: str, *label_names: str
) -> dict[Labels, float]:
    """A metric's samples summed per combination of ``label_names``."""
    grouped: dict[Labels, float] = {}
    for (metric, labels), value in values.items():
        if metric != name:
            continue
        own = dict(labels)
        group = tuple((n, own.get(n, "")) for n in label_names)
        grouped[group] = grouped.get(group, 0.0) + value
    return grouped


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Prometheus' estimate: linear interpolation inside the bucket holding rank ``q``.

    ``buckets`` are ``(upper bound, cumulative count)``; ``None`` when empty;
    ``math.inf`` when the rank falls beyond the highest finite bound.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, cumulative in ordered:
        if cumulative >= rank:
            if math.isinf(bound):
                return math.inf
            inside = cumulative - below
            share = (rank - below) / inside if inside > 0 else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, cumulative
    return math.inf


def capped(value: float | None, buckets: Iterable[float]) -> tuple[float | None, bool]:
    """A quantile for JSON: beyond the last bound it is that bound, flagged ``above``."""
    if value is None or not math.isinf(value):
        return (round(value, 3) if value is not None else None), False
    finite = [b for b in buckets if not math.isinf(b)]
    return (max(finite) if finite else None), True


def latency_buckets(values: Mapping[SampleKey, float]) -> dict[float, float]:
    return {
        float(dict(labels)["le"]): v
        for (name, labels), v in values.items()
        if name == LATENCY_BUCKET
    }


@dataclass(frozen=True, slots=True)
class Snapshot:
    mono: float  # monotonic seconds, for rates
    wall: float  # epoch seconds, for the chart's time axis and freshness
    values: Mapping[SampleKey, float]

    @property
    def watermark(self) -> float | None:
        seconds = total(self.values, WATERMARK)
        return seconds if seconds > 0 else None


@dataclass
class Sampler:
    """Snapshots of this worker's counters over the last ``keep_seconds``."""

    registry: CollectorRegistry
    keep_seconds: float = 600.0
    samples: deque[Snapshot] = field(default_factory=deque)

    def sample(self, *, mono: float, wall: float) -> Snapshot:
        snapshot = Snapshot(mono, wall, read_metrics(self.registry))
        self.samples.append(snapshot)
        while len(self.samples) > 2 and self.samples[0].mono < mono - self.keep_seconds:
            self.samples.popleft()
        return snapshot

    def window(self, seconds: float) -> tuple[Snapshot, Snapshot] | None:
        """The oldest snapshot at most ``seconds`` before the latest, and the latest."""
        if len(self.samples) < 2:
            return None
        latest = self.samples[-1]
        first = next(s for s in self.samples if s.mono >= latest.mono - seconds)
        if first is latest:
            first = self.samples[-2]
        return first, latest


def rate(a: Snapshot, b: Snapshot, name: str, **match: str) -> float:
    elapsed = b.mono - a.mono
    if elapsed <= 0:
        return 0.0
    return max(total(b.values, name, **match) - total(a.values, name, **match), 0.0) / elapsed


@dataclass(frozen=True, slots=True)
class Rates:
    """Deltas between two snapshots, per second; all ``None`` before there are two."""

    window_seconds: float | None = None
    events_per_second: float | None = None
    by_outcome: dict[str, float] = field(default_factory=dict)
    by_topic: dict[str, float] = field(default_factory=dict)
    deadletters_per_second: float | None = None
    decision_p50_seconds: float | None = None
    decision_p50_above: bool = False  # beyond the histogram's last bound
    decision_p95_seconds: float | None = None
    decision_p95_above: bool = False


def rates(a: Snapshot, b: Snapshot) -> Rates:
    old = latency_buckets(a.values)
    latency = [(le, n - old.get(le, 0.0)) for le, n in latency_buckets(b.values).items()]
    bounds = [le for le, _ in latency]
    p50, p50_above = capped(histogram_quantile(0.5, latency), bounds)
    p95, p95_above = capped(histogram_quantile(0.95, latency), bounds)
    topics = sorted(dict(k)["topic"] for k in by_label(b.values, EVENTS, "topic"))
    return Rates(
        window_seconds=round(b.mono - a.mono, 1),
        events_per_second=round(rate(a, b, EVENTS), 2),
        by_outcome={o: round(rate(a, b, EVENTS, outcome=o), 2) for o in OUTCOMES},
        by_topic={t: round(rate(a, b, EVENTS, topic=t), 2) for t in topics},
        deadletters_per_second=round(rate(a, b, DEADLETTERS), 3),
        decision_p50_seconds=p50,
        decision_p50_above=p50_above,
        decision_p95_seconds=p95,
        decision_p95_above=p95_above,
    )


@dataclass(frozen=True, slots=True)
class Totals:
    """This worker's counters since it started, and where its event time stands."""

    watermark: str | None
    freshness_seconds: float | None
    totals: dict[str, float]
    decisions: list[dict[str, Any]]
    suppression: list[dict[str, Any]]


def totals(latest: Snapshot | None, *, wall: float, watermark: float | None) -> Totals:
    """``watermark`` (epoch s, e.g. the Redis clock) stands in until the worker has its own."""
    values = latest.values if latest is not None else {}
    own = latest.watermark if latest is not None else None
    mark = own if own is not None else watermark
    return Totals(
        watermark=format_ts(int(mark * 1000)) if mark is not None else None,
        freshness_seconds=round(max(wall - mark, 0.0), 1) if mark is not None else None,
        totals={
            "events": total(values, EVENTS),
            "offers": total(values, OFFERS),
            "messages": total(values, MESSAGES),
            "decisions": total(values, DECISIONS),
            "deadletters": total(values, DEADLETTERS),
        },
        decisions=[
            {"outcome": dict(k)["outcome"], "count": int(v)}
            for k, v in sorted(by_label(values, DECISIONS, "outcome").items())
        ],
        suppression=suppression_reasons(values),
    )


def worker_flow(
    sampler: Sampler, *, window: float, wall: float, watermark: float | None
) -> dict[str, Any]:
    """Rates over the window, totals, and the per-interval history for the charts."""
    span = sampler.window(window)
    latest = sampler.samples[-1] if sampler.samples else None
    return {
        **asdict(rates(*span) if span is not None else Rates()),
        **asdict(totals(latest, wall=wall, watermark=watermark)),
        "history": history(sampler),
    }


def suppression_reasons(values: Mapping[SampleKey, float]) -> list[dict[str, Any]]:
    """Decisions not sent, by outcome and reason, most frequent first."""
    rows = [
        {"outcome": dict(k)["outcome"], "reason": dict(k)["reason"], "count": int(v)}
        for k, v in by_label(values, DECISIONS, "outcome", "reason").items()
        if dict(k)["outcome"] != "sent" and v > 0
    ]
    return sorted(rows, key=lambda row: (-row["count"], row["reason"]))


def history(sampler: Sampler) -> dict[str, list[float | None]]:
    """Per sampling interval: events/s by outcome and freshness, for the charts."""
    series: dict[str, list[float | None]] = {
        "t": [],
        "accepted": [],
        "duplicate": [],
        "rejected": [],
        "freshness": [],
    }
    for a, b in pairwise(sampler.samples):
        series["t"].append(round(b.wall, 3))
        for outcome in OUTCOMES:
            series[outcome].append(round(rate(a, b, EVENTS, outcome=outcome), 2))
        mark = b.watermark
        series["freshness"].append(round(max(b.wall - mark, 0.0), 1) if mark else None)
    return series


# --- the cached whole ------------------------------------------------------------------------


class PopulationReader(Protocol):
    """What the dashboard needs from ``stream.store.Store``."""

    redis: Redis
    prefix: str

    async def population(self) -> Any: ...

    async def read_clock(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class RedisPart:
    computed_at: float
    seconds: float
    clock: int | None
    now: int
    population: PopulationStats
    campaigns: list[CampaignRow]
    associations: list[Pair]


class DashboardStats:
    """Everything the dashboard shows, as one JSON-ready dict.

    Redis aggregates are recomputed at most every ``ttl`` seconds, or every five
    times the last computation took, whichever is longer; concurrent callers
    share one computation.
    """

    def __init__(
        self,
        store: PopulationReader,
        registry: CollectorRegistry,
        *,
        clock_mode: str,
        segments: Callable[[], SegmentConfig],
        currency: str,
        campaigns: CampaignSource,
        associations: PairSource | None = None,
        ttl: float = 3.0,
        window: float = 60.0,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.sampler = Sampler(registry)
        self.clock_mode = clock_mode
        self.segments = segments
        self.currency = currency
        self.campaigns: CampaignSource = campaigns
        self.associations: PairSource = associations or store_pairs(
            ModelsStore(store.redis, store.prefix)
        )
        self.ttl = ttl
        self.window = window
        self._wall = wall
        self._mono = mono
        self._cached: RedisPart | None = None
        self._lock = asyncio.Lock()

    def sample(self) -> None:
        """Take one snapshot of this worker's counters (called by a timer)."""
        self.sampler.sample(mono=self._mono(), wall=self._wall())

    async def data(self) -> dict[str, Any]:
        if not self.sampler.samples or self._mono() - self.sampler.samples[-1].mono >= 1.0:
            self.sample()
        part = await self._redis_part()
        wall = self._wall()
        clock_s = part.clock / 1000 if part.clock is not None else None
        worker = worker_flow(self.sampler, window=self.window, wall=wall, watermark=clock_s)
        return {
            "generated_at": format_ts(int(wall * 1000)),
            "engine_clock": format_ts(part.now),
            "clock_mode": self.clock_mode,
            "currency": self.currency,
            "population_computed_at": format_ts(int(part.computed_at * 1000)),
            "population_seconds": round(part.seconds, 3),
            "worker": worker,
            "rfm": asdict(part.population),
            "prospects_indexed": False,
            "campaigns": [asdict(row) for row in part.campaigns],
            "associations": [asdict(a) for a in part.associations],
        }

    async def _redis_part(self) -> RedisPart:
        async with self._lock:
            cached = self._cached
            if cached is not None:
                age = self._wall() - cached.computed_at
                if age < max(self.ttl, 5 * cached.seconds):
                    return cached
            self._cached = await self._compute()
            return self._cached

    async def _compute(self) -> RedisPart:
        started = self._mono()
        clock = await self.store.read_clock()
        wall = self._wall()
        now = engine_now(clock, int(wall * 1000), mode=self.clock_mode)
        population = await self.store.population()
        stats = await asyncio.to_thread(
            population_stats, population.buyers, now=now, config=self.segments()
        )
        campaigns, associations = await asyncio.gather(self.campaigns(), self.associations())
        return RedisPart(
            computed_at=wall,
            seconds=self._mono() - started,
            clock=clock,
            now=now,
            population=stats,
            campaigns=campaigns,
            associations=associations,
        )
