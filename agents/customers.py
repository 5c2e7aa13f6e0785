"""The customer flow: clicks, orders, customers, feedback and internal events into state.

Per batch: parse -> (re-key | deadletter) -> load -> fold -> save -> publish ->
settle (empty outboxes, finish erasures, update indexes) -> count. Offsets
become committable only when this returns, i.e. after state is written and
every output is acknowledged by the broker.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from agents.context import Context
from models.clock import latest_event_ms
from models.customer import (
    CustomerState,
    Envelope,
    Indexes,
    clear_outbox,
    fold,
    in_event_time,
    indexes,
    new_state,
    timer_entry,
)
from models.dedup import Applied, seen_before
from models.events import CatalogUpdate, LifecycleTick, Order, Rejected
from models.outputs import BasketChange, CampaignResult, CampaignStat, Output, SegmentChange
from stream.batching import Delivery
from stream.codecs import PARSERS
from stream.internal_codec import parse_internal
from stream.records import OutRecord, deadletter_record, output_records
from stream.resilience import KeptChanging
from stream.store import Stored, Write

log = logging.getLogger(__name__)

#: Rounds of optimistic retries before giving up on a batch (then the worker stops).
MAX_CONFLICT_ROUNDS = 20
PARSE = {**PARSERS, "internal": parse_internal}


@dataclass(frozen=True, slots=True)
class Saved:
    """A customer's state as now stored, at ``version``."""

    customer_id: str
    version: int
    state: CustomerState


@dataclass
class Sorted:
    by_customer: dict[str, list[Envelope]] = field(default_factory=dict)
    outputs: list[OutRecord] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    forwarded: int = 0
    newest_ts: int | None = None


def sort_deliveries(
    deliveries: Sequence[Delivery],
    ctx: Context,
    *,
    now_ms: int,
    sources: Mapping[tuple[str, int], str],
) -> Sorted:
    """Parse every record; route it to its customer, to a re-key, or to the deadletter."""
    out = Sorted()
    # Records stamped later than this would move the engine clock into the future: deadletter.
    latest_ms = latest_event_ms(now_ms, tolerance_seconds=ctx.settings.future_tolerance_seconds)
    for d in deliveries:
        suffix = ctx.settings.suffix(d.topic)
        event = PARSE[suffix](
            d.value,
            max_bytes=ctx.settings.max_event_bytes,
            default_currency=ctx.settings.default_currency,
            latest_ms=latest_ms,
        )
        if isinstance(event, Rejected | CatalogUpdate):
            reason = event if isinstance(event, Rejected) else Rejected("not a customer event")
            ctx.metrics.deadletters.labels(suffix, reason.code).inc()
            out.rejected[suffix] += 1
            out.outputs.append(
                deadletter_record(
                    source_topic=d.topic,
                    partition=d.partition,
                    offset=d.offset,
                    error=reason.reason,
                    payload=d.value,
                    ts=now_ms,
                )
            )
            continue
        if d.key is None or d.key.decode("utf-8", "replace") != event.customer_id:
            # Not keyed by customer: send it round again under the right key, so it
            # reaches the one worker that owns this customer.
            out.outputs.append(OutRecord(suffix, event.customer_id, d.value, event.ts))
            out.forwarded += 1
            continue
        out.by_customer.setdefault(event.customer_id, []).append(
            Envelope(
                event=event,
                source=sources[(d.topic, d.partition)],
                offset=d.offset,
                topic=suffix,
                raw=d.value,
            )
        )
        if suffix != "internal":
            out.newest_ts = event.ts if out.newest_ts is None else max(out.newest_ts, event.ts)
    return out


async def process_batch(deliveries: Sequence[Delivery], ctx: Context) -> None:
    now_ms = int(time.time() * 1000)
    sources = await ctx.positions.sources(deliveries)
    batch = sort_deliveries(deliveries, ctx, now_ms=now_ms, sources=sources)
    await restarted_logs(deliveries, batch, sources, ctx)
    ctx.metrics.batch_size.labels("customers").observe(len(deliveries))
    async with ctx.customer_writes:
        saved, counted = await apply_customers(batch.by_customer, ctx)
        outputs = [o for s in saved for o in s.state.outbox]
        await ctx.publisher.publish(
            batch.outputs + [rec for o in outputs for rec in output_records(o)]
        )
        await ctx.models.apply_changes(o for o in outputs if isinstance(o, BasketChange))
        await ctx.campaign_stats.apply(o for o in outputs if isinstance(o, CampaignStat))
        await settle(saved, batch, ctx)
        await ctx.positions.applied(deliveries)
    if batch.newest_ts is not None:
        clock = await ctx.store.advance_clock(batch.newest_ts)
        ctx.metrics.watermark.set(clock / 1000)
    # Counted only now that every write and output of the batch is done: a reader that
    # waits for the counter sees the batch's results whole.
    for suffix, rejected in batch.rejected.items():
        ctx.metrics.events.labels(suffix, "rejected").inc(rejected)
    for (suffix, outcome), n in counted.items():
        ctx.metrics.events.labels(suffix, outcome).inc(n)
    count_published(outputs, ctx)


async def restarted_logs(
    deliveries: Sequence[Delivery],
    batch: Sorted,
    sources: Mapping[tuple[str, int], str],
    ctx: Context,
) -> None:
    """Partitions whose records go back to offsets already applied, and whose records'
    events none of their customers has seen: a log that started again (one the log end
    could not tell, it had grown past the old offsets). Their records get the new
    epoch's source, so their offsets are not taken for a redelivery's.

    Only events with ids of their own count as evidence (a tick's id is new at every
    claim); a partition with none keeps what the log end said.
    """
    replayed = ctx.positions.replayed(deliveries)
    if not replayed:
        return
    partition_of = {sources[tp]: tp for tp in replayed}
    evidence: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for cid, envelopes in batch.by_customer.items():
        for e in envelopes:
            tp = partition_of.get(e.source or "")
            if (
                tp is not None
                and e.offset is not None
                and e.offset <= replayed[tp]
                and not isinstance(e.event, LifecycleTick)
            ):
                evidence.setdefault(tp, []).append((cid, e.event.event_id))
    if not evidence:
        return
    stored = await ctx.store.load({cid for pairs in evidence.values() for cid, _ in pairs})
    renamed: dict[str, str] = {}
    for tp, pairs in evidence.items():
        if any(seen_before(applied_of(stored[cid]), event_id) for cid, event_id in pairs):
            continue  # a redelivery: its customers know its events
        renamed[sources[tp]] = await ctx.positions.start_again(tp, "with events never seen")
    if not renamed:
        return
    for cid, envelopes in batch.by_customer.items():
        batch.by_customer[cid] = [
            replace(e, source=renamed.get(e.source or "", e.source)) for e in envelopes
        ]


def applied_of(stored: Stored) -> Applied:
    """What a customer has applied: their state's, or an erased customer's fence."""
    if stored.state is not None:
        return stored.state.applied
    return stored.fence or Applied()


async def apply_customers(
    by_customer: dict[str, list[Envelope]], ctx: Context
) -> tuple[list[Saved], Counter[tuple[str, str]]]:
    """Fold each customer's events into their stored state with compare-and-set writes.

    Returns what was written, plus unchanged customers with a leftover outbox
    (from a crash before publishing), so the caller publishes every outbox; and the
    (topic, accepted | duplicate) counts of the events whose writes landed.
    """
    pending = dict(by_customer)
    done: list[Saved] = []
    counted: Counter[tuple[str, str]] = Counter()
    for _ in range(MAX_CONFLICT_ROUNDS):
        if not pending:
            return done, counted
        stored = await ctx.store.load(pending)
        facts = await ctx.facts.for_products(products_to_recommend(stored, pending, ctx))
        writes: list[Write] = []
        index: list[tuple[str, Indexes]] = []
        counts: dict[str, Counter[tuple[str, str]]] = {}
        for cid, envelopes in pending.items():
            current = stored[cid]
            base = current.state or new_state(cid, current.fence, erased=current.fence is not None)
            folded = fold(base, in_event_time(envelopes), config=ctx.step, facts=facts)
            counts[cid] = outcomes(envelopes, folded.duplicate_topics)
            ticked = any(isinstance(e.event, LifecycleTick) for e in envelopes)
            if folded.changed:
                writes.append(Write(cid, current.version, folded.state))
                entry = indexes(folded.state, config=ctx.step, before=current.state, ticked=ticked)
                index.append((cid, entry))
            else:
                if folded.state.outbox or folded.state.erased:
                    done.append(Saved(cid, current.version, folded.state))
                if ticked:
                    index.append((cid, timer_entry(folded.state, config=ctx.step)))
        conflicts = await ctx.store.save(writes, index)
        ctx.metrics.conflicts.inc(len(conflicts))
        for cid in pending.keys() - conflicts:
            counted.update(counts[cid])
        done += [
            Saved(w.customer_id, w.expected_version + 1, w.state)
            for w in writes
            if w.customer_id not in conflicts
        ]
        pending = {cid: pending[cid] for cid in conflicts}
    raise KeptChanging(f"customers {sorted(pending)[:5]} kept changing under this worker")


def outcomes(
    envelopes: list[Envelope], duplicate_topics: Sequence[str | None]
) -> Counter[tuple[str, str]]:
    """(topic, accepted | duplicate) counts of one customer's events of a batch."""
    counted = Counter((e.topic or "", "accepted") for e in envelopes)
    for topic in duplicate_topics:
        counted[(topic or "", "accepted")] -= 1
        counted[(topic or "", "duplicate")] += 1
    return counted


def products_to_recommend(
    stored: dict[str, Stored], pending: dict[str, list[Envelope]], ctx: Context
) -> set[str]:
    """Products whose bought-together partners this batch's decisions may need.

    Those of due timers (a delayed cross-sell decides then), and those of new
    orders only if some campaign recommends bought-together items at once.
    """
    at_once = any(
        c.offer.items == "bought_together" and c.trigger.delay_ms == 0
        for c in ctx.step.engine.book.campaigns
    )
    products: set[str] = set()
    for cid, envelopes in pending.items():
        for envelope in envelopes:
            event = envelope.event
            if isinstance(event, Order) and at_once:
                products.update(item.product_id for item in event.items)
            elif isinstance(event, LifecycleTick) and stored[cid].state is not None:
                for item in stored[cid].state.profile.pending:
                    if item.due <= event.ts:
                        products.update(dict(item.context).get("products", ()))
    return products


async def settle(saved: list[Saved], batch: Sorted, ctx: Context) -> None:
    """Empty published outboxes, finish erasures, release the leases of applied ticks.

    If another write got in first, its writer publishes the same records again
    (same ids) and settles them: harmless downstream.
    """
    settled = [
        Write(s.customer_id, s.version, clear_outbox(s.state))
        for s in saved
        if s.state.outbox or s.state.erased
    ]
    ticks = [
        (cid, e.event.ts)
        for cid, envelopes in batch.by_customer.items()
        for e in envelopes
        if isinstance(e.event, LifecycleTick)
    ]
    await ctx.store.settle(settled, ticks)


def count_published(outputs: list[Output], ctx: Context) -> None:
    now = time.time()
    for output in outputs:
        if isinstance(output, SegmentChange):
            family = output.segment.split(":", 1)[0]
            ctx.metrics.segment_changes.labels(family, output.change).inc()
        if not isinstance(output, CampaignResult):
            continue
        decision = output.decision
        ctx.metrics.decisions.labels(decision.outcome, decision.reason).inc()
        ctx.metrics.event_to_decision.observe(max(0.0, now - decision.ts / 1000))
        if output.offer is not None:
            ctx.metrics.offers.labels(output.offer.campaign).inc()
        if output.message is not None:
            ctx.metrics.messages.labels(output.message.channel, output.message.campaign).inc()
