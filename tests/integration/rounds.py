"""Rounds of orders for a test's own customers, and waiting until a worker counts them:
the tests that break something under a running worker (Redis, the broker's log) send a
round before, during and after, and check that each customer has exactly one per round."""

from __future__ import annotations

import asyncio

from stream.producer import EventProducer
from stream.settings import Settings
from tests.integration.conftest import eventually, http_get

T0 = 1_700_000_000_000  # 2023-11-14: history, well before wall time
HOUR = 3_600_000
DAY = 24 * HOUR


async def send_orders(settings: Settings, customers: list[str], round_: int) -> None:
    """One order per customer; the same round sent twice is a producer's retry (same ids)."""
    async with EventProducer(settings, settings.kafka_url or "") as producer:
        for i, cid in enumerate(customers):
            await producer.send(
                "orders",
                {
                    "event_id": f"order-{round_}-{cid}",
                    "ts": T0 + round_ * HOUR + i,
                    "customer_id": cid,
                    "order_id": f"o-{round_}-{cid}",
                    "total": 10.0,
                },
            )


def orders_of(base: str, customers: list[str]) -> list[int]:
    answers = [http_get(f"{base}/customers/{cid}") for cid in customers]
    return [body["orders"] if status == 200 else 0 for status, body in answers]


def all_have(base: str, customers: list[str], orders: int, timeout: float = 60) -> None:
    asyncio.run(
        eventually(
            lambda: orders_of(base, customers) == [orders] * len(customers), timeout=timeout
        )
    )
