"""The ``rapport`` command line: worker, demo, import, tail."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from stream.app import INPUT_TOPICS, OUTPUT_TOPICS
from stream.settings import Settings

cli = typer.Typer(
    name="rapport",
    help="Rapport: a streaming customer database and offer engine. "
    "Settings come from RAPPORT_* environment variables (see README).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for err in exc.errors():
            name = "RAPPORT_" + "_".join(str(p) for p in err["loc"]).upper()
            console.print(f"[red]invalid setting {name}[/red]: {err['msg']}")
        raise typer.Exit(2) from exc


@cli.command()
def worker() -> None:
    """Run one production worker (run more for more partitions)."""
    from agents.worker import run_worker
    from models.campaign_config import CampaignFileError

    try:
        run_worker(load_settings())
    except CampaignFileError as exc:
        console.print(f"[red]campaign file rejected[/red]: {exc}")
        raise typer.Exit(2) from exc


@cli.command()
def demo(
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    customers: Annotated[int, typer.Option(help="Simulated shoppers.")] = 500,
    rate: Annotated[float, typer.Option(help="Target events per second.")] = 100.0,
    seed: Annotated[int, typer.Option(help="Seed of the shopper simulation.")] = 7,
) -> None:
    """Embedded broker and Redis (unless configured), a worker, simulated shoppers, live figures."""
    from agents.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    code = run_demo(
        load_settings(),
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
        console.print(f"[red]--topic must be one of {', '.join(INPUT_TOPICS)}, not {topic!r}[/red]")
        raise typer.Exit(2)
    raise typer.Exit(asyncio.run(run_import(load_settings(), file, topic, console=console)))


@cli.command()
def tail(
    topic: Annotated[str, typer.Argument(help="Topic suffix, e.g. offers or decisions.")],
    limit: Annotated[int, typer.Option(help="Stop after this many records (0: never).")] = 0,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest record.")] = True,
) -> None:
    """Print records of a topic as JSON lines (a plain Kafka consumer, outside the worker)."""
    from agents.importer import run_tail

    if topic not in (*INPUT_TOPICS, *OUTPUT_TOPICS):
        console.print(f"[red]unknown topic suffix {topic!r}[/red]")
        raise typer.Exit(2)
    asyncio.run(run_tail(load_settings(), topic, limit=limit, from_beginning=from_beginning))


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
