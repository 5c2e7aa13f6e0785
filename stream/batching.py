"""The batch fast path: faust's consumer hands whole fetched batches to a flow.

Why: faust delivers each record through ``Consumer._drain_messages`` ->
``Conductor.on_message`` -> a channel queue -> a stream -> the agent, with a
task and an ``asyncio.wait`` per record; measured, that is ~100 us of CPU per
event before a flow sees it, more than a no-op flow can afford. Rapport's flows
work on batches anyway (one Redis script per batch), so for their topics the
consumer below skips the per-record machinery: it takes what aiokafka fetched,
groups it per flow (a flow may serve several topics), and awaits the flow's
handler once per chunk of ``batch_size`` records. Topics without a flow
(faust's own, e.g. the leader assignor's) keep faust's per-message path.

What stays faust's, unchanged: fetching and prefetching (aiokafka), flow control
(``stop_flow`` at a rebalance, ``perform_seek`` after it), the acked-offset
bookkeeping that decides what to commit (``_acked``, gaps, ``_committed_offset``),
the commit timer, and ``wait_empty`` at rebalance and shutdown: a batch in flight
sits in faust's unacked-message set, so faust waits for it before committing and
handing partitions over.

Correctness: a chunk's offsets are acked only after its handler returned, i.e.
after its Redis writes and outputs were acknowledged; if the handler raises, the
worker crashes with the chunk unacked, so its offsets are never committed (the
flows raise only after riding out an outage for ``RAPPORT_OUTAGE_SECONDS``: see
``stream.resilience``); if it gives the chunk up (``Abandoned``), the chunk stays
unacked and the worker goes on. A
chunk is acked only in the consumer generation it was fetched in: after a
rebalance the new owner replays it and the flows' offset dedup makes that a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from time import monotonic
from typing import Any, cast

from faust.transport.consumer import Fetcher
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.utils.futures import notify

from stream.alignment import Alignment
from stream.resilience import Abandoned

log = logging.getLogger(__name__)

#: How often a consumer with records held for alignment looks again when no fetch comes.
HELD_RECHECK_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class Delivery:
    """The parts of a Kafka record a flow uses (kept apart from faust's and aiokafka's types)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


BatchHandler = Callable[[Sequence[Delivery]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class BatchFlow:
    """A handler for every record of its topics, called with at most ``batch_size`` at a time."""

    handler: BatchHandler
    batch_size: int


class _InFlight:
    """Stands for a batch being handled in faust's set of unacked messages.

    ``wait_empty`` (rebalance, shutdown) waits until every member is ``acked``.
    """

    __slots__ = ("__weakref__", "acked", "refcount")

    def __init__(self) -> None:
        self.acked = False
        self.refcount = 1


def chunks(records: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


def group_by_topic(
    records: Mapping[TP, Sequence[Any]], active: set[TP] | None, buffered: set[TP]
) -> dict[str, list[tuple[TP, Sequence[Any]]]]:
    """Fetched records per topic, only of partitions still active (as faust's getmany)."""
    grouped: dict[str, list[tuple[TP, Sequence[Any]]]] = {}
    for tp, recs in records.items():
        if recs and (active is None or tp in active or tp in buffered):
            grouped.setdefault(tp.topic, []).append((tp, recs))
    return grouped


class BatchConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer with the batch fast path in its drain loop."""

    @property
    def batch_flows(self) -> Mapping[str, BatchFlow]:
        return cast(Mapping[str, BatchFlow], getattr(self.app, "batch_flows", {}))

    @property
    def alignment(self) -> Alignment:
        """Records held until their group of co-partitioned partitions may release them."""
        aligned: Alignment | None = getattr(self, "_alignment", None)
        if aligned is None:
            wait = float(getattr(self.app.conf, "rapport_align_wait_seconds", 0.0))
            aligned = self._alignment = Alignment(max_hold_seconds=wait)
            self._aligned_generation = self.app.consumer_generation_id
        return aligned

    async def _drain_messages(self, fetcher: Any) -> None:
        if not self.batch_flows:
            return await super()._drain_messages(fetcher)
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = cast(Fetcher, fetcher)._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(HELD_RECHECK_SECONDS)
                await self.sleep(0)
                if self.should_stop or not (records or self.alignment.holding()):
                    continue
                if not self.flow_active:
                    self.alignment.clear()
                    await self.perform_seek()  # as faust does: re-read from committed
                    continue
                await self._drain_fetched(records, active)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _drain_fetched(self, records: Mapping[TP, Sequence[Any]], active: Any) -> None:
        """One handler call per flow and chunk: a flow serving several topics gets their
        records together (one Redis and one publish round trip, not one each), released
        in event-time order across its co-partitioned partitions (``stream.alignment``)."""
        generation = self.app.consumer_generation_id
        aligned = self.alignment
        if self._aligned_generation != generation:  # a rebalance: all is fetched again
            aligned.clear()
            self._aligned_generation = generation
        flows = self.batch_flows
        now = monotonic()
        for topic, parts in group_by_topic(records, active, self._buffered_partitions).items():
            fresh = [(tp, self._unread(tp, recs)) for tp, recs in parts]
            if topic not in flows:
                await self._deliver_one_by_one(fresh)
                continue
            for tp, recs in fresh:
                aligned.hold(tp, recs, now)
        for flow, groups in self._flow_groups().items():
            batch = [r for group in groups for r in aligned.release(group, self._lagging, now)]
            for chunk in chunks(batch, flow.batch_size):
                if not self.flow_active or self.app.consumer_generation_id != generation:
                    aligned.clear()
                    return  # a rebalance began: the rest is read again after it
                await self._handle(flow, chunk, generation)

    def _flow_groups(self) -> dict[BatchFlow, list[list[TP]]]:
        """Per flow, its assigned partitions grouped by partition number (co-partitioned:
        one customer's records of every topic of the flow are in partition p of each)."""
        flows = self.batch_flows
        grouped: dict[BatchFlow, dict[int, list[TP]]] = {}
        for tp in self.assignment():
            flow = flows.get(tp.topic)
            if flow is not None:
                grouped.setdefault(flow, {}).setdefault(tp.partition, []).append(tp)
        return {flow: list(groups.values()) for flow, groups in grouped.items()}

    def _lagging(self, tp: TP) -> bool:
        """The log of ``tp`` ends past what was fetched from it (or, before any fetch,
        past what the group committed)."""
        end = self.highwater(tp)
        if end is None:
            return False
        fetched = self.alignment.fetched.get(tp)
        if fetched is not None:
            return fetched + 1 < end
        committed = self._committed_offset.get(tp)
        return (committed or 0) < end

    def _unread(self, tp: TP, records: Sequence[Any]) -> Sequence[Any]:
        """Drop records at or below what this consumer already read (as faust's drain)."""
        read = self._read_offset[tp]
        return records if read is None else [r for r in records if r.offset >= read]

    async def _deliver_one_by_one(self, parts: Iterable[tuple[TP, Sequence[Any]]]) -> None:
        """faust's own path, for topics without a batch flow."""
        for tp, recs in parts:
            for record in recs:
                await self.wait_first(
                    self.callback(self._to_message(tp, record)), self.suspend_flow.wait()
                )
                self._read_offset[tp] = record.offset

    async def _handle(self, flow: BatchFlow, chunk: Sequence[Any], generation: int) -> None:
        """Run one chunk to the end, even if the fetcher is cancelled meanwhile (shutdown):
        faust then waits for it in ``wait_empty`` and commits what it finished."""
        read_before = self._mark_read(chunk)
        marker = _InFlight()
        self._unacked_messages.add(marker)  # type: ignore[arg-type]
        task = asyncio.ensure_future(
            self._run_and_ack(flow, chunk, generation, marker, read_before)
        )
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done() and self.transport.app.should_stop:
                log.info("stopping: letting the batch in flight finish first")
            raise

    def _mark_read(self, chunk: Sequence[Any]) -> dict[TP, int | None]:
        """Record the chunk as read (as faust does at delivery); return what was read before."""
        before: dict[TP, int | None] = {}
        for record in chunk:
            tp = self._new_topicpartition(record.topic, record.partition)
            if tp not in before:
                before[tp] = self._read_offset[tp]
            self._read_offset[tp] = record.offset
        return before

    async def _run_and_ack(
        self,
        flow: BatchFlow,
        chunk: Sequence[Any],
        generation: int,
        marker: _InFlight,
        read_before: Mapping[TP, int | None],
    ) -> None:
        try:
            await flow.handler(
                [Delivery(r.topic, r.partition, r.offset, r.key, r.value) for r in chunk]
            )
        except Abandoned:
            log.info("batch left unacknowledged: its partitions moved or the worker stops")
        except Exception as exc:
            log.exception("batch flow failed after its retries; stopping with it unacked")
            await self.app.crash(exc)
            raise
        else:
            if self.app.consumer_generation_id == generation:
                await self._ack_chunk(chunk, read_before)
        finally:
            marker.acked = True
            self._unacked_messages.discard(marker)  # type: ignore[arg-type]
            notify(self._waiting_for_ack)

    async def _ack_chunk(self, chunk: Sequence[Any], read_before: Mapping[TP, int | None]) -> None:
        """faust's ``ack`` per record, as one step per partition, plus its gap bookkeeping."""
        assigned = self.assignment()
        offsets: dict[TP, list[int]] = {}
        for record in chunk:
            tp = self._new_topicpartition(record.topic, record.partition)
            offsets.setdefault(tp, []).append(record.offset)
        now = monotonic()
        for tp, tp_offsets in offsets.items():
            if tp not in assigned:
                continue
            await self._add_read_gaps(tp, read_before.get(tp), tp_offsets)
            committed = self._committed_offset[tp]
            index = self._acked_index[tp]
            new = [
                o for o in tp_offsets if (committed is None or o >= committed) and o not in index
            ]
            index.update(new)
            self._acked[tp].extend(new)
            self._n_acked += len(new)
            self.app.monitor.stream_inbound_time[tp] = now
        commit_every = self._commit_every
        if commit_every is not None and self._n_acked >= commit_every:
            self._n_acked = 0
            await self.commit()

    async def _add_read_gaps(self, tp: TP, previous: int | None, offsets: Sequence[int]) -> None:
        """Offsets the broker skipped (compaction, transaction markers) count as done."""
        for offset in offsets:
            if previous is not None and offset - previous > 1:
                await self._add_gap(tp, previous + 1, offset - 1)
            previous = offset
