"""Uplift of a campaign over its holdout, with confidence intervals.

**Conversion rate** (converted customers / exposed customers, per group): the
difference treatment - holdout with Newcombe's hybrid score interval (method
10 in Newcombe 1998, "Interval estimation for the difference between
independent proportions"), built from the two Wilson score intervals. Chosen
over the plain Wald interval because campaign groups are often small and
conversion rates near 0, where Wald undercovers and can leave [0, 1]; it
needs only the four counts.

**Revenue per exposed customer**: difference of means with a Welch
(unequal variances) normal interval over per-customer revenue (zeros for
customers who did not buy); fine for the group sizes where revenue uplift is
worth reading, and said so where it is shown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Interval:
    estimate: float | None
    low: float | None
    high: float | None

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def wilson(successes: int, n: int, *, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference(x1: int, n1: int, x2: int, n2: int, *, z: float = Z95) -> Interval:
    """p1 - p2 with Newcombe's hybrid score interval (None where a group is empty)."""
    if n1 == 0 or n2 == 0:
        return Interval(None, None, None)
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z=z)
    l2, u2 = wilson(x2, n2, z=z)
    delta = p1 - p2
    low = delta - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = delta + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Interval(delta, low, high)


def mean_difference(a: Sequence[float], b: Sequence[float], *, z: float = Z95) -> Interval:
    """mean(a) - mean(b) with a Welch normal interval (None with fewer than 2 per group)."""
    if len(a) < 2 or len(b) < 2:
        return Interval(None, None, None)
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1)
    half = z * math.sqrt(va / len(a) + vb / len(b))
    return Interval(ma - mb, ma - mb - half, ma - mb + half)
