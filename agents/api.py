"""The HTTP API (contract section 3). Reads come from Redis only, so it can run apart.

API traffic must never hurt ingestion. The routes read through the API's own Redis
pool (``agents.worker.for_readers``): readers wait for one of its connections, never
take one of ingestion's. Every reader route goes through a ``Guard``: it holds a
bounded number of requests at once and answers each within a deadline, so a storm
of slow readers costs bounded tasks and memory. Redis trouble answers 503, a bad
query parameter 400 and anything else 500, always with a JSON ``error`` (the
traceback goes to the log, never into an answer).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

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
from stream import keys
from stream.codecs import parse_ts
from stream.records import internal_record, offer_value

log = logging.getLogger(__name__)

#: ``/health`` answers within about this long: its own connection, its own timeout.
HEALTH_SECONDS = 1.0
#: Requests held at once per connection of the API's Redis pool; more answer 503 at once.
WAITING_PER_CONNECTION = 32
#: A reader's deadline, in RAPPORT_REDIS_TIMEOUT_SECONDS: one wait for a pooled
#: connection, then the round trips themselves.
DEADLINE_TIMEOUTS = 2
#: Seconds between two warnings about Redis trouble: a storm would flood the log.
WARN_EVERY_SECONDS = 10.0
#: Largest ``min_count`` and ``top_k``.
MAX_COUNT = 1_000_000
#: Epoch milliseconds have at most this many digits (``int`` of thousands is slow).
MAX_EPOCH_DIGITS = 16
#: ``segment`` of a route pattern: one path segment, braces included. aiohttp's default
#: (``[^{}/]+``) refuses ids holding a brace; ``%2F`` stays a ``/`` inside the id.
SEGMENT = "[^/]+"

REDIS_TROUBLE = (RedisConnectionError, RedisTimeoutError, TimeoutError)
RETRY_SOON = {"Retry-After": "1"}


class BadQuery(ValueError):
    """A query parameter that cannot be read; its message is the 400 answer's ``error``."""


class Guard:
    """What API traffic may hold, and how its failures are answered.

    At most ``limit`` requests are held at once (more answer 503 at once), and each
    answers within ``deadline`` seconds (503 after it): so however many readers
    call, and however slow Redis is, the API holds a bounded number of tasks.
    """

    def __init__(self, *, limit: int, deadline: float) -> None:
        self.limit = limit
        self.deadline = deadline
        self.held = 0
        self._warned_at = float("-inf")
        self._unwarned = 0

    async def answer(
        self,
        view: View,
        request: Request,
        handle: Callable[[], Awaitable[Response]],
        *,
        bounded: bool,
    ) -> Response:
        if self.held >= self.limit:
            busy = f"the API is busy: {self.limit} requests already wait for Redis; retry shortly"
            return view.json({"error": busy}, status=503, headers=RETRY_SOON)
        self.held += 1
        try:
            async with asyncio.timeout(self.deadline if bounded else None):
                return await handle()
        except BadQuery as exc:
            return view.json({"error": str(exc)}, status=400)
        except REDIS_TROUBLE as exc:
            self._warn(exc)
            error = f"Redis is busy or unreachable ({type(exc).__name__}); retry shortly"
            return view.json({"error": error}, status=503, headers=RETRY_SOON)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return view.json({"error": "internal error (see the worker log)"}, status=500)
        finally:
            self.held -= 1

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at < WARN_EVERY_SECONDS:
            self._unwarned += 1
            return
        log.warning(
            "API answered 503, Redis trouble: %s: %s (and %d more since the last warning)",
            type(exc).__name__,
            exc,
            self._unwarned,
        )
        self._warned_at, self._unwarned = now, 0


def reader_guard(ctx: Context) -> Guard:
    settings = ctx.settings
    return Guard(
        limit=WAITING_PER_CONNECTION * settings.api_redis_connections,
        deadline=DEADLINE_TIMEOUTS * settings.redis_timeout_seconds,
    )


class GuardedView(View):
    """A route whose requests go through ``guard`` (set by the subclass)."""

    guard: ClassVar[Guard]
    #: False for a route that may rightly run long (a population refresh).
    bounded: ClassVar[bool] = True

    async def dispatch(self, request: Any) -> Any:
        handle = super().dispatch
        return await self.guard.answer(self, request, lambda: handle(request), bounded=self.bounded)


class HealthProbe:
    """A Redis connection of ``/health``'s own, answering within ``HEALTH_SECONDS``.

    Made like the API pool's connections (same server, same options) but outside the
    pool: readers holding every pooled connection do not make the worker look down,
    and a paused Redis is reported after ``HEALTH_SECONDS``, not after the pool's
    timeouts and retries.
    """

    def __init__(self, redis: Redis, clock_key: str) -> None:
        self._connection = redis.connection_pool.make_connection()
        self._lock = asyncio.Lock()
        self._clock_key = clock_key

    async def watermark(self) -> int | None:
        """PING, then the engine clock (as ``Store.read_clock`` reads it); ``TimeoutError``
        when Redis does not answer in time. A connection that broke while nobody asked
        (Redis restarted since the last probe) is replaced once, within the same time."""
        async with asyncio.timeout(HEALTH_SECONDS), self._lock:
            try:
                raw = await self._ask()
            except RedisConnectionError:
                raw = await self._ask()
        return None if raw is None else int(raw)

    async def _ask(self) -> bytes | None:
        try:
            await self._connection.send_command("PING")
            await self._connection.read_response()
            await self._connection.send_command("GET", self._clock_key)
            answer: bytes | None = await self._connection.read_response()
            return answer
        except BaseException:  # a half-read answer must not meet the next PING
            await self._connection.disconnect(nowait=True)
            raise


def register_api(app: faust.App, ctx: Context) -> None:
    class Reader(GuardedView):
        guard = reader_guard(ctx)

    @app.page(f"/customers/{{customer_id:{SEGMENT}}}")
    class CustomerView(Reader):
        async def get(self, request: Request, customer_id: str) -> Response:
            now = await _now(request, ctx)
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
            view["events_applied"] = state.profile.events
            return self.json(view)

        async def delete(self, request: Request, customer_id: str) -> Response:
            """Right to erasure: the owner of the customer erases them (asynchronously)."""
            if not _authorized(request, ctx):
                return self.json({"error": "admin token required"}, status=401)
            now = int(time.time() * 1000)
            request_ = Internal("erase", customer_id, f"erase:{customer_id}:{now}", now)
            await ctx.publisher.publish([internal_record(request_)])
            return self.json({"status": "erasing", "customer_id": customer_id}, status=202)

    @app.page(f"/customers/{{customer_id:{SEGMENT}}}/offers")
    class OffersView(Reader):
        async def get(self, request: Request, customer_id: str) -> Response:
            """Live offers, best first: highest campaign priority, then the newest."""
            now = await _now(request, ctx)
            state = await ctx.store.read(customer_id)
            if state is None or state.erased or state.profile.merged_into is not None:
                return self.json({"error": f"unknown customer {customer_id!r}"}, status=404)
            live = sorted(
                (o for o in state.profile.offers if o.created_at <= now < o.expires_at),
                key=lambda o: (-o.priority, -o.created_at, o.offer_id),
            )
            return self.json([offer_value(o) for o in live])

    @app.page("/campaigns")
    class CampaignsView(Reader):
        async def get(self, request: Request) -> Response:
            """Every campaign (and ``_all`` against the global control group)."""
            return self.json(await all_reports(ctx))

    @app.page(f"/campaigns/{{name:{SEGMENT}}}")
    class CampaignView(Reader):
        async def get(self, request: Request, name: str) -> Response:
            known = {c.name for c in ctx.step.engine.book.campaigns} | {ALL}
            if name not in known:
                return self.json(
                    {"error": f"unknown campaign {name!r}", "campaigns": sorted(known)}, status=404
                )
            return self.json(await campaign_report(ctx, name))

    @app.page("/models/clv")
    class ClvModelView(Reader):
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

    @app.page(f"/products/{{product_id:{SEGMENT}}}/associations")
    class AssociationsView(Reader):
        async def get(self, request: Request, product_id: str) -> Response:
            min_count = query_count(request, "min_count", 2)
            top_k = query_count(request, "top_k", 10)
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
    class RefreshView(Reader):
        bounded = False  # a whole population's models: as long as it takes

        async def post(self, request: Request) -> Response:
            if not _authorized(request, ctx):
                return self.json({"error": "admin token required"}, status=401)
            as_of = query_time(request)
            return self.json(await refresh_population(ctx, as_of=as_of))

    probe = HealthProbe(ctx.store.redis, keys.clock(ctx.settings.redis_prefix))

    @app.page("/health")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            """200 while the worker runs and Redis answers a PING within HEALTH_SECONDS."""
            if app.crashed or app.should_stop:
                return self.json(
                    {"status": "stopping", "redis": None, "error": "the worker is stopping"},
                    status=503,
                )
            try:
                watermark = await probe.watermark()
            except Exception as exc:  # whatever it is, Redis is not serving this worker
                error = f"Redis did not answer PING within {HEALTH_SECONDS:g} s ({exc!r})"
                return self.json({"status": "down", "redis": False, "error": error}, status=503)
            return self.json({"status": "ok", "redis": True, "watermark": watermark})

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
    r, f, m, population = await ctx.store.rfm_standings(
        buyer, days=recency_days(last, now), now=now
    )
    return score_one(buyer, r=r, f=f, m=m, population=population)


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


def parse_time(raw: str) -> int | None:
    """Epoch milliseconds from an ``as_of`` value, ``None`` when it is not a time.

    ASCII digits are epoch milliseconds; anything else must be RFC 3339. Only ASCII:
    ``str.isdigit`` also holds for ``²`` (which ``int`` refuses) and ``٣`` (which it reads).
    """
    if raw.isascii() and raw.isdigit():
        return parse_ts(int(raw)) if len(raw) <= MAX_EPOCH_DIGITS else None
    return parse_ts(raw)


def parse_count(raw: str, *, name: str) -> int:
    """A whole number from 1 to ``MAX_COUNT`` (ASCII digits only), else ``BadQuery``."""
    if raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_COUNT)):
        value = int(raw)
        if 1 <= value <= MAX_COUNT:
            return value
    raise BadQuery(f"{name} must be a whole number from 1 to {MAX_COUNT}, got {_shown(raw)}")


def query_time(request: Request) -> int | None:
    """``?as_of=`` (``None`` when absent), or ``BadQuery``."""
    raw: str | None = request.query.get("as_of")
    if raw is None:
        return None
    as_of = parse_time(raw)
    if as_of is None:
        raise BadQuery(f"as_of must be RFC 3339 with an offset or epoch ms, got {_shown(raw)}")
    return as_of


def query_count(request: Request, name: str, default: int) -> int:
    raw: str | None = request.query.get(name)
    return default if raw is None else parse_count(raw, name=name)


def _shown(raw: str) -> str:
    """The value as the answer quotes it: its first 40 characters, escaped."""
    return repr(raw[:40]) + ("..." if len(raw) > 40 else "")


async def _now(request: Request, ctx: Context) -> int:
    as_of = query_time(request)
    if as_of is not None:
        return as_of
    watermark = await ctx.store.read_clock()
    return engine_now(watermark, int(time.time() * 1000), mode=ctx.settings.clock)
