"""The faust no-op consumer of the bench: faust's own cost per event, without Rapport's work.

Run by ``bench/run.py`` as a subprocess configured by ``RAPPORT_*`` variables. The app
is built by ``stream.app.create_app`` (the worker's transport and fetch wait), with
one agent per input topic that takes batches exactly as the worker does
(``noack_take(batch_size, within=batch_within)``) and only acks them.
``GET /bench/consumed`` answers how many events were acked so far.
"""

from __future__ import annotations

import asyncio

import faust
from faust.web import Request, Response, View

from stream.app import INPUT_TOPICS, create_app, raw_topic
from stream.settings import Settings


class Consumed:
    def __init__(self) -> None:
        self.events = 0


def register_noop(app: faust.App, settings: Settings, suffix: str, consumed: Consumed) -> None:
    async def noop(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_within):
            for event in events:
                await stream.ack(event)
            consumed.events += len(events)

    app.agent(raw_topic(app, settings.topic(suffix)), name=f"bench.noop.{suffix}")(noop)


def build_app(settings: Settings) -> faust.App:
    app = create_app(settings)
    consumed = Consumed()
    for suffix in INPUT_TOPICS:
        register_noop(app, settings, suffix, consumed)

    @app.page("/bench/consumed")
    class ConsumedView(View):
        async def get(self, request: Request) -> Response:
            return self.json({"events": consumed.events})

    return app


def main() -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # faust's worker runs on this same loop
    settings = Settings()
    worker = faust.Worker(build_app(settings), loglevel="WARNING", loop=loop)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
