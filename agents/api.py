"""The HTTP API (contract section 3). Reads come from Redis only, so it can run apart."""

from __future__ import annotations

import hmac
import time
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents.context import Context
from agents.refresh import refresh_population
from agents.results import all_reports, campaign_report
from models.attribution import ALL
from models.clock import engine_now
from models.clv import summarize
from models.customer import indexes, transactions
from models.outputs import Internal
from models.rfm import Rfm, recency_days, score_one
from models.view import profile_view
from stream.codecs import parse_ts
from stream.records import internal_record, offer_value

DAY_MS = 86_400_000


def register_api(app: faust.App, ctx: Context) -> None:
    @app.page("/customers/{customer_id}")
    class CustomerView(View):
        async def get(self, request: Request, customer_id: str) -> Response:
            now = await _now(request, ctx)
            if now is None:
                return self.json({"error": "as_of must be RFC 3339 or epoch ms"}, status=400)
            state = await ctx.store.read(customer_id)
            if state is None or state.erased:
                return self.json({"error": f"unknown customer {customer_id!r}"}, status=404)
            if state.profile.merged_into is not None:
                return self.json(
                    {
                        "error": f"{customer_id!r} was identified as another customer",
                        "merged_into": state.profile.merged_into,
                    },
                    status=404,
                )
            rfm = await _rfm(state, now, ctx)
            view = profile_view(state.profile, now=now, rfm=rfm, config=ctx.view)
            view["clv"] = await _clv(state, now, ctx)
            return self.json(view)

        async def delete(self, request: Request, customer_id: str) -> Response:
            """Right to erasure: the owner of the customer erases them (asynchronously)."""
            if not _authorized(request, ctx):
                return self.json({"error": "admin token required"}, status=401)
            now = int(time.time() * 1000)
            request_ = Internal("erase", customer_id, f"erase:{customer_id}:{now}", now)
            await ctx.publisher.publish([internal_record(request_)])
            return self.json({"status": "erasing", "customer_id": customer_id}, status=202)

    @app.page("/customers/{customer_id}/offers")
    class OffersView(View):
        async def get(self, request: Request, customer_id: str) -> Response:
            """Live offers, best first: highest campaign priority, then the newest."""
            now = await _now(request, ctx)
            if now is None:
                return self.json({"error": "as_of must be RFC 3339 or epoch ms"}, status=400)
            state = await ctx.store.read(customer_id)
            if state is None or state.erased or state.profile.merged_into is not None:
                return self.json({"error": f"unknown customer {customer_id!r}"}, status=404)
            live = sorted(
                (o for o in state.profile.offers if o.created_at <= now < o.expires_at),
                key=lambda o: (-o.priority, -o.created_at, o.offer_id),
            )
            return self.json([offer_value(o) for o in live])

    @app.page("/campaigns")
    class CampaignsView(View):
        async def get(self, request: Request) -> Response:
            """Every campaign (and ``_all`` against the global control group)."""
            return self.json(await all_reports(ctx))

    @app.page("/campaigns/{name}")
    class CampaignView(View):
        async def get(self, request: Request, name: str) -> Response:
            known = {c.name for c in ctx.step.engine.book.campaigns} | {ALL}
            if name not in known:
                return self.json(
                    {"error": f"unknown campaign {name!r}", "campaigns": sorted(known)}, status=404
                )
            return self.json(await campaign_report(ctx, name))

    @app.page("/models/clv")
    class ClvModelView(View):
        async def get(self, request: Request) -> Response:
            document = await ctx.models.load_clv()
            if document is None:
                return self.json(
                    {
                        "error": "no CLV model fitted yet: POST /admin/refresh once there are "
                        "enough buyers with repeat orders"
                    },
                    status=404,
                )
            return self.json(document)

    @app.page("/products/{product_id}/associations")
    class AssociationsView(View):
        async def get(self, request: Request, product_id: str) -> Response:
            try:
                min_count = int(request.query.get("min_count", "2"))
                top_k = int(request.query.get("top_k", "10"))
            except ValueError:
                return self.json({"error": "min_count and top_k must be integers"}, status=400)
            found = await ctx.models.associations(product_id, min_count=min_count, top_k=top_k)
            return self.json(
                [
                    {
                        "product_id": a.product_id,
                        "support": a.support,
                        "confidence": a.confidence,
                        "lift": a.lift,
                        "baskets": a.baskets,
                    }
                    for a in found
                ]
            )

    @app.page("/admin/refresh")
    class RefreshView(View):
        async def post(self, request: Request) -> Response:
            if not _authorized(request, ctx):
                return self.json({"error": "admin token required"}, status=401)
            as_of: int | None = None
            if "as_of" in request.query:
                as_of = _parse_time(request.query["as_of"])
                if as_of is None:
                    return self.json({"error": "as_of must be RFC 3339 or epoch ms"}, status=400)
            return self.json(await refresh_population(ctx, as_of=as_of))

    @app.page("/health")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            try:
                redis_ok = bool(await ctx.store.redis.ping())
            except Exception as exc:
                return self.json({"status": "down", "redis": str(exc)}, status=503)
            clock = await ctx.store.read_clock()
            return self.json({"status": "ok", "redis": redis_ok, "watermark": clock})

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            body = generate_latest(ctx.metrics.registry)
            return self.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])


async def _rfm(state: Any, now: int, ctx: Context) -> Rfm | None:
    """Exact RFM against the buyer population as stored right now."""
    buyer = indexes(state, config=ctx.step).buyer
    if buyer is None:
        return None
    last, _, _ = buyer
    days = recency_days(last, now)
    cutoff = now - (days + 1) * DAY_MS  # a whole day more since the last order, or worse
    worse_r, worse_f, worse_m, population = await ctx.store.rfm_worse_counts(
        buyer, recency_cutoff=cutoff
    )
    if population == 0:
        return None
    return score_one(
        buyer, worse_r=worse_r, worse_f=worse_f, worse_m=worse_m, population=max(population, 1)
    )


async def _clv(state: Any, now: int, ctx: Context) -> dict[str, float] | None:
    """The customer scored with the fitted model (null before a fit or before any order)."""
    fit = await ctx.models.load_clv_fit()
    summary = summarize(transactions(state.profile), now=now)
    if fit is None or summary is None:
        return None
    return fit.score(summary)


def _authorized(request: Request, ctx: Context) -> bool:
    token = ctx.settings.api_token
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def _parse_time(raw: str) -> int | None:
    return parse_ts(int(raw) if raw.isdigit() else raw)


async def _now(request: Request, ctx: Context) -> int | None:
    raw: Any = request.query.get("as_of")
    if raw is not None:
        return _parse_time(raw)
    watermark = await ctx.store.read_clock()
    return engine_now(watermark, int(time.time() * 1000), mode=ctx.settings.clock)
