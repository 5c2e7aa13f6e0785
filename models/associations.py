"""Products bought together: streaming basket counts and the measures read from them.

Counts. A basket is one placed order that lists items; a product counts once per
basket whatever its quantity, and a product listed twice is one. The state is:

* ``baskets``: the number of live baskets;
* ``items[p]``: the number of live baskets holding ``p``;
* ``partners[p][o]``: the number of live baskets holding both ``p`` and ``o``, kept on
  both sides (``partners[p][o] == partners[o][p]`` until pruning, below).

A placed order adds ``basket_delta(products, +1)``; its cancellation or refund adds
``basket_delta(products, -1)``, and only if the placement had been counted. Deltas
are sums, so the order in which orders arrive does not matter, but a delta applied
twice counts twice: the caller applies each order's delta at most once (it knows
from the customer's dedup state whether the order is new; see
``stream/models_store.py``). An order with no items is not a basket: nothing is
known about what it held, and counting it as empty would dilute every support and
inflate every lift. A ``placed`` event that only restates an order already counted
must not add again (the same at-most-once rule).

Measures (contract section 3), for product ``this`` and partner ``other`` with
``both`` baskets holding the two::

    support    = both / baskets
    confidence = both / items[this]                 P(other | this)
    lift       = confidence / (items[other] / baskets)

computed exactly in that order, so equal counts give bit-identical floats.
``associations_for`` lists partners with ``both >= min_count``, best first: by lift,
then confidence, then ``both``, then product id (ascending) so that ties are
deterministic. Lift first because it is what "bought together" means (more often
than chance); ``min_count`` keeps one-off coincidences of rare products, whose
lift is huge and meaningless, off the list.

Bounded memory (``prune_partners``). Pair counts grow with the square of basket
size and, over time, towards catalogue x catalogue. So each product keeps at most
``keep`` partners: a prune keeps the ``keep`` largest pair counts (ties: smaller
product id first) and drops the rest, and drops any count <= 0. Between prunes new
partners are added as they occur, so a product's partner list holds at most
``keep`` + (partners first seen since the last prune). ``items`` and ``baskets`` are
never pruned (one field per product), so every denominator stays exact.

What can be wrong as a result:

* A partner that was among the kept ``keep`` at every prune has its exact count.
* A dropped partner loses its count. If it occurs again it is counted from then on,
  so its count is at most the true one (cancellations of orders counted before the
  drop can push it to 0 or below, and such a partner is treated as absent):
  support, confidence and lift of re-admitted partners are underestimated.
* Ranking is by lift but pruning is by count, so a partner with a high lift and a
  count below the ``keep``-th largest can be missing. With ``top_k`` well below
  ``keep`` this only affects products with more than ``keep`` frequent partners.
* The two sides are pruned separately: ``p`` may list ``o`` while ``o`` has dropped
  ``p`` (a popular ``o`` has many partners, ``p`` few).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import TypeVar

#: product -> live baskets holding it.
ItemCounts = Mapping[str, int]
#: partner -> live baskets holding both it and one given product.
PartnerCounts = Mapping[str, int]

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Delta:
    """A change to the counts: ``pairs`` keys are sorted ``(smaller, larger)`` product ids."""

    baskets: int = 0
    items: Mapping[str, int] = field(default_factory=dict)
    pairs: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return self.baskets == 0 and not self.items and not self.pairs


@dataclass(frozen=True, slots=True)
class AssociationCounts:
    """The whole state in memory (the engine keeps the same layout in Redis)."""

    baskets: int = 0
    items: ItemCounts = field(default_factory=dict)
    partners: Mapping[str, PartnerCounts] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Association:
    """One entry of ``GET /products/{id}/associations``; ``baskets`` holds both products."""

    product_id: str
    support: float
    confidence: float
    lift: float
    baskets: int


def basket_delta(products: Iterable[str], sign: int) -> Delta:
    """+1 (placed) or -1 (cancelled/refunded) for one basket's distinct products and pairs."""
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign}")
    distinct = sorted(set(products))
    if not distinct:
        return Delta()
    return Delta(
        baskets=sign,
        items=dict.fromkeys(distinct, sign),
        pairs=dict.fromkeys(combinations(distinct, 2), sign),
    )


def combine_deltas(deltas: Iterable[Delta]) -> Delta:
    """One delta with the effect of all of them (entries that cancel out are left out)."""
    baskets = 0
    items: dict[str, int] = {}
    pairs: dict[tuple[str, str], int] = {}
    for delta in deltas:
        baskets += delta.baskets
        _add_into(items, delta.items)
        _add_into(pairs, delta.pairs)
    return Delta(
        baskets,
        {k: v for k, v in items.items() if v},
        {k: v for k, v in pairs.items() if v},
    )


def _add_into(target: dict[K, int], increments: Mapping[K, int]) -> None:
    for key, increment in increments.items():
        target[key] = target.get(key, 0) + increment


def partner_increments(delta: Delta) -> dict[str, dict[str, int]]:
    """The delta's pair increments as ``product -> partner -> increment``, both sides."""
    out: dict[str, dict[str, int]] = {}
    for (left, right), increment in delta.pairs.items():
        _add_into(out.setdefault(left, {}), {right: increment})
        _add_into(out.setdefault(right, {}), {left: increment})
    return out


def apply_basket(counts: AssociationCounts, delta: Delta) -> AssociationCounts:
    """New counts with ``delta`` added (copies the touched maps; for tests and small data)."""
    items = dict(counts.items)
    _add_into(items, delta.items)
    partners = dict(counts.partners)
    for product, increments in partner_increments(delta).items():
        merged = dict(partners.get(product, {}))
        _add_into(merged, increments)
        partners[product] = merged
    return AssociationCounts(counts.baskets + delta.baskets, items, partners)


def associations_for(
    product: str,
    *,
    item_counts: ItemCounts,
    pair_counts: PartnerCounts,
    baskets: int,
    min_count: int,
    top_k: int,
) -> list[Association]:
    """Partners of ``product`` with ``both >= min_count``, best first (see the module).

    ``pair_counts`` are ``product``'s partners (``partners[product]``); partners with a
    count or an item count <= 0 are left out, as is ``product`` itself.
    """
    this = item_counts.get(product, 0)
    if this <= 0 or baskets <= 0 or top_k <= 0:
        return []
    found = []
    for other, both in pair_counts.items():
        count_other = item_counts.get(other, 0)
        if other == product or both < max(min_count, 1) or count_other <= 0:
            continue
        support = both / baskets
        confidence = both / this
        lift = confidence / (count_other / baskets)
        found.append(Association(other, support, confidence, lift, both))
    found.sort(key=lambda a: (-a.lift, -a.confidence, -a.baskets, a.product_id))
    return found[:top_k]


def prune_partners(pair_counts_for_product: PartnerCounts, *, keep: int) -> dict[str, int]:
    """The partners a prune keeps: the ``keep`` largest counts > 0, ties to the smaller id."""
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    positive = [(count, partner) for partner, count in pair_counts_for_product.items() if count > 0]
    positive.sort(key=lambda item: (-item[0], item[1]))
    return {partner: count for count, partner in positive[:keep]}


def prune(counts: AssociationCounts, *, keep: int) -> AssociationCounts:
    """``prune_partners`` on every product's partners; items and baskets are unchanged."""
    partners = {p: prune_partners(c, keep=keep) for p, c in counts.partners.items()}
    return AssociationCounts(counts.baskets, counts.items, {p: c for p, c in partners.items() if c})
