"""``rapport_events_total`` counts a record only once its batch is done: state written and
every output acknowledged. A reader that waits for the counter sees the batch whole."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson

from agents.customers import process_batch
from agents.worker import build_context
from stream.batching import Delivery
from stream.records import OutRecord
from stream.settings import Settings
from tests.integration.conftest import delete_keys, isolated, unique

T0 = 1_700_000_000_000


class GatedPublisher:
    """Holds every publish until the test opens the gate (a slow broker)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.published: list[OutRecord] = []

    async def publish(self, records: Sequence[OutRecord]) -> None:
        await self.gate.wait()
        self.published += records


def accepted(ctx: object) -> float:
    registry = ctx.metrics.registry  # type: ignore[attr-defined]
    return registry.get_sample_value(
        "rapport_events_total", {"topic": "orders", "outcome": "accepted"}
    ) or 0.0


async def test_events_are_counted_after_their_outputs_are_published(settings: Settings) -> None:
    own = isolated(settings, "counted", clock="event")
    publisher = GatedPublisher()
    ctx = build_context(own, publisher)  # type: ignore[arg-type]
    deliveries = []
    for offset in range(20):
        cid = unique("c")
        value = {
            "event_id": unique("e"),
            "ts": T0 + offset,
            "customer_id": cid,
            "order_id": unique("o"),
            "total": 25.0,
        }
        deliveries.append(
            Delivery(own.topic("orders"), 0, offset, cid.encode(), orjson.dumps(value))
        )
    try:
        batch = asyncio.create_task(process_batch(deliveries, ctx))
        await asyncio.sleep(1.0)
        assert not batch.done()
        assert accepted(ctx) == 0, "counted before the outputs were published"
        publisher.gate.set()
        await batch
        assert accepted(ctx) == 20
        assert publisher.published
    finally:
        delete_keys(own)
