"""What the soak reads from the broker: the workers' committed offsets and the output topics.

Both use plain aiokafka consumers that never join the workers' group (manual assignment), so
reading causes no rebalance. ``close`` and a new instance after a broker restart: the dev
broker forgets everything, connections included.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.app import INPUT_TOPICS, INTERNAL_TOPICS
from stream.producer import EventProducer
from stream.settings import Settings
from stream.topics import bootstrap

CONSUMED = (*INPUT_TOPICS, *INTERNAL_TOPICS)


class GroupOffsets:
    """The workers' consumer group as the broker sees it: committed offsets and ends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap(settings.kafka_url or ""),
            group_id=settings.app_id,
            enable_auto_commit=False,
        )
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self.consumer.start()
        self.partitions = [
            TopicPartition(self.settings.topic(suffix), p)
            for suffix in CONSUMED
            for p in range(self.settings.partitions)
        ]
        self.consumer.assign(self.partitions)

    async def close(self) -> None:
        await self.consumer.stop()

    async def lag(self) -> dict[str, int]:
        """Records per consumed topic not yet committed by the group (absent: none)."""
        ends = await self.consumer.end_offsets(self.partitions)
        lag: dict[str, int] = {}
        for tp in self.partitions:
            done = await self.consumer.committed(tp) or 0
            behind = max(0, ends[tp] - done)
            if behind:
                suffix = self.settings.suffix(tp.topic)
                lag[suffix] = lag.get(suffix, 0) + behind
        return lag

    async def committed(self, suffixes: Sequence[str]) -> int:
        """Records of these topics the group has committed, all partitions together."""
        total = 0
        for tp in self.partitions:
            if self.settings.suffix(tp.topic) in suffixes:
                total += await self.consumer.committed(tp) or 0
        return total


class TopicLog:
    """Every record of some output topics, read from the start and then kept up to date."""

    def __init__(self, settings: Settings, suffixes: Sequence[str]) -> None:
        self.settings = settings
        self.suffixes = tuple(suffixes)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap(settings.kafka_url or ""),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self.records: dict[str, list[dict[str, object]]] = {s: [] for s in suffixes}
        self.partitions: list[TopicPartition] = []

    async def start(self, earlier: dict[str, list[dict[str, object]]] | None = None) -> None:
        """``earlier``: records read before the broker lost them, kept in front."""
        for suffix, records in (earlier or {}).items():
            self.records[suffix] = list(records)
        await self.consumer.start()
        self.partitions = [
            TopicPartition(self.settings.topic(s), p)
            for s in self.suffixes
            for p in range(self.settings.partitions)
        ]
        self.consumer.assign(self.partitions)
        await self.consumer.seek_to_beginning(*self.partitions)

    async def close(self) -> None:
        await self.consumer.stop()

    async def catch_up(self) -> None:
        """Read until every partition is at the end it had when this was called."""
        ends = await self.consumer.end_offsets(self.partitions)
        while [tp for tp in self.partitions if await self.consumer.position(tp) < ends[tp]]:
            batches = await self.consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                suffix = self.settings.suffix(tp.topic)
                self.records[suffix].extend(
                    orjson.loads(r.value) for r in records if r.value is not None
                )


async def send_all(settings: Settings, records: Sequence[tuple[str, str, bytes]]) -> None:
    """``(topic suffix, key, payload)`` through one producer, acknowledged at the end.

    The project's ``EventProducer`` settings (acks=all, linger 5 ms) with a bounded number of
    sends in flight, as ``rapport import`` sends history.
    """
    async with EventProducer(settings, settings.kafka_url or "") as producer:
        for suffix, key, payload in records:
            await producer.send(suffix, payload, key=key)
