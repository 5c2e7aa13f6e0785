"""A shop for integration tests: events for a test's own customers, in its own stretch of
event time on an event-clock worker, and the records the engine answers with."""

from __future__ import annotations

import itertools
from typing import Any

from stream.producer import EventProducer
from stream.settings import Settings
from tests.integration.conftest import eventually, http_get, profile_when, read_topic, unique

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z, 11:00 in Berlin (the default zone)
HOUR = 3_600_000
DAY = 24 * HOUR
#: Each Shop starts 400 days after the previous one, so tests never share event time.
_epochs = itertools.count(1)


class Shop:
    """A few verbs for one test: events for its customers, moving the clock, reading outputs."""

    def __init__(self, settings: Settings, base: str, producer: EventProducer) -> None:
        self.settings, self.base, self.producer = settings, base, producer
        self.t0 = T0 + next(_epochs) * 400 * DAY
        self.clock_customer = unique("clock")

    async def send(self, topic: str, value: dict[str, Any], *, flush: bool = True) -> None:
        await self.producer.send(topic, {"event_id": unique("e"), **value})
        if flush:
            await self.producer.flush()

    async def customer(self, cid: str, at: int, *, consent: bool = True, **extra: Any) -> None:
        fields = {"email": f"{cid}@example.com", "consent": {"email": consent}, **extra}
        await self.send("customers", {"ts": self.t0 + at, "customer_id": cid, **fields})
        await profile_when(self.base, cid, lambda p: bool(p["contact"]))

    async def click(self, cid: str, at: int, kind: str, product: str, **extra: Any) -> None:
        await self.send(
            "clicks",
            {"ts": self.t0 + at, "customer_id": cid, "type": kind, "product_id": product, **extra},
        )

    async def order(
        self, cid: str, at: int, total: float, items: list[tuple[str, str]], **extra: Any
    ) -> str:
        order_id = extra.pop("order_id", unique("o"))
        await self.send(
            "orders",
            {
                "ts": self.t0 + at,
                "customer_id": cid,
                "order_id": order_id,
                "total": total,
                "items": [
                    {"product_id": p, "category": c, "quantity": 1, "unit_price": total}
                    for p, c in items
                ],
                **extra,
            },
        )
        return order_id

    async def advance(self, at: int) -> None:
        """Move the engine clock to t0 + at with somebody else's event, and wait for it.

        Topics are consumed independently, so a click that moves the clock can
        overtake an order sent just before it: tests first wait (``profile_when``)
        for the facts that must come before a timer fires.
        """
        await self.send(
            "clicks", {"ts": self.t0 + at, "customer_id": self.clock_customer, "type": "page_view"}
        )
        await eventually(
            lambda: (http_get(f"{self.base}/health")[1] or {}).get("watermark", 0) >= self.t0 + at
        )

    async def decisions(self, cid: str, want: int = 1, settle: float = 1.5) -> list[dict]:
        return await read_topic(
            self.settings,
            "decisions",
            lambda v: v["customer_id"] == cid,
            want=want,
            settle=settle,
            timeout=30,
        )

    async def outcome(self, cid: str, campaign: str, want: int = 1) -> list[tuple[str, str]]:
        found = await read_topic(
            self.settings,
            "decisions",
            lambda v: v["customer_id"] == cid and v["campaign"] == campaign,
            want=want,
            settle=1.5,
            timeout=30,
        )
        return [(d["outcome"], d["reason"]) for d in found]

    async def offers(self, cid: str, want: int = 1) -> list[dict]:
        return await read_topic(
            self.settings, "offers", lambda v: v["customer_id"] == cid, want=want, timeout=30
        )

    async def messages(self, cid: str, channel: str = "email", want: int = 1) -> list[dict]:
        return await read_topic(
            self.settings,
            f"messages.{channel}",
            lambda v: v["customer_id"] == cid,
            want=want,
            timeout=30,
        )

    async def nothing_for(self, cid: str, campaign: str, wait: float = 2.0) -> None:
        found = await read_topic(
            self.settings,
            "decisions",
            lambda v: v["customer_id"] == cid and v["campaign"] == campaign,
            want=0,
            settle=wait,
            timeout=wait + 5,
        )
        assert found == [], found
