"""Repurchase rhythm: when a customer is due to buy again in a category.

Business rule. A customer's purchase occasions in a category are the distinct UTC
days (``ts // 86_400_000``) on which they bought in it (live placed orders: the
caller leaves out cancelled and refunded ones). Their intervals are the whole-day
gaps between consecutive occasions, so every interval is >= 1 day and two orders
on one day are one occasion.

Few customers have enough history to trust their own average, so their expected
interval is shrunk towards the category's population mean::

    expected = (k * prior_mean + sum(own intervals)) / (k + n)

``k`` (default 2) is how many intervals the prior is worth: with no history the
prior is used as it is, with ``n`` much larger than ``k`` the customer's own mean
dominates. Without a prior for the category the customer's own mean is used, and
with neither there is no expectation (None). The customer is due at
``last occasion's order time + expected interval``.

The population prior of a category is the mean of all customers' intervals in it,
pooled (customers with more intervals weigh more); categories with fewer than
``min_intervals`` pooled intervals get no prior. A mean is sensitive to a few very
long gaps (a customer who came back after a year); it is what the shrinkage formula
is defined for, and ``k`` bounds how much a prior can pull.

Pure: no clock; the caller gives purchase times and, to ask "is it due", ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise

DAY_MS = 86_400_000
DEFAULT_PRIOR_WEIGHT = 2.0

#: category -> (mean interval in days, number of pooled intervals).
Priors = Mapping[str, tuple[float, int]]


@dataclass(frozen=True, slots=True)
class Rhythm:
    """One customer's rhythm in one category; ``next_due_at`` is None without an estimate."""

    category: str
    last_purchase_at: int
    occasions: int
    expected_interval_days: float | None
    next_due_at: int | None


def purchase_intervals(times: Iterable[int]) -> tuple[int, ...]:
    """Whole-day gaps between the distinct purchase days of ``times`` (epoch ms), in order."""
    days = sorted({ts // DAY_MS for ts in times})
    return tuple(later - earlier for earlier, later in pairwise(days))


def population_prior(
    intervals_by_category: Mapping[str, Iterable[float]], *, min_intervals: int = 1
) -> dict[str, tuple[float, int]]:
    """Pooled mean interval per category, with the number of intervals behind it."""
    priors: dict[str, tuple[float, int]] = {}
    for category, intervals in intervals_by_category.items():
        pooled = list(intervals)
        if pooled and len(pooled) >= min_intervals:
            priors[category] = (sum(pooled) / len(pooled), len(pooled))
    return priors


def expected_interval(
    intervals: Iterable[float],
    prior: tuple[float, int] | None,
    *,
    k: float = DEFAULT_PRIOR_WEIGHT,
) -> float | None:
    """Shrunk mean interval in days: ``(k * prior_mean + sum) / (k + n)``; see the module."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    own = list(intervals)
    if prior is None or k == 0:
        return sum(own) / len(own) if own else None
    return (k * prior[0] + sum(own)) / (k + len(own))


def next_purchase_due(
    times: Iterable[int],
    prior: tuple[float, int] | None,
    *,
    k: float = DEFAULT_PRIOR_WEIGHT,
) -> int | None:
    """Epoch ms when the next purchase is expected: the last purchase + expected interval.

    None without any purchase, or with a single one and no prior.
    """
    stamps = list(times)
    if not stamps:
        return None
    interval = expected_interval(purchase_intervals(stamps), prior, k=k)
    return _due(max(stamps), interval)


def _due(last_purchase_at: int, interval_days: float | None) -> int | None:
    return None if interval_days is None else last_purchase_at + round(interval_days * DAY_MS)


def rhythms(
    times_by_category: Mapping[str, Iterable[int]],
    priors: Priors,
    *,
    k: float = DEFAULT_PRIOR_WEIGHT,
) -> dict[str, Rhythm]:
    """A customer's rhythm in every category they bought in."""
    out: dict[str, Rhythm] = {}
    for category, times in times_by_category.items():
        stamps = list(times)
        if not stamps:
            continue
        intervals = purchase_intervals(stamps)
        interval = expected_interval(intervals, priors.get(category), k=k)
        out[category] = Rhythm(
            category=category,
            last_purchase_at=max(stamps),
            occasions=len(intervals) + 1,
            expected_interval_days=interval,
            next_due_at=_due(max(stamps), interval),
        )
    return out


def due_categories(rhythms_by_category: Mapping[str, Rhythm], *, now: int) -> list[Rhythm]:
    """Rhythms due at or before ``now``, most overdue first (then by category name)."""
    due = [
        (r.next_due_at, r.category, r)
        for r in rhythms_by_category.values()
        if r.next_due_at is not None and r.next_due_at <= now
    ]
    return [r for _, _, r in sorted(due, key=lambda item: (item[0], item[1]))]
