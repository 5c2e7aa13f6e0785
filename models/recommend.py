"""Recommendation candidates, each with a reason a marketer can read (an offer's ``reason``).

Four sources, each returning ``Rec``s best first with a score in (0, 1] that orders
candidates *within* that source:

* ``bought_together``: partners of what is in the basket (or was just bought), from
  ``associations_for``; only partners bought with it more often than chance
  (``lift > min_lift``, default 1). Score: the confidence, P(partner | anchor); a
  partner of several anchors keeps its best anchor.
* ``viewed_not_bought``: products the customer looked at and has not bought. Score:
  views relative to the most viewed one.
* ``new_arrivals_for``: new products in categories the customer has an affinity for.
  Score: the category's affinity relative to the customer's top category; within a
  category, the order the arrivals were given in (give them newest first).
* ``popular_in_category``: best sellers of a category, the fallback when nothing
  personal is known. Score: sales relative to the category's best seller.

``recommend`` takes the sources in that order of priority: first all of
``bought_together`` (what goes with the basket is the most specific signal), then
``viewed_not_bought`` (expressed intent), then new arrivals, then best sellers of the
customer's top category. A product appears once, with the reason of the first source
that proposed it; products in ``exclude`` (bought, in the basket, out of stock, ...)
never appear. ``max_per_source`` caps how many one source may fill, for variety.
Scores of different sources are not compared with each other.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from models.associations import Association

BOUGHT_TOGETHER = "bought_together"
VIEWED_NOT_BOUGHT = "viewed_not_bought"
NEW_ARRIVAL = "new_arrival"
POPULAR = "popular"


@dataclass(frozen=True, slots=True)
class Rec:
    """A candidate product, why (a sentence), its score within its source, and the source."""

    product_id: str
    reason: str
    score: float
    source: str = ""


def _name(product_id: str, names: Mapping[str, str]) -> str:
    return names.get(product_id) or product_id


def _ranked(recs: Iterable[Rec]) -> list[Rec]:
    """Best first: by score, then product id (stable for equal scores)."""
    return sorted(recs, key=lambda r: (-r.score, r.product_id))


def bought_together(
    basket_products: Iterable[str],
    associations: Mapping[str, Sequence[Association]],
    *,
    product_names: Mapping[str, str] | None = None,
    min_lift: float = 1.0,
) -> list[Rec]:
    """Partners of the basket's products bought with them more often than chance."""
    names = product_names or {}
    basket = set(basket_products)
    best: dict[str, tuple[Association, str]] = {}
    for anchor in sorted(basket):
        for assoc in associations.get(anchor, ()):
            if assoc.product_id in basket or assoc.lift <= min_lift:
                continue
            held = best.get(assoc.product_id)
            if held is None or (assoc.confidence, assoc.lift) > (held[0].confidence, held[0].lift):
                best[assoc.product_id] = (assoc, anchor)
    return _ranked(
        Rec(
            product,
            f"Often bought with {_name(anchor, names)}: in {assoc.confidence:.0%} of its orders, "
            f"{assoc.lift:.1f} times the usual rate",
            assoc.confidence,
            BOUGHT_TOGETHER,
        )
        for product, (assoc, anchor) in best.items()
    )


def viewed_not_bought(
    top_viewed: Iterable[tuple[str, int]],
    purchased: Collection[str],
    product_names: Mapping[str, str] | None = None,
) -> list[Rec]:
    """Products viewed (``(product_id, views)``) and never bought, most viewed first."""
    names = product_names or {}
    views = {p: n for p, n in top_viewed if n > 0 and p not in purchased}
    if not views:
        return []
    most = max(views.values())
    return _ranked(
        Rec(
            product,
            f"Viewed {_name(product, names)} {_times(n)} without buying it",
            n / most,
            VIEWED_NOT_BOUGHT,
        )
        for product, n in views.items()
    )


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def new_arrivals_for(
    affinity: Mapping[str, float],
    arrivals: Iterable[tuple[str, str]],
    *,
    product_names: Mapping[str, str] | None = None,
) -> list[Rec]:
    """New ``(product_id, category)`` arrivals in the customer's categories, by affinity."""
    names = product_names or {}
    liked = {c: s for c, s in affinity.items() if s > 0}
    if not liked:
        return []
    top = max(liked.values())
    favourite = min(c for c, s in liked.items() if s == top)
    recs = []
    for product, category in dict(arrivals).items():
        if category in liked:
            which = "their favourite category" if category == favourite else "a category they like"
            recs.append(
                Rec(
                    product,
                    f"New in {category}, {which}: {_name(product, names)}",
                    liked[category] / top,
                    NEW_ARRIVAL,
                )
            )
    return sorted(recs, key=lambda r: -r.score)  # stable: arrival order within a category


def popular_in_category(
    category: str,
    popularity: Iterable[tuple[str, int]],
    *,
    product_names: Mapping[str, str] | None = None,
) -> list[Rec]:
    """Best sellers of ``category`` from ``(product_id, sales)``, best first."""
    names = product_names or {}
    sales = {p: n for p, n in popularity if n > 0}
    if not sales:
        return []
    ranked = sorted(sales.items(), key=lambda item: (-item[1], item[0]))
    best = ranked[0][1]
    return [
        Rec(
            product,
            f"Best seller number {rank} in {category}: {_name(product, names)}",
            n / best,
            POPULAR,
        )
        for rank, (product, n) in enumerate(ranked, start=1)
    ]


def merge_recs(
    sources: Iterable[Sequence[Rec]],
    *,
    exclude: Collection[str] = (),
    limit: int,
    max_per_source: int | None = None,
) -> list[Rec]:
    """Sources in priority order, each best first; first mention wins; at most ``limit``."""
    seen = set(exclude)
    out: list[Rec] = []
    for recs in sources:
        taken = 0
        for rec in recs:
            if len(out) >= limit or (max_per_source is not None and taken >= max_per_source):
                break
            if rec.product_id not in seen:
                seen.add(rec.product_id)
                out.append(rec)
                taken += 1
    return out


@dataclass(frozen=True, slots=True)
class RecommendInputs:
    """What is known about the customer and the shop, as plain data."""

    basket: Collection[str] = ()
    purchased: Collection[str] = ()
    top_viewed: Sequence[tuple[str, int]] = ()
    affinity: Mapping[str, float] = field(default_factory=dict)
    associations: Mapping[str, Sequence[Association]] = field(default_factory=dict)
    arrivals: Sequence[tuple[str, str]] = ()
    popularity: Mapping[str, Sequence[tuple[str, int]]] = field(default_factory=dict)
    product_names: Mapping[str, str] = field(default_factory=dict)


def recommend(
    inputs: RecommendInputs,
    *,
    exclude: Collection[str] = (),
    limit: int = 6,
    max_per_source: int | None = None,
) -> list[Rec]:
    """Up to ``limit`` products from the four sources in priority order (see the module).

    Never proposes what is in the basket, what was bought, or anything in ``exclude``.
    """
    names = inputs.product_names
    top_category = _top_category(inputs.affinity)
    popular = (
        popular_in_category(
            top_category, inputs.popularity.get(top_category, ()), product_names=names
        )
        if top_category is not None
        else []
    )
    sources = [
        bought_together(inputs.basket, inputs.associations, product_names=names),
        viewed_not_bought(inputs.top_viewed, inputs.purchased, names),
        new_arrivals_for(inputs.affinity, inputs.arrivals, product_names=names),
        popular,
    ]
    banned = {*exclude, *inputs.basket, *inputs.purchased}
    return merge_recs(sources, exclude=banned, limit=limit, max_per_source=max_per_source)


def _top_category(affinity: Mapping[str, float]) -> str | None:
    liked = [(-score, category) for category, score in affinity.items() if score > 0]
    return min(liked)[1] if liked else None
