"""The ``rapport`` command line: worker, demo, import, tail.

What a person can fix (a setting, a server to start, a port in use) ends a
command with one line saying what and which setting, and exit code 2; a
traceback is left for what only a developer can fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import ValidationError
from rich.console import Console

from agents.worker_process import quiet_kafka_client
from models.campaign_config import CampaignFileError
from stream.app import INPUT_TOPICS, OUTPUT_TOPICS, WebPortUnavailable, check_web_port, kafka_url
from stream.devstack import DevStackError, redacted, redis_problem
from stream.settings import Settings

cli = typer.Typer(
    name="rapport",
    help="Rapport: a streaming customer database and offer engine. "
    "Settings come from RAPPORT_* environment variables (see README).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)

#: Exit code of a command stopped by something the user can fix (as click's usage errors).
USER_ERROR = 2


def fail(message: str) -> NoReturn:
    say(message)
    raise typer.Exit(USER_ERROR)


def say(message: str) -> None:
    """One red line, never wrapped (it is often read from a log) nor read as markup."""
    console.print(message, style="red", markup=False, highlight=False, soft_wrap=True)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for err in exc.errors():
            name = "RAPPORT_" + "_".join(str(p) for p in err["loc"]).upper()
            reason = err["msg"].removeprefix("Value error, ")
            say(f"invalid setting {name}={err['input']!r}: {reason}")
        raise typer.Exit(USER_ERROR) from exc


def check_campaigns(settings: Settings) -> None:
    """The campaign file must exist and be valid before anything starts (file:line errors)."""
    from stream.campaign_file import load_book

    load_book(settings.campaigns, currency=settings.default_currency)


def check_redis(settings: Settings) -> None:
    from agents.worker import DEFAULT_REDIS_URL

    url = settings.redis_url or DEFAULT_REDIS_URL
    if (problem := redis_problem(url)) is not None:
        where = redacted(url) + ("" if settings.redis_url else " (the default)")
        fail(f"cannot reach Redis at {where} ({problem}): start it, or set RAPPORT_REDIS_URL")


@contextlib.contextmanager
def failures_explained(settings: Settings) -> Iterator[None]:
    """Turn the failures a user can fix into one line and exit code 2."""
    url = kafka_url(settings) + ("" if settings.kafka_url else " (the default)")
    try:
        yield
    except KafkaConnectionError:
        fail(f"cannot reach the Kafka broker at {url}: start it, or set RAPPORT_KAFKA_URL")
    except KafkaError as exc:
        fail(f"the Kafka broker at {url} failed: {exc!r} (check RAPPORT_KAFKA_URL)")
    except CampaignFileError as exc:
        fail(f"invalid setting RAPPORT_CAMPAIGNS: {exc}")
    except (WebPortUnavailable, DevStackError) as exc:
        fail(str(exc))


@cli.command()
def worker() -> None:
    """Run one production worker (run more for more partitions)."""
    from agents.worker import run_worker

    settings = load_settings()
    with failures_explained(settings):
        check_campaigns(settings)
        check_web_port(settings)
        check_redis(settings)
        run_worker(settings)


def positive(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise typer.BadParameter("must be greater than 0")
    return value


@cli.command()
def demo(
    duration: Annotated[
        float | None,
        typer.Option(
            help="Stop after this many seconds (default: until Ctrl-C).", callback=positive
        ),
    ] = None,
    customers: Annotated[int, typer.Option(help="Simulated shoppers.", min=1)] = 500,
    rate: Annotated[
        float, typer.Option(help="Target events per second.", callback=positive)
    ] = 100.0,
    seed: Annotated[int, typer.Option(help="Seed of the shopper simulation.")] = 7,
) -> None:
    """Embedded broker and Redis (unless configured), a worker, simulated shoppers, live figures."""
    from agents.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    settings = load_settings()
    with failures_explained(settings), quiet_kafka_client():
        check_campaigns(settings)
        code = run_demo(
            settings,
            duration=duration,
            customers=customers,
            rate=rate,
            seed=seed,
            console=console,
        )
    raise typer.Exit(code)


@cli.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="JSON lines (.jsonl/.ndjson/.json) or CSV with a header.",
        ),
    ],
    topic: Annotated[str, typer.Option(help=f"Input topic suffix: {', '.join(INPUT_TOPICS)}.")],
) -> None:
    """Load history into an input topic: the same path as live events."""
    from agents.importer import run_import

    if topic not in INPUT_TOPICS:
        fail(f"--topic must be one of {', '.join(INPUT_TOPICS)}, not {topic!r}")
    settings = load_settings()
    with failures_explained(settings), quiet_kafka_client():
        code = asyncio.run(run_import(settings, file, topic, console=console))
    raise typer.Exit(code)


@cli.command()
def tail(
    topic: Annotated[str, typer.Argument(help="Topic suffix, e.g. offers or decisions.")],
    limit: Annotated[int, typer.Option(help="Stop after this many records (0: never).", min=0)] = 0,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest record.")] = True,
) -> None:
    """Print records of a topic as JSON lines (a plain Kafka consumer, outside the worker)."""
    from agents.importer import run_tail

    if topic not in (*INPUT_TOPICS, *OUTPUT_TOPICS):
        fail(f"unknown topic suffix {topic!r}")
    settings = load_settings()
    with failures_explained(settings), quiet_kafka_client():
        asyncio.run(run_tail(settings, topic, limit=limit, from_beginning=from_beginning))


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
