"""Producing contract input events (demo shoppers, imports, tests) with plain aiokafka."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from stream.codecs import parse_ts
from stream.settings import Settings
from stream.topics import bootstrap

#: Sends in flight before ``send`` waits for the broker: bounded memory, steady progress.
MAX_IN_FLIGHT = 5000
#: An event time this far past now is not used as the record's timestamp (``_stamp``).
FUTURE_STAMP_MS = 86_400_000


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
        self._last_stamp: dict[str, int] = {}

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
            timestamp_ms=self._stamp(topic, value),
        )
        self._in_flight.append(future)
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            await self.flush()

    def _stamp(self, topic: str, value: Mapping[str, Any] | bytes) -> int | None:
        """The record's event time; for a record without a readable one, or one far
        ahead of now (it goes to deadletter), the time of the record sent before it on the
        topic, so that it does not hold the topic's later records back in a worker's
        event-time alignment."""
        ts = event_time(value)
        if ts is None or ts > time.time() * 1000 + FUTURE_STAMP_MS:
            return self._last_stamp.get(topic)
        self._last_stamp[topic] = ts
        return ts

    async def flush(self) -> None:
        """Wait until the broker has acknowledged everything sent so far."""
        pending, self._in_flight = self._in_flight, []
        for acknowledged in pending:  # at most MAX_IN_FLIGHT, already sent
            await acknowledged
