"""Campaign results for marketers: treatment vs holdout, conversion and revenue uplift."""

from __future__ import annotations

from typing import Any

from agents.context import Context
from models.attribution import ALL
from models.uplift import Interval, mean_difference, rate_difference
from stream.campaign_stats import GroupResults


async def campaign_report(ctx: Context, name: str) -> dict[str, Any]:
    groups = await ctx.campaign_stats.read(name)
    treatment, holdout = groups["treatment"], groups["holdout"]
    rate = rate_difference(
        treatment.counts["converted"],
        treatment.counts["exposed"],
        holdout.counts["converted"],
        holdout.counts["exposed"],
    )
    revenue = mean_difference(_per_customer(treatment), _per_customer(holdout))
    return {
        "campaign": name,
        "treatment": _group(treatment),
        "holdout": _group(holdout),
        "uplift": {
            "conversion_rate": _interval(rate),
            "conversion_rate_method": "Newcombe hybrid score interval, 95%",
            "revenue_per_customer": _interval(revenue),
            "revenue_per_customer_method": "Welch normal interval, 95%",
            "significant": rate.excludes_zero,
        },
    }


async def all_reports(ctx: Context) -> list[dict[str, Any]]:
    names = [c.name for c in ctx.step.engine.book.campaigns] + [ALL]
    return [await campaign_report(ctx, name) for name in names]


def _per_customer(group: GroupResults) -> list[float]:
    """Converted revenue per exposed customer, zeros for those who did not buy."""
    values = list(group.revenue_by_customer.values())
    return values + [0.0] * max(0, group.counts["exposed"] - len(values))


def _group(group: GroupResults) -> dict[str, Any]:
    exposed = group.counts["exposed"]
    return {
        **{f"{kind}_customers": n for kind, n in group.counts.items()},
        "converted_revenue": group.revenue["converted"],
        "attributed_revenue": group.revenue["attributed"],
        "conversion_rate": round(group.counts["converted"] / exposed, 4) if exposed else None,
    }


def _interval(interval: Interval) -> dict[str, float | None]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    return {"estimate": r(interval.estimate), "low": r(interval.low), "high": r(interval.high)}
