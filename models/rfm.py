"""RFM scores and segments (contract section 4).

Scores. The population is every customer with at least one live order. For each
dimension, recency (whole days since the last order, ``floor((now -
last_order_at) / 86_400_000)``, fewer is better), frequency (live orders, more is
better) and monetary (revenue, more is better)::

    score = min(5, 1 + floor(5 * (worse + equal / 2) / population))

where ``worse`` is the number of customers strictly worse on that dimension and
``equal`` the number tied with the customer, the customer included: the customer
sits at the middle of their tie (the mid-rank). So the top fifth scores 5, the
bottom fifth 1, and ties score alike, at the middle of the ranks they share.
Consequences worth knowing: a population of one scores 3, 3, 3, and so does a
dimension on which everybody ties; the cap binds only for the best customers
(``worse + equal / 2`` can reach ``population - 1/2``, i.e. 5.5 fifths). Recency
is in whole days, so two orders on the same day-distance tie; a last order after
``now`` (an ``as_of`` in the past) counts as 0 days.

Segments. The segment is read from R and FM, where FM is the mean of F and M
rounded half up: ``FM = floor((F + M + 1) / 2)`` (F 4 and M 5 give FM 5; F 1 and
M 2 give FM 2). Every cell of the 5 x 5 grid has exactly one segment:

| R | FM=1 | FM=2 | FM=3 | FM=4 | FM=5 |
|---|------|------|------|------|------|
| 5 | new_customers | potential_loyalists | potential_loyalists | champions | champions |
| 4 | promising | potential_loyalists | potential_loyalists | loyal_customers | champions |
| 3 | about_to_sleep | about_to_sleep | need_attention | loyal_customers | loyal_customers |
| 2 | hibernating | hibernating | at_risk | at_risk | cant_lose_them |
| 1 | lost | lost | at_risk | at_risk | cant_lose_them |

* ``champions``: bought very recently, often and for a lot.
* ``loyal_customers``: high frequency and value, recent enough.
* ``potential_loyalists``: recent, moderate frequency and value.
* ``new_customers``: very recent, first small purchases.
* ``promising``: recent, still little frequency and value.
* ``need_attention``: middle of the road on both axes.
* ``about_to_sleep``: middling recency, low frequency and value.
* ``at_risk``: used to buy fairly often, not for a long while.
* ``cant_lose_them``: the best frequency and value, but gone quiet.
* ``hibernating``: long since the last order, low frequency and value.
* ``lost``: the least recent, low frequency and value.

Computation. ``score_population`` is exact for a whole population in
O(n log n) (each dimension sorted once, ``bisect`` counts the strictly worse and
the tied); it is the reference for the periodic refresh. ``score_one`` turns
counts obtained elsewhere (e.g. Redis ``ZCOUNT`` on sorted sets) into an ``Rfm``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

DAY_MS = 86_400_000
T = TypeVar("T", int, float)

#: Segment names in the order of the docstring's list.
SEGMENTS: tuple[str, ...] = (
    "champions",
    "loyal_customers",
    "potential_loyalists",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose_them",
    "hibernating",
    "lost",
)

#: R score -> segment for FM = 1..5 (the docstring's table, row for row).
SEGMENT_GRID: Mapping[int, tuple[str, str, str, str, str]] = {
    5: ("new_customers", "potential_loyalists", "potential_loyalists", "champions", "champions"),
    4: ("promising", "potential_loyalists", "potential_loyalists", "loyal_customers", "champions"),
    3: ("about_to_sleep", "about_to_sleep", "need_attention", "loyal_customers", "loyal_customers"),
    2: ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose_them"),
    1: ("lost", "lost", "at_risk", "at_risk", "cant_lose_them"),
}


@dataclass(frozen=True, slots=True)
class Rfm:
    """Scores 1..5, ``code`` such as ``"545"`` (R, F, M) and the segment of (R, FM)."""

    r: int
    f: int
    m: int
    code: str
    segment: str


def rfm_score(worse: int, equal: int, population: int) -> int:
    """``min(5, 1 + floor(5 * (worse + equal / 2) / population))``, in integers.

    Needs ``worse >= 0``, ``equal >= 1`` (the customer is tied with themselves) and
    ``worse + equal <= population``.
    """
    if population < 1:
        raise ValueError(f"population must be >= 1, got {population}")
    if worse < 0 or equal < 1 or worse + equal > population:
        raise ValueError(
            f"need worse >= 0, equal >= 1 and worse + equal <= population ({population}), "
            f"got worse {worse} and equal {equal}"
        )
    return min(5, 1 + (5 * (2 * worse + equal)) // (2 * population))


def recency_days(last_order_at: int, now: int) -> int:
    """Whole days since the last order: ``floor((now - last_order_at) / day)``, at least 0."""
    return max((now - last_order_at) // DAY_MS, 0)


def fm_score(f: int, m: int) -> int:
    """Mean of F and M rounded half up (4.5 -> 5)."""
    return (f + m + 1) // 2


def rfm_segment(r: int, f: int, m: int) -> str:
    """The segment of the (R, FM) cell; raises ``ValueError`` for a score outside 1..5."""
    for name, score in (("r", r), ("f", f), ("m", m)):
        if not 1 <= score <= 5:
            raise ValueError(f"{name} must be a score between 1 and 5, got {score}")
    return SEGMENT_GRID[r][fm_score(f, m) - 1]


def make_rfm(r: int, f: int, m: int) -> Rfm:
    """An ``Rfm`` from its three scores (validated by ``rfm_segment``)."""
    return Rfm(r=r, f=f, m=m, code=f"{r}{f}{m}", segment=rfm_segment(r, f, m))


@dataclass(frozen=True, slots=True)
class Standing:
    """Where one customer stands on one dimension: strictly worse, and tied (self included)."""

    worse: int
    equal: int


def score_one(
    mine: tuple[int, int, float],
    *,
    r: Standing,
    f: Standing,
    m: Standing,
    population: int,
) -> Rfm:
    """One customer's ``Rfm`` from counts computed elsewhere (e.g. Redis ``ZCOUNT``).

    ``mine`` is ``(last_order_at, orders, revenue)``; a customer without orders is
    not in the population and has no RFM (``ValueError``), as are counts out of range.
    """
    _, orders, _ = mine
    if orders <= 0:
        raise ValueError("a customer without orders is not in the RFM population")
    return make_rfm(
        rfm_score(r.worse, r.equal, population),
        rfm_score(f.worse, f.equal, population),
        rfm_score(m.worse, m.equal, population),
    )


def standing(ranked: list[T], value: T, *, more_is_better: bool) -> Standing:
    """Counts of ``ranked`` (sorted ascending) strictly worse than and equal to ``value``."""
    below = bisect.bisect_left(ranked, value)
    above = len(ranked) - bisect.bisect_right(ranked, value)
    equal = len(ranked) - below - above
    return Standing(worse=below if more_is_better else above, equal=equal)


def score_population(
    customers: Mapping[str, tuple[int, int, float]], *, now: int
) -> dict[str, Rfm]:
    """Exact RFM for every customer with ``orders >= 1``, in O(n log n).

    ``customers`` maps a customer id to ``(last_order_at, orders, revenue)``;
    customers with ``orders <= 0`` are left out of the population and the result.
    """
    population = {cid: v for cid, v in customers.items() if v[1] > 0}
    n = len(population)
    days = {cid: recency_days(last, now) for cid, (last, _, _) in population.items()}
    days_sorted = sorted(days.values())
    orders_sorted = sorted(orders for _, orders, _ in population.values())
    revenue_sorted = sorted(revenue for _, _, revenue in population.values())
    return {
        cid: score_one(
            mine,
            r=standing(days_sorted, days[cid], more_is_better=False),  # fewer days is better
            f=standing(orders_sorted, mine[1], more_is_better=True),
            m=standing(revenue_sorted, mine[2], more_is_better=True),
            population=n,
        )
        for cid, mine in population.items()
    }
