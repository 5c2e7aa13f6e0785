"""Catalogue changes that concern customers: new arrivals, price drops, back in stock.

A catalogue event is about a product, not a customer, so its audience is
found through two population indexes (``models.customer.indexes``):

* **category affinity rank**: ``log2(score) + ref_ts / half_life`` of a
  customer's decayed affinity. Because decay is exponential, the rank does
  not change with time: the customers whose affinity is at least ``t`` at
  time ``now`` are exactly those with rank >= ``log2(t) + now / half_life``,
  one range query however long ago their affinity was last updated.
* **product watchers**: customers who viewed or wishlisted a product, with
  the time they last did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.events import CatalogUpdate


@dataclass(frozen=True, slots=True)
class ProductState:
    """What was known of a product before a catalogue update."""

    price: float | None = None
    in_stock: bool | None = None
    new_arrival: bool | None = None


def catalog_triggers(before: ProductState | None, update: CatalogUpdate) -> tuple[str, ...]:
    """Which catalogue campaigns an update sets off (an unknown product cannot drop in price)."""
    found = []
    if update.new_arrival and (before is None or not before.new_arrival):
        found.append("new_arrival")
    if (
        before is not None
        and before.price is not None
        and update.price is not None
        and update.price < before.price
    ):
        found.append("price_drop")
    if update.in_stock is True and before is not None and before.in_stock is False:
        found.append("back_in_stock")
    return tuple(found)


def affinity_rank(score: float, ref_ts: int, *, half_life_ms: float) -> float | None:
    """A time-invariant rank of a decayed score (None for scores that are not positive)."""
    if score <= 0:
        return None
    return math.log2(score) + ref_ts / half_life_ms


def rank_threshold(min_affinity: float, *, now: int, half_life_ms: float) -> float:
    """The lowest rank whose affinity at ``now`` is at least ``min_affinity``."""
    if min_affinity <= 0:
        return -math.inf
    return math.log2(min_affinity) + now / half_life_ms
