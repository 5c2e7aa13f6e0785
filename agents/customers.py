"""The customer flow: clicks, orders, customers and feedback into state and decisions.

Per batch: parse -> (re-key | deadletter) -> load -> fold -> save -> publish ->
clear outbox -> count. Offsets become committable only when this returns, i.e.
after state is written and every output is acknowledged by the broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from agents.context import Context
from models.customer import CustomerState, Envelope, clear_outbox, fold, new_state
from models.events import CatalogUpdate, Rejected
from models.outputs import CampaignResult
from stream.codecs import PARSERS
from stream.records import OutRecord, campaign_records, deadletter_record
from stream.store import Write

log = logging.getLogger(__name__)

#: Rounds of optimistic retries before giving up on a batch (then the worker stops).
MAX_CONFLICT_ROUNDS = 20


@dataclass(frozen=True, slots=True)
class Delivery:
    """The parts of a Kafka record this flow uses (kept apart from faust's Event type)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


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
    rejected: int = 0
    forwarded: int = 0
    newest_ts: int | None = None


def sort_deliveries(
    deliveries: Sequence[Delivery], suffix: str, ctx: Context, *, now_ms: int
) -> Sorted:
    """Parse every record; route it to its customer, to a re-key, or to the deadletter."""
    parse = PARSERS[suffix]
    out = Sorted()
    for d in deliveries:
        event = parse(
            d.value or b"",
            max_bytes=ctx.settings.max_event_bytes,
            default_currency=ctx.settings.default_currency,
        )
        if isinstance(event, Rejected | CatalogUpdate):
            reason = event if isinstance(event, Rejected) else Rejected("not a customer event")
            ctx.metrics.deadletters.labels(suffix, reason.code).inc()
            out.rejected += 1
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
            out.outputs.append(OutRecord(suffix, event.customer_id, d.value or b""))
            out.forwarded += 1
            continue
        source = f"{d.topic}/{d.partition}"
        out.by_customer.setdefault(event.customer_id, []).append(
            Envelope(event=event, source=source, offset=d.offset)
        )
        out.newest_ts = event.ts if out.newest_ts is None else max(out.newest_ts, event.ts)
    return out


async def process_batch(deliveries: Sequence[Delivery], suffix: str, ctx: Context) -> None:
    now_ms = int(time.time() * 1000)
    batch = sort_deliveries(deliveries, suffix, ctx, now_ms=now_ms)
    ctx.metrics.batch_size.labels(suffix).observe(len(deliveries))
    ctx.metrics.events.labels(suffix, "rejected").inc(batch.rejected)
    async with ctx.customer_writes:
        saved = await apply_customers(batch.by_customer, suffix, ctx)
        results = [r for write in saved for r in write.state.outbox]
        await ctx.publisher.publish(
            batch.outputs + [rec for r in results for rec in campaign_records(r)]
        )
        count_published(results, ctx)
        await settle_outboxes(saved, ctx)
    if batch.newest_ts is not None:
        clock = await ctx.store.advance_clock(batch.newest_ts)
        ctx.metrics.watermark.set(clock / 1000)


async def apply_customers(
    by_customer: dict[str, list[Envelope]], suffix: str, ctx: Context
) -> list[Saved]:
    """Fold each customer's events into their stored state with compare-and-set writes.

    Returns what was written (or, for an unchanged customer with a leftover
    outbox, what is stored) so the caller publishes each state's outbox.
    """
    pending = dict(by_customer)
    done: list[Saved] = []
    for _ in range(MAX_CONFLICT_ROUNDS):
        if not pending:
            return done
        stored = await ctx.store.load(pending)
        writes: list[Write] = []
        counts: dict[str, tuple[int, int]] = {}
        for cid, envelopes in pending.items():
            current = stored[cid]
            folded = fold(current.state or new_state(cid), envelopes, config=ctx.step)
            counts[cid] = (folded.accepted, folded.duplicates)
            write = Write(cid, current.version, folded.state)
            if folded.changed:
                writes.append(write)
            elif folded.state.outbox:
                done.append(Saved(cid, current.version, folded.state))
        conflicts = await ctx.store.save(writes)
        ctx.metrics.conflicts.inc(len(conflicts))
        for cid in pending.keys() - conflicts:
            accepted, duplicates = counts[cid]
            ctx.metrics.events.labels(suffix, "accepted").inc(accepted)
            ctx.metrics.events.labels(suffix, "duplicate").inc(duplicates)
        done += [
            Saved(w.customer_id, w.expected_version + 1, w.state)
            for w in writes
            if w.customer_id not in conflicts
        ]
        pending = {cid: pending[cid] for cid in conflicts}
    raise RuntimeError(f"customers {sorted(pending)[:5]} kept changing under this worker")


async def settle_outboxes(saved: list[Saved], ctx: Context) -> None:
    """Remove published records from the outbox, unless the customer changed meanwhile.

    If another write got in first, its writer publishes the same records again
    (same ids) and clears them: harmless downstream.
    """
    clears = [
        Write(s.customer_id, s.version, clear_outbox(s.state, s.state.outbox))
        for s in saved
        if s.state.outbox
    ]
    await ctx.store.save(clears)


def count_published(results: list[CampaignResult], ctx: Context) -> None:
    now = time.time()
    for result in results:
        decision = result.decision
        ctx.metrics.decisions.labels(decision.outcome, decision.reason).inc()
        ctx.metrics.event_to_decision.observe(max(0.0, now - decision.ts / 1000))
        if result.offer is not None:
            ctx.metrics.offers.labels(result.offer.campaign).inc()
        if result.message is not None:
            ctx.metrics.messages.labels(result.message.channel, result.message.campaign).inc()
