"""Publishing output records and waiting until the broker has them.

A batch is acknowledged (its offsets become committable) only after every
record it produced is acknowledged by the broker: nothing decided is lost when
a worker dies between deciding and publishing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import faust

from stream.records import OutRecord
from stream.settings import Settings


class Publisher:
    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def publish(self, records: Sequence[OutRecord]) -> None:
        if not records:
            return
        producer = self.app.producer
        pending = [
            await producer.send(
                self.settings.topic(r.topic), r.key.encode(), r.value, None, None, None
            )
            for r in records
        ]
        await asyncio.gather(*pending)
