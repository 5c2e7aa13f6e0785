"""The catalog flow: product facts into Redis (latest event time wins, so replays are harmless)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from agents.context import Context
from agents.customers import Delivery
from models.events import CatalogUpdate, Rejected
from stream.codecs import parse_catalog
from stream.records import OutRecord, deadletter_record


async def process_catalog(deliveries: Sequence[Delivery], suffix: str, ctx: Context) -> None:
    now_ms = int(time.time() * 1000)
    products: list[CatalogUpdate] = []
    rejected: list[OutRecord] = []
    for d in deliveries:
        event = parse_catalog(d.value or b"", max_bytes=ctx.settings.max_event_bytes)
        if isinstance(event, Rejected):
            ctx.metrics.deadletters.labels(suffix, event.code).inc()
            rejected.append(
                deadletter_record(
                    source_topic=d.topic,
                    partition=d.partition,
                    offset=d.offset,
                    error=event.reason,
                    payload=d.value,
                    ts=now_ms,
                )
            )
            continue
        products.append(event)
    ctx.metrics.batch_size.labels(suffix).observe(len(deliveries))
    await ctx.store.put_products(products)
    await ctx.publisher.publish(rejected)
    ctx.metrics.events.labels(suffix, "accepted").inc(len(products))
    ctx.metrics.events.labels(suffix, "rejected").inc(len(rejected))
