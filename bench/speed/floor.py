"""The raw floor: the least a consumer doing Rapport's kind of work could cost.

A plain aiokafka consumer in a fresh consumer group (same fetch wait as the
worker) that, per fetched batch of up to ``batch_size`` records, makes one
packed script call (EVALSHA): per customer of the batch, HINCRBY of an event
count, HSET of the customer's latest raw record and a TTL, on a hash named by
``stream.keys.customer_state`` (so it carries the ``{customer_id}`` tag); then
commits the offsets. No parsing, no state model, no outputs: a floor. One pass
over the pre-loaded records is too short to time, so it reads them again from the
start (same consumer, no new group join) until its window lasts ``MIN_SECONDS``.
"""

from __future__ import annotations

import time
from asyncio import CancelledError, current_task
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from speed.procs import Window, mark
from stream import keys
from stream.app import INPUT_TOPICS
from stream.settings import Settings
from stream.store import DAY_MS, connect
from stream.topics import bootstrap

#: A single pass over the pre-loaded records takes well under a second: too short to time.
MIN_SECONDS = 2.0

# KEYS: one state hash per customer; ARGV[1] ttl ms, then per key: count, latest record.
_PACKED_WRITE = """
for i, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'n', ARGV[2 * i])
  redis.call('HSET', key, 'last', ARGV[2 * i + 1])
  redis.call('PEXPIRE', key, ARGV[1])
end
return #KEYS
"""


def packed_args(records: Sequence[Any], prefix: str) -> tuple[list[str], list[Any]]:
    """Keys and arguments of one script call for a batch: customers in first-seen order."""
    latest: dict[bytes, tuple[int, bytes]] = {}
    for record in records:
        key = record.key or b"-"
        count, _ = latest.get(key, (0, b""))
        latest[key] = (count + 1, record.value)
    names = [keys.customer_state(prefix, k.decode()) for k in latest]
    args: list[Any] = [400 * DAY_MS]
    for count, value in latest.values():
        args += [count, value]
    return names, args


async def write_batch(script: AsyncScript, batch: Sequence[Any], prefix: str) -> None:
    names, args = packed_args(batch, prefix)
    await script(keys=names, args=args)
    # redis-py can swallow a cancellation (Ctrl-C) that lands mid-call: honour it here
    if current_task().cancelling():  # type: ignore[union-attr]
        raise CancelledError


def consumer(settings: Settings, group: str) -> AIOKafkaConsumer:
    session_ms = int(settings.session_timeout * 1000)
    return AIOKafkaConsumer(
        *(settings.topic(s) for s in INPUT_TOPICS),
        bootstrap_servers=bootstrap(settings.kafka_url or ""),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=session_ms // 5,
    )


async def run_floor(
    settings: Settings,
    *,
    redis_url: str,
    group: str,
    records: int,
    pids: Mapping[str, int],
    on_progress: Callable[[float], None],
) -> Window:
    """Consume the ``records`` pre-loaded records, again from the start until the window
    (which starts once the first batch is written) lasts ``MIN_SECONDS``: a single pass
    is too short to time. CPU of ``pids`` is sampled at both ends."""
    redis: Redis = connect(redis_url, retries=3)
    script = redis.register_script(_PACKED_WRITE)
    kafka = consumer(settings, group)
    try:
        await kafka.start()
        done, first = 0, None
        while True:
            batches = await kafka.getmany(timeout_ms=200, max_records=settings.batch_size)
            batch = [r for part in batches.values() for r in part]
            if not batch:
                continue
            await write_batch(script, batch, settings.redis_prefix)
            await kafka.commit()
            done += len(batch)
            on_progress(min(done, records))
            first = first or mark(done, pids)
            if done % records == 0 and time.monotonic() - first.t >= MIN_SECONDS:
                return Window(first, mark(done, pids))
            if done % records == 0:
                await kafka.seek_to_beginning()
    finally:
        await kafka.stop()
        await redis.aclose()
