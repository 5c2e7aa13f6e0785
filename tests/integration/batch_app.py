"""A worker with one batch flow whose handler the tests steer through Redis.

Run as ``python -m tests.integration.batch_app`` with ``RAPPORT_*`` settings and:
  BATCH_TOPIC   the topic to consume (full name)
  BATCH_KEY     a Redis list: each handled batch is pushed as "offset,offset,..."
                (and each batch's first offset to BATCH_KEY:entered, on entry)
  BATCH_GATE    optional Redis key: the handler waits until it exists
  BATCH_POISON  optional record value: a batch holding it fails (the worker must stop)

It uses the worker's own app factory (``create_app``), so the consumer, its
fetch wait and the batch fast path are exactly those of ``rapport worker``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import faust

from stream.app import create_app, raw_topic
from stream.batching import Delivery
from stream.settings import Settings
from stream.store import connect


def build(settings: Settings) -> faust.App:
    app = create_app(settings)
    redis = connect(settings.redis_url or "", retries=3)
    seen, gate, poison = (
        os.environ["BATCH_KEY"],
        os.environ.get("BATCH_GATE"),
        os.environ.get("BATCH_POISON", "").encode(),
    )

    async def handle(batch: Sequence[Delivery]) -> None:
        await redis.rpush(f"{seen}:entered", batch[0].offset)
        if gate:
            while not await redis.exists(gate):
                await asyncio.sleep(0.05)
        if poison and any(d.value == poison for d in batch):
            raise RuntimeError("poison record: this batch must stay unacked")
        await redis.rpush(seen, ",".join(str(d.offset) for d in batch))

    app.batch_flow([raw_topic(app, os.environ["BATCH_TOPIC"])], handle, batch_size=5)
    return app


def main() -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = faust.Worker(build(Settings()), loglevel="INFO", loop=loop)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
