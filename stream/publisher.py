"""Publishing output records and waiting until the broker has them.

A batch is acknowledged (its offsets become committable) only after every
record it produced is acknowledged by the broker: nothing decided is lost when
a worker dies between deciding and publishing.
"""

from __future__ import annotations

from collections.abc import Sequence

import faust

from stream.records import OutRecord
from stream.settings import Settings

#: Records handed to the producer before waiting for the broker's acknowledgements: a
#: batch whose decisions fan out to many records never holds more sends than this.
PUBLISH_CHUNK = 1000


class Publisher:
    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def publish(self, records: Sequence[OutRecord]) -> None:
        """Send every record and return once the broker has acknowledged all of them."""
        producer = self.app.producer
        for start in range(0, len(records), PUBLISH_CHUNK):
            pending = [
                await producer.send(
                    self.settings.topic(r.topic),
                    r.key.encode(),
                    r.value,
                    None,
                    None if r.timestamp_ms is None else r.timestamp_ms / 1000,
                    None,
                )
                for r in records[start : start + PUBLISH_CHUNK]
            ]
            for acknowledged in pending:
                await acknowledged
