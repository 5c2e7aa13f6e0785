"""Taking a flow's topics in event-time order, as Kafka Streams does with its partitions.

A customer's clicks, orders, customer records, feedback and internal events live in
partition *p* of five topics. Fetched as they come, a full-speed replay of a shop's
history reads them months apart: small clicks arrive thousands at a time, wholesale
orders a few at a time, so a July click is applied before the February order it
follows, and an unsubscribe after the message it should have stopped.

So fetched records are held per partition, and of each group of co-partitioned
partitions only those records go to the flow whose Kafka timestamp is at or below
what every lagging partition of the group has reached: a partition with records
still to fetch (its log ends past what was fetched) and none held may yet bring
earlier ones. Records go in timestamp order across the group and in offset order
within a partition. Producers that stamp records with their event time (Rapport's
own importer and internal records do) get event-time order; others get the order
of their clocks, which for live traffic is the same thing.

A record is never held longer than ``max_hold_seconds``: a partition that stays
behind (its leader gone, fetches starved) delays the others by that much at most.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from faust.types import TP

#: Whether a partition has records past what was fetched from it.
Lagging = Callable[[TP], bool]


class Alignment:
    """Fetched records held per partition until their group may release them."""

    def __init__(self, *, max_hold_seconds: float) -> None:
        self.max_hold_seconds = max_hold_seconds
        self._held: dict[TP, deque[tuple[float, Any]]] = {}
        self._reached: dict[TP, int] = {}  # timestamp of the last record fetched
        self.fetched: dict[TP, int] = {}  # offset of the last record fetched

    def clear(self) -> None:
        """Forget everything held (a rebalance or a seek: it is fetched again)."""
        self._held.clear()
        self._reached.clear()
        self.fetched.clear()

    def holding(self) -> bool:
        return any(self._held.values())

    def hold(self, tp: TP, records: Sequence[Any], now: float) -> None:
        if not records:
            return
        if records[0].offset <= self.fetched.get(tp, -1):
            # The partition's log went back (it was reset under the worker, or the
            # consumer was repositioned): what is held of it was read from before.
            self._held.pop(tp, None)
        self._held.setdefault(tp, deque()).extend((now, r) for r in records)
        self._reached[tp] = records[-1].timestamp
        self.fetched[tp] = records[-1].offset

    def release(self, group: Iterable[TP], lagging: Lagging, now: float) -> list[Any]:
        """The records of one group of co-partitioned partitions that may go now."""
        members = list(group)
        held = [tp for tp in members if self._held.get(tp)]
        if not held:
            return []
        waiting_on = [tp for tp in members if not self._held.get(tp) and lagging(tp)]
        oldest = min(self._held[tp][0][0] for tp in held)
        if not waiting_on or now - oldest >= self.max_hold_seconds:
            safe = None
        else:
            safe = min(self._reached.get(tp, -1) for tp in waiting_on)
        released = [self._take(tp, safe) for tp in held]
        return list(heapq.merge(*released, key=lambda r: r.timestamp))

    def _take(self, tp: TP, safe: int | None) -> list[Any]:
        """The held prefix of a partition at or below ``safe`` (everything for None)."""
        buffer = self._held[tp]
        taken = []
        while buffer and (safe is None or buffer[0][1].timestamp <= safe):
            taken.append(buffer.popleft()[1])
        return taken
