"""Rapport's own cost per event: the customer flow in-process, without the broker.

Usage: .venv/bin/python bench/flow.py [--events 20000] [--batch 500] [--profile]

Feeds the bench's simulated shop history (``speed.workload``) straight into
``agents.customers.process_batch`` in fetch-sized batches per topic, against a
real Redis (an embedded one; RAPPORT_REDIS_URL is ignored), with a publisher
that only counts records. So the figure is Rapport's work per event (parse,
load, fold, campaigns, encode, save, settle) with no faust and no broker: the
part of the worker's CPU that the batch fast path cannot remove. ``--profile``
prints the cProfile functions with the most own time (where to optimise next).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from speed.workload import Record, build_workload, wall_ms

from agents.context import Context
from agents.customers import process_batch
from agents.worker import build_context, tune_garbage_collector
from stream.batching import Delivery
from stream.devstack import start_redis
from stream.records import OutRecord
from stream.settings import Settings

CUSTOMER_TOPICS = ("clicks", "orders", "customers", "feedback")


class CountingPublisher:
    """Stands in for the broker: counts what would be published."""

    def __init__(self) -> None:
        self.records = 0

    async def publish(self, records: Sequence[OutRecord]) -> None:
        self.records += len(records)


def batches(records: list[Record], size: int) -> list[list[Delivery]]:
    """What fetches of a busy worker hand the customer flow: windows of ``size`` records
    of every customer topic, in arrival order (as ``stream.batching`` does)."""
    out: list[list[Delivery]] = []
    offsets: dict[str, int] = {}
    for start in range(0, len(records), size):
        window: list[Delivery] = []
        for r in records[start : start + size]:
            if r.topic not in CUSTOMER_TOPICS:
                continue
            offset = offsets[r.topic] = offsets.get(r.topic, -1) + 1
            window.append(Delivery(r.topic, 0, offset, r.key.encode(), r.value))
        out.append(window)
    return out


def context(settings: Settings) -> tuple[Context, CountingPublisher]:
    publisher = CountingPublisher()
    return build_context(settings, publisher), publisher  # type: ignore[arg-type]


async def run(args: argparse.Namespace, redis_url: str, console: Console) -> list[float]:
    workload = build_workload(
        events=args.events, customers=max(10, args.events // 10), seed=args.seed, now_ms=wall_ms()
    )
    work = batches(workload.records, args.batch)
    events = sum(len(b) for b in work)
    rates = []
    for run_number in range(args.runs):
        settings = Settings(
            redis_url=redis_url, redis_prefix=f"flow{run_number}:", clock="event", topic_prefix=""
        )
        ctx, publisher = context(settings)
        profiler = cProfile.Profile() if args.profile and run_number == args.runs - 1 else None
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"run {run_number + 1}/{args.runs}", total=events)
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            for deliveries in work:
                await process_batch(deliveries, ctx)
                progress.advance(task, len(deliveries))
            if profiler:
                profiler.disable()
            seconds = time.perf_counter() - started
        rates.append(events / seconds)
        console.print(
            f"run {run_number + 1}: {events:,} events in {seconds:.2f} s = "
            f"{events / seconds:,.0f} events/s, {1e6 * seconds / events:,.0f} us/event, "
            f"{publisher.records:,} records published"
        )
        await ctx.store.redis.flushdb()
        await ctx.store.redis.aclose()
        if profiler:
            out = io.StringIO()
            profiler.dump_stats("/tmp/flow.prof")
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
            print(out.getvalue())
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/flow.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=20_000, help="input records (default 20000)")
    parser.add_argument("--batch", type=int, default=500, help="records per batch (default 500)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--seed", type=int, default=11, help="simulated shop seed (default 11)")
    parser.add_argument("--profile", action="store_true", help="cProfile the last run")
    parser.add_argument("--top", type=int, default=30, help="functions shown by --profile")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    tune_garbage_collector()  # as `rapport worker` does
    with tempfile.TemporaryDirectory(prefix="rapport-flow-") as work:
        server, url = start_redis(Path(work))
        try:
            rates = asyncio.run(run(args, url, console))
        finally:
            server.terminate()
            server.wait()
    median = statistics.median(rates)
    console.print(
        f"median: {median:,.0f} events/s ({1e6 / median:,.0f} us/event in Rapport's flow)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
