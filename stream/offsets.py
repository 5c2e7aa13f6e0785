"""Which incarnation of a partition's log a record comes from.

Dedup remembers, per customer, the highest offset applied from each source
partition: a record at or below it is a redelivery. That holds only while offsets
name the same records. When the log starts again from 0 (the dev broker restarted,
a topic deleted and recreated, a shop moved to another cluster), new records
arrive at offsets already "applied", and would be dropped as duplicates.

So each partition's log has an *epoch*, kept in Redis with the highest offset
applied from it. A batch whose records go back to or below that offset is either
a redelivery (the log still holds the offset applied: its end is past it) or a
new log (its end is at or below it: that offset no longer exists). In the second
case the epoch moves on, and records are deduplicated under a new source name
(``topic/partition@epoch``), so their offsets are compared with nothing from the
old log. Event-id dedup still applies across epochs.

A new log that has already grown past the old highest offset cannot be told by
its end. Then the records themselves tell: a redelivery brings back events their
customers have applied (their ids are in the customers' recent-id windows), a new
log brings events none of them has seen (``agents.customers.restarted_logs``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from stream import keys
from stream.batching import Delivery
from stream.metrics import Metrics

log = logging.getLogger(__name__)

#: Answers of the broker that must agree before a log is taken for new, and their spacing.
RESET_CONFIRMATIONS = 2
RESET_RECHECK_SECONDS = 0.5

#: The end offset of a partition's log (next offset to be written); None if unknown.
LogEnd = Callable[[str, int], Awaitable[int | None]]

# KEYS[1] position; ARGV: epoch, highest offset of the batch, ttl ms. Moves only forward
# within the epoch the batch was read in.
_ADVANCE = """
local now = redis.call('GET', KEYS[1])
local epoch, high = 0, -1
if now then
  local sep = string.find(now, ':', 1, true)
  epoch = tonumber(string.sub(now, 1, sep - 1))
  high = tonumber(string.sub(now, sep + 1))
end
if tonumber(ARGV[1]) ~= epoch then return 0 end
if tonumber(ARGV[2]) > high then high = tonumber(ARGV[2]) end
redis.call('SET', KEYS[1], epoch .. ':' .. high, 'PX', ARGV[3])
return 1
"""


@dataclass(frozen=True, slots=True)
class Position:
    epoch: int
    high: int  # highest offset applied in this epoch, -1 for none


def source_name(topic: str, partition: int, epoch: int) -> str:
    """The dedup source of a record: ``topic/partition``, with ``@epoch`` after a reset."""
    return f"{topic}/{partition}" if epoch == 0 else f"{topic}/{partition}@{epoch}"


class LogPositions:
    """Per source partition: its epoch and the highest offset applied (cached, in Redis)."""

    def __init__(
        self, redis: Redis, *, prefix: str, ttl_ms: int, log_end: LogEnd, metrics: Metrics
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        self.log_end = log_end
        self.metrics = metrics
        self._known: dict[tuple[str, int], Position] = {}
        self._advance = redis.register_script(_ADVANCE)

    async def sources(self, deliveries: Sequence[Delivery]) -> dict[tuple[str, int], str]:
        """The dedup source name of each partition in the batch, after checking whether its
        log was reset (see the module docstring)."""
        spans: dict[tuple[str, int], tuple[int, int]] = {}
        for d in deliveries:
            tp = (d.topic, d.partition)
            low, high = spans.get(tp, (d.offset, d.offset))
            spans[tp] = (min(low, d.offset), max(high, d.offset))
        await self._load([tp for tp in spans if tp not in self._known])
        names = {}
        for tp, (low, high) in spans.items():
            position = self._known[tp]
            if low <= position.high:
                position = await self._check_reset(tp, position, read_up_to=high)
            names[tp] = source_name(*tp, position.epoch)
        return names

    def replayed(self, deliveries: Sequence[Delivery]) -> dict[tuple[str, int], int]:
        """Partitions of the batch with records at or below the highest offset applied in
        their epoch (a redelivery, or a new log the log end could not tell): that offset."""
        out: dict[tuple[str, int], int] = {}
        for d in deliveries:
            tp = (d.topic, d.partition)
            known = self._known.get(tp)
            if known is not None and d.offset <= known.high:
                out[tp] = known.high
        return out

    async def start_again(self, tp: tuple[str, int], why: str) -> str:
        """Take ``tp``'s log for a new one (a new epoch); its new dedup source name."""
        position = self._known[tp]
        reset = Position(position.epoch + 1, -1)
        await self.redis.set(
            keys.log_position(self.prefix, *tp), f"{reset.epoch}:-1", px=self.ttl_ms
        )
        self._known[tp] = reset
        self.metrics.offset_resets.labels(tp[0]).inc()
        log.warning(
            "%s/%d: offsets went back to at most %d, %s: the log was reset (broker data "
            "lost, topic recreated or another cluster); its records are applied as new "
            "(epoch %d)",
            *tp,
            position.high,
            why,
            reset.epoch,
        )
        return source_name(*tp, reset.epoch)

    async def applied(self, deliveries: Iterable[Delivery]) -> None:
        """Remember the highest offset of each partition of a batch that is done."""
        highest: dict[tuple[str, int], int] = {}
        for d in deliveries:
            tp = (d.topic, d.partition)
            highest[tp] = max(d.offset, highest.get(tp, d.offset))
        if not highest:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for tp, offset in highest.items():
                epoch = self._known[tp].epoch
                await self._advance(
                    keys=[keys.log_position(self.prefix, *tp)],
                    args=[epoch, offset, self.ttl_ms],
                    client=pipe,
                )
            await pipe.execute()
        for tp, offset in highest.items():
            known = self._known[tp]
            self._known[tp] = Position(known.epoch, max(known.high, offset))

    async def _load(self, partitions: list[tuple[str, int]]) -> None:
        if not partitions:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for tp in partitions:
                pipe.get(keys.log_position(self.prefix, *tp))
            answers = await pipe.execute()
        for tp, raw in zip(partitions, answers, strict=True):
            if raw is None:
                self._known[tp] = Position(0, -1)
            else:
                epoch, _, high = raw.partition(b":")
                self._known[tp] = Position(int(epoch), int(high))

    async def _check_reset(
        self, tp: tuple[str, int], position: Position, *, read_up_to: int
    ) -> Position:
        """Records at or below the highest offset applied: a redelivery, or a new log?

        A new log only if its end is at or below that offset, twice in a row, and past
        every record just read from it (an end at or below a record in hand is a stale
        answer, and a stale answer must never make a redelivery count twice).
        """
        await self._load([tp])  # another worker may have moved it since
        position = self._known[tp]
        for attempt in range(RESET_CONFIRMATIONS):
            if attempt:
                await asyncio.sleep(RESET_RECHECK_SECONDS)
            end = await self.log_end(*tp)
            if end is None or end > position.high or end <= read_up_to:
                return position  # the log still holds what was applied: a redelivery
        await self.start_again(tp, f"and the log ends at {end}")
        return self._known[tp]
