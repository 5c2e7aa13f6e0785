"""Category affinity: weighted interest per category with exponential time decay.

Business rule. Every view, cart add or purchase in a category adds a weight
(``AffinityConfig``: 1, 3 and 5 by default) that halves every ``half_life_days``
(30 by default) of event time. A customer's affinity for a category at time ``t``
is ``sum(weight_i * 2 ** (-(t - ts_i) / half_life))`` over that category's events.

State. ``Affinity`` maps a category to ``(score, ref_ts)``: the sum above evaluated
at ``ref_ts``, the latest event time seen for that category. An add at ``ts >= ref``
decays the score to ``ts`` and adds the weight; an add at ``ts < ref`` (a late
event) adds the weight decayed to ``ref``. Either way the state is the same sum,
so the result does not depend on the order events arrive in, up to float
rounding (a relative error of the order of 1e-15 per add), and a merge of two
customers' states equals the state of their combined events.

Memory bound. At most ``max_categories`` are kept. When an add or a merge goes over,
the category that would rank last is dropped: the smallest score once every score
is decayed to the latest ``ref_ts`` in the state, ties dropping the name that sorts
last. This is the one place where arrival order matters: a small category dropped
early and seen again later restarts from nothing, while in another order it might
have been kept. Only categories near the bottom of the ranking are affected.

Reading. ``affinity_at`` decays every score to ``now``; a score whose ``ref_ts`` is
after ``now`` (an ``as_of`` in the past) is used as it is, never grown backwards,
so it may include events after ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DAY_MS = 86_400_000
#: Scores below this are not shown by ``affinity_at``: the 4th decimal is the precision.
MIN_SHOWN = 0.0001

#: category -> (score as of ref_ts, ref_ts in epoch ms).
Affinity = Mapping[str, tuple[float, int]]


@dataclass(frozen=True, slots=True)
class AffinityConfig:
    """Decay and weights. ``half_life_days`` > 0, ``max_categories`` >= 1."""

    half_life_days: float = 30.0
    view_weight: float = 1.0
    cart_weight: float = 3.0
    purchase_weight: float = 5.0
    max_categories: int = 20

    def __post_init__(self) -> None:
        if not self.half_life_days > 0:
            raise ValueError(f"half_life_days must be > 0, got {self.half_life_days}")
        if self.max_categories < 1:
            raise ValueError(f"max_categories must be >= 1, got {self.max_categories}")

    @property
    def half_life_ms(self) -> float:
        return self.half_life_days * DAY_MS


def decay(score: float, ref_ts: int, to_ts: int, *, config: AffinityConfig) -> float:
    """``score`` (as of ``ref_ts``) as of ``to_ts``; never grown: earlier times return it as is."""
    if to_ts <= ref_ts:
        return score
    return score * 2.0 ** (-(to_ts - ref_ts) / config.half_life_ms)


def add_affinity(
    aff: Affinity, category: str, weight: float, ts: int, *, config: AffinityConfig
) -> dict[str, tuple[float, int]]:
    """Add ``weight`` for ``category`` at event time ``ts``; order-independent (see module doc)."""
    out = dict(aff)
    known = out.get(category)
    if known is None:
        out[category] = (weight, ts)
    else:
        score, ref = known
        if ts >= ref:
            out[category] = (decay(score, ref, ts, config=config) + weight, ts)
        else:
            out[category] = (score + decay(weight, ts, ref, config=config), ref)
    return _bounded(out, config)


def affinity_scores(aff: Affinity, *, now: int, config: AffinityConfig) -> dict[str, float]:
    """Every category's score decayed to ``now``, unrounded and unfiltered."""
    return {cat: decay(score, ref, now, config=config) for cat, (score, ref) in aff.items()}


def affinity_at(aff: Affinity, *, now: int, config: AffinityConfig) -> dict[str, float]:
    """The profile's ``affinity``: scores at ``now``, best first (ties by name), 4 decimals.

    Scores below 0.0001 (before rounding) are left out.
    """
    scores = affinity_scores(aff, now=now, config=config)
    ranked = sorted(
        ((cat, s) for cat, s in scores.items() if s >= MIN_SHOWN), key=lambda kv: (-kv[1], kv[0])
    )
    return {cat: round(s, 4) for cat, s in ranked}


def merge_affinity(
    a: Affinity, b: Affinity, *, config: AffinityConfig
) -> dict[str, tuple[float, int]]:
    """Sum per category with both scores aligned to the later ``ref_ts`` (identity resolution).

    Commutative; the result equals adding both customers' events to one state (up to
    float rounding and to categories dropped by the bound).
    """
    out = dict(a)
    for category, (score_b, ref_b) in b.items():
        known = out.get(category)
        if known is None:
            out[category] = (score_b, ref_b)
            continue
        score_a, ref_a = known
        ref = max(ref_a, ref_b)
        out[category] = (
            decay(score_a, ref_a, ref, config=config) + decay(score_b, ref_b, ref, config=config),
            ref,
        )
    return _bounded(out, config)


def _bounded(
    aff: dict[str, tuple[float, int]], config: AffinityConfig
) -> dict[str, tuple[float, int]]:
    """Drop the last-ranked categories (scores aligned to the latest ref) beyond the limit."""
    excess = len(aff) - config.max_categories
    if excess <= 0:
        return aff
    latest = max(ref for _, ref in aff.values())
    ranked = sorted(
        aff, key=lambda cat: (-decay(aff[cat][0], aff[cat][1], latest, config=config), cat)
    )
    for category in ranked[-excess:]:
        del aff[category]
    return aff
