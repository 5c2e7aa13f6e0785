"""Event-to-decision latency at a fixed offered load.

A producer paces live records (``workload.LiveLoad``) at a fixed rate with
``asyncio.sleep``; each trigger's ``ts`` is the wall clock when it is made, just
before it is handed to the producer. A plain consumer (no group) reads the
``decisions`` topic from its end and matches decisions to triggers by
``trigger_event_id``. Two latencies per decision:

* appended: the decision record's timestamp (CreateTime, stamped by the worker's
  producer as it publishes, same host clock) minus the trigger's ``ts``: the figure
  reported as event-to-decision latency;
* received: when this consumer got the decision minus ``ts`` (adds the dev broker's
  fetch hold, about half of ``fetch_max_wait_ms``).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from speed.workload import LiveLoad, wall_ms
from stream.producer import EventProducer
from stream.settings import Settings
from stream.topics import bootstrap

TICK_SECONDS = 0.005
DRAIN_SECONDS = 15.0


@dataclass
class Latencies:
    sent: int = 0
    seconds: float = 0.0
    triggers: dict[str, int] = field(default_factory=dict)  # event id -> ts
    appended_ms: list[float] = field(default_factory=list)
    received_ms: list[float] = field(default_factory=list)

    @property
    def offered_rate(self) -> float:
        return self.sent / self.seconds if self.seconds else math.nan


class DecisionReader:
    """Reads ``decisions`` from its current end; remembers when each trigger was decided."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.topic("decisions")
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap(settings.kafka_url or ""),
            enable_auto_commit=False,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )
        self.decided: dict[str, tuple[int, int]] = {}  # trigger id -> (record ts, received)

    async def start(self) -> None:
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self._topic) or set()
        if not partitions:
            raise RuntimeError(f"topic {self._topic} has no partitions")
        assigned = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_end(*assigned)
        for tp in assigned:  # resolve the end offsets now, before any trigger is sent
            await self._consumer.position(tp)

    async def read(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batches = await self._consumer.getmany(timeout_ms=100)
            received = wall_ms()
            for records in batches.values():
                for record in records:
                    if record.value is not None:
                        trigger = orjson.loads(record.value)["trigger_event_id"]
                        self.decided.setdefault(trigger, (record.timestamp, received))

    async def stop(self) -> None:
        await self._consumer.stop()


async def offer_load(
    settings: Settings, load: LiveLoad, *, rate: float, seconds: float, result: Latencies
) -> None:
    """Send ``rate`` records per second for ``seconds``, remembering every trigger's ts."""
    async with EventProducer(settings, settings.kafka_url or "") as producer:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) + 1
            while result.sent < due:
                live = next(load)
                await producer.send(live.record.topic, live.record.value, key=live.record.key)
                if live.trigger_id is not None:
                    result.triggers[live.trigger_id] = live.ts
                result.sent += 1
            await asyncio.sleep(TICK_SECONDS)
        result.seconds = time.monotonic() - started


async def measure_latency(
    settings: Settings, load: LiveLoad, *, rate: float, seconds: float
) -> Latencies:
    result = Latencies()
    reader = DecisionReader(settings)
    stop = asyncio.Event()
    reading: asyncio.Task[None] | None = None
    try:
        await reader.start()
        reading = asyncio.create_task(reader.read(stop))
        await offer_load(settings, load, rate=rate, seconds=seconds, result=result)
        deadline = time.monotonic() + DRAIN_SECONDS
        while not result.triggers.keys() <= reader.decided.keys():
            if time.monotonic() > deadline or reading.done():
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        if reading is not None:
            await asyncio.gather(reading, return_exceptions=True)
        await reader.stop()
    for trigger, ts in result.triggers.items():
        if trigger in reader.decided:
            appended, received = reader.decided[trigger]
            result.appended_ms.append(appended - ts)
            result.received_ms.append(received - ts)
    return result


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in (0, 1]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Quantile of the observations between two scrapes of a cumulative histogram.

    Linear interpolation inside the bucket, as Prometheus' ``histogram_quantile``.
    """
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return math.nan
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower
