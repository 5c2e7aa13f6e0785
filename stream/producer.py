"""Producing contract input events (demo shoppers, imports, tests) with plain aiokafka."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from stream.codecs import parse_ts
from stream.settings import Settings
from stream.topics import bootstrap

#: Sends in flight before ``send`` waits for the broker: bounded memory, steady progress.
MAX_IN_FLIGHT = 5000


def record_key(topic: str, value: Mapping[str, Any]) -> str | None:
    """The contract's key: ``product_id`` for the catalog, else ``customer_id``."""
    key = value.get("product_id" if topic == "catalog" else "customer_id")
    return key if isinstance(key, str) else None


def event_time(value: Mapping[str, Any] | bytes) -> int | None:
    """The record's event time, as its Kafka timestamp (CreateTime), so that workers can
    take the topics of a replayed history in event-time order (``stream.alignment``);
    None (the producer's clock) when the value has no readable ``ts``."""
    if isinstance(value, bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(value, dict):
            return None
    return parse_ts(value.get("ts"))


class EventProducer:
    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap(url),
            acks="all",
            linger_ms=5,
            max_request_size=4 * 1024 * 1024,
        )
        self._in_flight: list[asyncio.Future[Any]] = []

    async def __aenter__(self) -> EventProducer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.flush()
        finally:
            await self._producer.stop()

    async def send(
        self, topic: str, value: Mapping[str, Any] | bytes, key: str | None = None
    ) -> None:
        """Queue one event; ``key`` defaults to the contract key taken from the value."""
        if isinstance(value, bytes):
            payload = value
        else:
            payload = orjson.dumps(value)
            key = key if key is not None else record_key(topic, value)
        future = await self._producer.send(
            self.settings.topic(topic),
            payload,
            key=key.encode() if key is not None else None,
            timestamp_ms=event_time(value),
        )
        self._in_flight.append(future)
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            await self.flush()

    async def flush(self) -> None:
        """Wait until the broker has acknowledged everything sent so far."""
        pending, self._in_flight = self._in_flight, []
        if pending:
            await asyncio.gather(*pending)
