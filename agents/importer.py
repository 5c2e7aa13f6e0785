"""``rapport import`` and ``rapport tail``: history in, records out, with plain Kafka clients."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from stream.app import kafka_url
from stream.history import RecordError, count_lines, read_records
from stream.producer import EventProducer
from stream.settings import Settings
from stream.topics import bootstrap, ensure_topics

#: Bad lines listed in the summary; the rest are only counted.
SHOWN_ERRORS = 10


async def run_import(settings: Settings, path: Path, topic: str, *, console: Console) -> int:
    """Send every readable record; list unreadable lines. Exit code 0, or 1 if any were bad.

    Records go through the same topic as live traffic, so the engine validates
    them the same way (invalid ones reach ``deadletter``); only lines that are
    not even a record (broken JSON or CSV) are reported here.
    """
    url = kafka_url(settings)
    await ensure_topics(settings, url)
    errors: list[RecordError] = []
    sent = 0
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"{path.name} -> {settings.topic(topic)}", total=count_lines(path))
        async with EventProducer(settings, url) as producer:
            for item in read_records(path):
                if isinstance(item, RecordError):
                    errors.append(item)
                else:
                    await producer.send(topic, item)
                    sent += 1
                progress.advance(task)
    console.print(f"sent {sent} records to {settings.topic(topic)} at {url}")
    for err in errors[:SHOWN_ERRORS]:
        console.print(f"[yellow]line {err.line}[/yellow]: {err.reason}")
    if len(errors) > SHOWN_ERRORS:
        console.print(f"... and {len(errors) - SHOWN_ERRORS} more unreadable lines")
    return 1 if errors else 0


async def run_tail(settings: Settings, topic: str, *, limit: int, from_beginning: bool) -> None:
    """Print the topic's records as JSON lines until ``limit`` or Ctrl-C; stop quietly when
    the reader of stdout goes away (``rapport tail offers | head``)."""
    consumer = AIOKafkaConsumer(
        settings.topic(topic),
        bootstrap_servers=bootstrap(kafka_url(settings)),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    try:
        await consumer.start()
        await print_records(consumer, limit)
    except BrokenPipeError:
        silence_stdout()
    finally:
        await consumer.stop()


async def print_records(consumer: AIOKafkaConsumer, limit: int) -> None:
    seen = 0
    async for record in consumer:
        value = orjson.loads(record.value) if record.value else None
        sys.stdout.write(orjson.dumps(value).decode() + "\n")
        sys.stdout.flush()
        seen += 1
        if limit and seen >= limit:
            return


def silence_stdout() -> None:
    """Point stdout at /dev/null, so Python's last flush cannot fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
