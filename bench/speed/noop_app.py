"""The faust no-op consumer of the bench: faust's own cost per event, without Rapport's work.

Run by ``bench/run.py`` as a subprocess configured by ``RAPPORT_*`` variables, with
``--path stream|batch``. The app is built by ``stream.app.create_app`` (the worker's
transport, consumer and fetch wait), subscribed to every input topic, and does nothing
with the events but count them:

* ``stream`` (default): faust's own per-message path, one agent per input topic taking
  batches as the worker used to (``noack_take(batch_size, within=WITHIN_SECONDS)``) and
  only acking them;
* ``batch``: the batch fast path the worker uses now (``RapportApp.batch_flow``, see
  ``stream.batching``), one handler per input topic called with whole fetched batches.

One pass over the pre-loaded records can be too short to time (the fast path takes a
fraction of a second for thousands), so, like the raw floor, it reads them again from
the start (a seek on its assigned partitions, no new group join) until its first batch
is at least ``--min-seconds`` ago when a pass of ``--records`` ends. ``GET
/bench/consumed`` answers how many events were handled so far, and whether it stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence

import faust
from faust.web import Request, Response, View

from stream.app import INPUT_TOPICS, RapportApp, create_app, raw_topic
from stream.batching import Delivery
from stream.settings import Settings

PATHS = ("stream", "batch")
#: Longest wait, seconds, to fill a batch on the per-message path: the worker's former
#: ``batch_within`` setting (removed with the batch fast path, which needs no wait).
WITHIN_SECONDS = 0.05


class Consumed:
    """The count, and the re-reading of the records until the window is long enough."""

    def __init__(self, app: faust.App, topics: set[str], records: int, min_seconds: float):
        self.app, self.topics = app, topics
        self.records, self.min_seconds = records, min_seconds
        self.events = 0
        self.first: float | None = None
        self.finished = False
        self._seeking: set[asyncio.Future[None]] = set()

    async def add(self, events: int) -> None:
        self.first = self.first or time.monotonic()
        self.events += events
        if self.events % self.records or self.finished:
            return
        if time.monotonic() - self.first >= self.min_seconds:
            self.finished = True
        else:  # a pass is done: read it again, once the batch being counted is acked
            seeking = asyncio.ensure_future(self.read_again())
            self._seeking.add(seeking)
            seeking.add_done_callback(self._seeking.discard)

    async def read_again(self) -> None:
        """Seek every input partition to the start, after ``wait_empty``: the batch fast
        path sets a partition's read offset when it acks a batch, i.e. after its handler
        returned, which would undo a seek made from within the handler."""
        consumer = self.app.consumer
        await consumer.wait_empty()
        for tp in consumer.assignment():
            if tp.topic in self.topics:
                await consumer.seek(tp, 0)


def register_stream_noop(app: faust.App, settings: Settings, suffix: str, c: Consumed) -> None:
    """faust's per-message path: an agent that takes batches and acks every event."""

    async def noop(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(settings.batch_size, within=WITHIN_SECONDS):
            for event in events:
                await stream.ack(event)
            await c.add(len(events))

    app.agent(raw_topic(app, settings.topic(suffix)), name=f"bench.noop.{suffix}")(noop)


def register_batch_noop(app: RapportApp, settings: Settings, suffix: str, c: Consumed) -> None:
    """The batch fast path: a handler that counts each batch (acked when it returns)."""

    async def noop(deliveries: Sequence[Delivery]) -> None:
        await c.add(len(deliveries))

    app.batch_flow([raw_topic(app, settings.topic(suffix))], noop, batch_size=settings.batch_size)


def build_app(settings: Settings, args: argparse.Namespace) -> faust.App:
    app = create_app(settings)
    topics = {settings.topic(suffix) for suffix in INPUT_TOPICS}
    consumed = Consumed(app, topics, args.records, args.min_seconds)
    register = register_batch_noop if args.path == "batch" else register_stream_noop
    for suffix in INPUT_TOPICS:
        register(app, settings, suffix, consumed)

    @app.page("/bench/consumed")
    class ConsumedView(View):
        async def get(self, request: Request) -> Response:
            return self.json({"events": consumed.events, "finished": consumed.finished})

    return app


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="noop_app.py", description=__doc__)
    parser.add_argument("--path", choices=PATHS, default="stream", help="consumer path")
    parser.add_argument("--records", type=int, required=True, help="records per pass")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="shortest window")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args(sys.argv[1:])
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # faust's worker runs on this same loop
    settings = Settings()
    worker = faust.Worker(build_app(settings, args), loglevel="WARNING", loop=loop)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
