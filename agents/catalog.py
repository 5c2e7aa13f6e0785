"""The catalog flow: product facts into Redis, and catalogue campaigns fanned out.

Product facts: latest event time wins, so replays are harmless. A new
arrival, a price drop or a product back in stock sets off the matching
campaigns for their audience (strong affinity for the category; customers
who viewed or wishlisted the product), at most the campaign file's
``fanout_limit`` customers per event, as internal ``campaign`` events keyed
by customer: each owner then decides with its own ledger (consent, caps,
cooldown, quiet hours). Event ids derive from campaign, product and catalogue
event, so a replayed catalogue record triggers nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from agents.context import Context
from models.catalog import catalog_triggers, rank_threshold
from models.clock import latest_event_ms
from models.events import CatalogUpdate, Rejected
from models.outputs import Internal
from stream.batching import Delivery
from stream.codecs import parse_catalog
from stream.records import OutRecord, deadletter_record, internal_record


async def process_catalog(deliveries: Sequence[Delivery], ctx: Context) -> None:
    suffix = "catalog"
    now_ms = int(time.time() * 1000)
    latest = latest_event_ms(now_ms, tolerance_seconds=ctx.settings.future_tolerance_seconds)
    products: list[CatalogUpdate] = []
    rejected: list[OutRecord] = []
    reasons: list[str] = []
    for d in deliveries:
        event = parse_catalog(d.value, max_bytes=ctx.settings.max_event_bytes, latest_ms=latest)
        if isinstance(event, Rejected):
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
            reasons.append(event.code)
            continue
        products.append(event)
    ctx.metrics.batch_size.labels(suffix).observe(len(deliveries))
    stored = await ctx.store.put_products(products)
    await ctx.publisher.publish(rejected)
    for product, (applied, before) in zip(products, stored, strict=True):
        if applied:  # one product's audience at a time: at most ``fanout_limit`` records
            await ctx.publisher.publish(
                await fan_out(product, catalog_triggers(before, product), before, ctx)
            )
    for code in reasons:
        ctx.metrics.deadletters.labels(suffix, code).inc()
    ctx.metrics.events.labels(suffix, "accepted").inc(len(products))
    ctx.metrics.events.labels(suffix, "rejected").inc(len(rejected))


async def fan_out(
    product: CatalogUpdate, triggers: tuple[str, ...], before: Any, ctx: Context
) -> list[OutRecord]:
    book = ctx.step.engine.book
    records: list[OutRecord] = []
    for campaign in book.campaigns:
        kind = campaign.trigger.catalog
        if not campaign.enabled or kind not in triggers:
            continue
        if kind == "new_arrival":
            if product.category is None:
                continue
            threshold = rank_threshold(
                campaign.trigger.min_affinity,
                now=product.ts,
                half_life_ms=ctx.step.profile.affinity.half_life_ms,
            )
            audience = await ctx.store.audience(
                category=product.category,
                min_rank=threshold,
                product_id=None,
                limit=book.fanout_limit,
            )
        else:
            audience = await ctx.store.audience(
                category=None,
                min_rank=None,
                product_id=product.product_id,
                limit=book.fanout_limit,
            )
        context = (
            ("event", kind),
            ("product_id", product.product_id),
            ("category", product.category),
            ("price", product.price),
            ("previous_price", None if before is None else before.price),
            ("name", product.name),
        )
        for cid in audience:
            trigger = Internal(
                "campaign",
                cid,
                f"campaign:{campaign.name}:{product.event_id}:{cid}",
                product.ts,
                body=(("campaign", campaign.name), ("context", context)),
            )
            records.append(internal_record(trigger))
    return records
