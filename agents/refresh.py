"""The population refresh: exact RFM scores for every buyer, and RFM segment changes.

Scores are exact (ranks over the whole buyer population held in Redis sorted
sets, ``models.rfm.score_population``). Customers whose RFM cell changed get
an ``rfm`` internal event, so their owner records it and emits the
``segments`` exit/enter. Any worker may run it: a repeated event for the same
refresh has the same id; two refreshes at different times converge.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agents.context import Context
from models.clock import engine_now, format_ts
from models.clv import ClvUnavailable, clv_document, fit_clv, summarize
from models.outputs import Internal
from models.rfm import Rfm, recency_days, score_population
from stream.records import internal_record


async def refresh_population(ctx: Context, *, as_of: int | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    wall = int(time.time() * 1000)
    now = (
        as_of
        if as_of is not None
        else engine_now(await ctx.store.read_clock(), wall, mode=ctx.settings.clock)
    )
    population = await ctx.store.population()
    expired = await ctx.store.drop_expired_buyers(list(population.buyers))
    scores = score_population(population.buyers, now=now)
    changed = [
        Internal(
            "rfm",
            cid,
            f"rfm:{cid}:{now}:{rfm.code}",
            now,
            body=(("r", rfm.r), ("f", rfm.f), ("m", rfm.m), ("segment", rfm.segment)),
        )
        for cid, rfm in scores.items()
        if population.segments.get(cid) != rfm.segment
    ]
    await ctx.publisher.publish([internal_record(c) for c in changed])
    clv = await refit_clv(ctx, now=now, wall=wall)
    elapsed = time.perf_counter() - started
    ctx.metrics.refresh_seconds.observe(elapsed)
    return {
        "as_of": format_ts(now),
        "rfm": {
            "population": len(scores),
            "segment_changes": len(changed),
            "expired_removed": expired,
            "cut_points": cut_points(population.buyers, scores, now=now),
        },
        "clv": clv,
        "seconds": round(elapsed, 3),
    }


async def refit_clv(ctx: Context, *, now: int, wall: int) -> dict[str, Any]:
    """Fit BG/NBD + Gamma-Gamma on every buyer's orders up to ``now`` (off the event loop).

    With too little data the previous model (if any) stays and the reason is reported.
    """
    history = await ctx.store.clv_transactions()
    # Sorted by customer: the same population always gives the same fit, to the last digit
    # (float sums depend on order, and Redis hash order depends on the hash's history).
    summaries = [
        s for _, tx in sorted(history.items()) if (s := summarize(tx, now=now)) is not None
    ]
    fit = await asyncio.to_thread(fit_clv, summaries)
    if isinstance(fit, ClvUnavailable):
        return {"fitted": False, "reason": fit.reason, "n_customers": len(summaries)}
    document = clv_document(fit, calibration_end=now, fitted_at=wall)
    await ctx.models.save_clv(document)
    return {"fitted": True, **document}


def cut_points(
    buyers: dict[str, tuple[int, int, float]], scores: dict[str, Rfm], *, now: int
) -> dict[str, dict[str, list[float]]]:
    """Per dimension and score, the [lowest, highest] value seen: what each score means now."""
    ranges: dict[str, dict[str, list[float]]] = {"recency_days": {}, "orders": {}, "revenue": {}}
    for cid, rfm in scores.items():
        last, orders, revenue = buyers[cid]
        for name, score, value in (
            ("recency_days", rfm.r, float(recency_days(last, now))),
            ("orders", rfm.f, float(orders)),
            ("revenue", rfm.m, revenue),
        ):
            span = ranges[name].setdefault(str(score), [value, value])
            span[0], span[1] = min(span[0], value), max(span[1], value)
    return {name: dict(sorted(spans.items())) for name, spans in ranges.items()}
