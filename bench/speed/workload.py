"""What the bench feeds the consumers: a generated shop history, and a paced live load.

The history comes from ``models.simulation.generate_history`` (catalogue first, then
clicks, orders and customer records with consent in event-time order, clicks:orders
about 20:1), serialised once and produced into each run's fresh topic prefix with the
project's own ``EventProducer``. The live load of the latency phase replays more of
the same simulated shop (without its opening catalogue and registrations) stamped with
the wall clock, with every ``trigger_every``-th record a first email opt-in of a new
customer (which fires the ``welcome`` campaign).
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

from models.simulation import DAY_MS, REGISTRATION_WINDOW_MS, SimulatedRecord, generate_history
from stream.producer import EventProducer
from stream.settings import Settings

#: Simulated events per day of history; the span grows with ``--events``.
EVENTS_PER_DAY = 20_000
PRODUCTS = 500
#: Every customer of a simulated history registers within its first minute.
OPENING_MS = REGISTRATION_WINDOW_MS


@dataclass(frozen=True, slots=True)
class Record:
    """One input record as it goes on the wire: topic suffix, key, JSON bytes."""

    topic: str
    key: str
    value: bytes


@dataclass(frozen=True)
class Workload:
    records: list[Record]
    customers: int  # distinct customer ids (anonymous visitors included): profiles created
    per_topic: dict[str, int]
    customer_ids: tuple[str, ...]  # those ids, sorted


def build_workload(*, events: int, customers: int, seed: int, now_ms: int) -> Workload:
    """The first ``events`` records of a history that ends about now (so the live clock fits)."""
    days = max(1, events // EVENTS_PER_DAY)
    history = generate_history(
        seed=seed,
        start_ms=now_ms - days * DAY_MS,
        days=days,
        customers=customers,
        products=PRODUCTS,
        # a little more than needed: the simulator's output falls a bit short of its knob
        events_per_day=math.ceil(events * 1.25 / days),
    )
    records = [
        Record(r.topic, r.key, orjson.dumps(r.value)) for r in itertools.islice(history, events)
    ]
    if len(records) < events:
        raise ValueError(f"the simulated history has only {len(records)} of {events} records")
    ids = {orjson.loads(r.value)["customer_id"] for r in records if r.topic != "catalog"}
    per_topic = dict(Counter(r.topic for r in records))
    return Workload(records, len(ids), per_topic, tuple(sorted(ids)))


async def produce(
    settings: Settings, records: list[Record], on_progress: Callable[[int], None]
) -> None:
    """Send every record into ``settings``' topics and wait until the broker has them all."""
    async with EventProducer(settings, settings.kafka_url or "") as producer:
        for sent, record in enumerate(records, 1):
            await producer.send(record.topic, record.value, key=record.key)
            if sent % 1000 == 0:
                on_progress(sent)
    on_progress(len(records))


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class LiveRecord:
    record: Record
    ts: int  # the record's ``ts`` field: the wall clock when it was made
    trigger_id: str | None  # event id of a campaign trigger, else None


class LiveLoad:
    """An endless stream of live records: simulated shop traffic plus campaign triggers."""

    def __init__(self, *, seed: int, customers: int, tag: str, trigger_every: int) -> None:
        start = wall_ms()
        history = generate_history(
            seed=seed,
            start_ms=start,
            days=365,
            customers=customers,
            products=PRODUCTS,
            events_per_day=EVENTS_PER_DAY,
        )
        self._traffic = (r for r in history if not _opening(r, start))
        self._tag = tag
        self._trigger_every = trigger_every
        self._count = itertools.count(1)

    def __iter__(self) -> Iterator[LiveRecord]:
        return self

    def __next__(self) -> LiveRecord:
        number = next(self._count)
        ts = wall_ms()
        if number % self._trigger_every == 0:
            return self._trigger(number, ts)
        simulated = next(self._traffic)
        value = {**simulated.value, "ts": ts}
        return LiveRecord(Record(simulated.topic, simulated.key, orjson.dumps(value)), ts, None)

    def _trigger(self, number: int, ts: int) -> LiveRecord:
        """A new customer opting in to email: the ``welcome`` campaign decides at once."""
        customer_id = f"live-{self._tag}-{number:07d}"
        event_id = f"bench-{self._tag}-{number:07d}"
        value = {
            "event_id": event_id,
            "ts": ts,
            "customer_id": customer_id,
            "email": f"{customer_id}@example.com",
            "consent": {"email": True},
        }
        return LiveRecord(Record("customers", customer_id, orjson.dumps(value)), ts, event_id)


def _opening(record: SimulatedRecord, start_ms: int) -> bool:
    """The catalogue and every customer's registration, which open each simulated history:
    already in the pre-loaded history, and a burst of thousands that is not live traffic."""
    if record.topic == "catalog":
        return True
    ts = record.value["ts"]
    return record.topic == "customers" and isinstance(ts, int) and ts <= start_ms + OPENING_MS
