"""The composition root: settings -> adapters -> agents, in one place.

Nothing here runs at import time; ``build_worker`` is called by the CLI (and
the tests) with a settings object.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from faust.types import TP
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from agents.api import register_api
from agents.catalog import process_catalog
from agents.context import CampaignLibrary, Context
from agents.customers import process_batch
from agents.dashboard import register_dashboard
from agents.refresh import refresh_population
from agents.timers import fire_due_timers
from stream.app import RapportApp, create_app, raw_topic
from stream.batching import Delivery
from stream.campaign_stats import CampaignStats
from stream.facts import FactsSource
from stream.metrics import Metrics
from stream.models_store import ModelsStore
from stream.offsets import LogEnd, LogPositions
from stream.publisher import Publisher
from stream.records import deadletter_record
from stream.resilience import Resilience, describe
from stream.settings import Settings
from stream.store import DAY_MS, Store, connect

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CUSTOMER_TOPICS = ("clicks", "orders", "customers", "feedback", "internal")

#: The refresh lease lasts most of a period, so the next period's timers can take it again.
REFRESH_LEASE_SHARE = 0.9

Handler = Callable[[Sequence[Delivery], Context], Awaitable[None]]


def build_worker(settings: Settings) -> RapportApp:
    app = create_app(settings)
    ctx = build_context(settings, Publisher(app, settings), log_end=consumer_log_end(app))
    api = for_readers(ctx)
    register_flow(app, ctx, CUSTOMER_TOPICS, process_batch)
    register_flow(app, ctx, ("catalog",), process_catalog)
    register_api(app, api)
    register_dashboard(app, api)
    register_periodic(app, ctx)
    app.rapport_context = ctx  # type: ignore[attr-defined]
    return app


async def unknown_log_end(topic: str, partition: int) -> int | None:
    """Without a consumer to ask (bench/flow.py), no log is ever taken for reset."""
    return None


def build_context(
    settings: Settings, publisher: Publisher, *, log_end: LogEnd = unknown_log_end
) -> Context:
    """Everything the flows need, on the ingestion Redis pool, publishing through
    ``publisher``; ``log_end`` tells a reset log from a redelivery (``stream.offsets``)."""
    redis = connect(
        settings.redis_url or DEFAULT_REDIS_URL,
        retries=settings.redis_retries,
        connections=settings.redis_connections,
        timeout=settings.redis_timeout_seconds,
    )
    metrics = Metrics(CollectorRegistry())
    positions = LogPositions(
        redis,
        prefix=settings.redis_prefix,
        ttl_ms=settings.retention_days * DAY_MS,
        log_end=log_end,
        metrics=metrics,
    )
    return Context(
        settings=settings,
        publisher=publisher,
        metrics=metrics,
        library=CampaignLibrary(settings),
        positions=positions,
        **redis_adapters(settings, redis, metrics),
    )


def consumer_log_end(app: faust.App) -> LogEnd:
    """The end of a partition's log, asked of the broker through the worker's consumer."""

    async def log_end(topic: str, partition: int) -> int | None:
        tp = TP(topic, partition)
        return (await app.consumer.highwaters(tp)).get(tp)

    return log_end


def for_readers(ctx: Context) -> Context:
    """The same context on the HTTP API's own Redis pool: however many readers call at
    once, they wait for one of its connections and never take one of ingestion's."""
    settings = ctx.settings
    redis = connect(
        settings.redis_url or DEFAULT_REDIS_URL,
        retries=settings.redis_retries,
        connections=settings.api_redis_connections,
        timeout=settings.redis_timeout_seconds,
    )
    return dataclasses.replace(ctx, **redis_adapters(settings, redis, ctx.metrics))


def redis_adapters(settings: Settings, redis: Redis, metrics: Metrics) -> dict[str, Any]:
    """The stores of a context, all on one client (one pool)."""
    store = Store(
        redis,
        prefix=settings.redis_prefix,
        retention_days=settings.retention_days,
        fence_days=settings.fence_days,
        metrics=metrics,
        cached_states=settings.cached_states,
    )
    models = ModelsStore(redis, settings.redis_prefix)
    return {
        "store": store,
        "models": models,
        "facts": FactsSource(models, prefix=settings.redis_prefix),
        "campaign_stats": CampaignStats(redis, settings.redis_prefix),
    }


def register_periodic(app: faust.App, ctx: Context) -> None:
    """Timers of the worker: lifecycle timer polling and the population refresh.

    Both publish internal events only (never write a customer). Timer polling
    runs on every worker (leases in Redis hand each due timer to one poll);
    the population refresh runs on whichever worker takes the period's lease,
    so a group of workers refreshes once per period, not once per worker.
    """

    @app.timer(ctx.settings.timer_interval, name="rapport.lifecycle_timers")
    async def lifecycle_timers() -> None:
        try:
            await fire_due_timers(ctx)
        except Exception:  # retried at the next tick; leases make it lossless
            log.exception("lifecycle timer poll failed; retrying next interval")

    @app.timer(5.0, name="rapport.consumer_lag")
    async def consumer_lag() -> None:
        try:
            await measure_lag(app, ctx)
        except Exception:  # a metric: never worth stopping the worker for
            log.exception("measuring consumer lag failed")

    @app.timer(2.0, name="rapport.campaign_file_watch")
    async def campaign_file_watch() -> None:
        if ctx.library.changed_on_disk():
            reload_campaigns(ctx)

    @app.timer(ctx.settings.refresh_seconds, name="rapport.population_refresh")
    async def population_refresh() -> None:
        period = ctx.settings.refresh_seconds
        try:
            if await ctx.store.claim_lease("population_refresh", period * REFRESH_LEASE_SHARE):
                await refresh_population(ctx)
        except Exception:  # the next refresh recomputes everything from scratch
            log.exception("population refresh failed; retrying next interval")


def register_flow(app: RapportApp, ctx: Context, suffixes: Sequence[str], handle: Handler) -> None:
    """One batch flow over these input topics (``stream.batching``): whole fetched batches,
    the records of all of them fetched together in one call.

    A batch's offsets become committable only after ``handle`` returns. Through a
    Redis or broker outage the batch is run again with backoff; a batch that fails
    for any other reason is split until the records that fail alone are isolated to
    ``deadletter`` (``stream.resilience``). Only an outage longer than
    ``RAPPORT_OUTAGE_SECONDS`` stops the worker, with the batch unacked, so the next
    worker replays it.
    """
    settings = ctx.settings
    name = suffixes[0] if len(suffixes) == 1 else "customers"

    async def flow(deliveries: Sequence[Delivery]) -> None:
        generation = app.consumer_generation_id
        resilience = Resilience(
            handler=lambda batch: handle(batch, ctx),
            isolate=lambda delivery, exc: deadletter_poison(delivery, exc, ctx),
            metrics=ctx.metrics,
            flow=name,
            outage_seconds=settings.outage_seconds,
            poison_attempts=settings.poison_attempts,
            still_ours=lambda: app.consumer_generation_id == generation and not app.should_stop,
        )
        await resilience.run(deliveries)

    topics = [raw_topic(app, settings.topic(suffix)) for suffix in suffixes]
    app.batch_flow(topics, flow, batch_size=settings.batch_size)


async def deadletter_poison(delivery: Delivery, exc: BaseException, ctx: Context) -> None:
    """A record the worker fails on every time, alone: to ``deadletter`` with the exception."""
    suffix = ctx.settings.suffix(delivery.topic)
    record = deadletter_record(
        source_topic=delivery.topic,
        partition=delivery.partition,
        offset=delivery.offset,
        error=f"the worker failed on this record: {describe(exc)}",
        payload=delivery.value,
        ts=int(time.time() * 1000),
    )
    await ctx.publisher.publish([record])
    ctx.metrics.poison.labels(suffix).inc()
    ctx.metrics.deadletters.labels(suffix, "poison").inc()
    ctx.metrics.events.labels(suffix, "rejected").inc()


async def measure_lag(app: faust.App, ctx: Context) -> None:
    """Lag per assigned partition from the log end and faust's committed offset."""
    consumer = app.consumer
    assigned = sorted(consumer.assignment())
    if not assigned:
        return
    ends = await consumer.highwaters(*assigned)
    committed = consumer._committed_offset  # faust keeps it per partition; no public getter
    for tp in assigned:
        done = committed.get(tp) or 0
        lag = max(0, (ends.get(tp) or 0) - done)
        ctx.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
    watermark = await ctx.store.read_clock()
    if watermark is not None:
        ctx.metrics.freshness.set(max(0.0, time.time() - watermark / 1000))


def reload_campaigns(ctx: Context) -> None:
    """On file change or SIGHUP: the new file if valid, else the old one stays (logged)."""
    ctx.metrics.campaign_reloads.labels(ctx.library.reload()).inc()


def run_worker(settings: Settings) -> None:
    """Create the topics, then run one faust worker until SIGINT, SIGTERM or SIGPIPE, or
    until its output pipe closes (``agents.worker_process``). Raises ``WebPortUnavailable``
    if its HTTP server cannot bind: a worker that cannot serve its port does not run."""
    import asyncio
    import signal

    from agents.worker_process import RapportWorker, quiet_kafka_client
    from stream.app import kafka_url
    from stream.topics import ensure_topics

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # faust's worker runs on this same loop
    with quiet_kafka_client():  # an unreachable broker is one line from agents.cli
        loop.run_until_complete(ensure_topics(settings, kafka_url(settings)))
    app = build_worker(settings)
    worker = RapportWorker(app, settings, loglevel=settings.log_level.upper(), loop=loop)
    ctx: Context = app.rapport_context  # type: ignore[attr-defined]
    loop.add_signal_handler(signal.SIGHUP, reload_campaigns, ctx)
    tune_garbage_collector()
    worker.run()


#: Young-generation size and collection ratios of the cyclic garbage collector.
GC_THRESHOLDS = (20_000, 20, 100)


def tune_garbage_collector() -> None:
    """Fewer, cheaper cyclic collections: the worker's own data (frozen dataclasses,
    dicts, tuples) is freed by reference counting, but with Python's default
    thresholds full collections ran every few hundred milliseconds of load,
    scanning every decoded state held (``bench/flow.py``: six full collections of
    up to 110 ms in 3.5 s). What exists after start-up (modules, the campaign
    book, faust) is frozen out of collections for good."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
