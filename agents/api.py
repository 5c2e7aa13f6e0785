"""The HTTP API (contract section 3). Reads come from Redis only, so it can run apart."""

from __future__ import annotations

import time
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents.context import Context
from models.clock import engine_now
from models.view import profile_view
from stream.codecs import parse_ts


def register_api(app: faust.App, ctx: Context) -> None:
    @app.page("/customers/{customer_id}")
    class CustomerView(View):
        async def get(self, request: Request, customer_id: str) -> Response:
            now = await _now(request, ctx)
            if now is None:
                return self.json({"error": "as_of must be RFC 3339 or epoch ms"}, status=400)
            state = await ctx.store.read(customer_id)
            if state is None:
                return self.json({"error": f"unknown customer {customer_id!r}"}, status=404)
            return self.json(profile_view(state.profile, now=now, lifecycle=ctx.lifecycle))

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


async def _now(request: Request, ctx: Context) -> int | None:
    raw: Any = request.query.get("as_of")
    if raw is not None:
        return parse_ts(int(raw) if raw.isdigit() else raw)
    watermark = await ctx.store.read_clock()
    return engine_now(watermark, int(time.time() * 1000), mode=ctx.settings.clock)
