"""Redis memory per customer profile, measured with ``INFO memory`` on a fresh server.

Usage: .venv/bin/python bench/memory.py [--customers 100000] [--events-per-customer 20]

Builds each customer's state with the engine's own step function from a
simulated shop history (about 20 events per customer, clicks:orders ~20:1),
writes it with the engine's own store (state string, indexes, as a worker
does), and divides the growth of ``used_memory`` by the number of customers.
Uses an embedded Redis so nothing else counts (RAPPORT_REDIS_URL is ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry
from rich.progress import Progress

from models.customer import Envelope, StepConfig, clear_outbox, fold, indexes, new_state
from models.simulation import generate_history
from stream.codecs import PARSERS
from stream.devstack import start_redis
from stream.metrics import Metrics
from stream.state_codec import encode_state
from stream.store import Store, Write, connect

CHUNK = 2000


def build_states(customers: int, per_customer: int) -> dict[str, object]:
    config = StepConfig()
    events: dict[str, list[Envelope]] = {}
    history = generate_history(
        seed=5,
        start_ms=1_795_341_600_000,
        days=30,
        customers=customers,
        products=2000,
        events_per_day=customers * per_customer // 30,
    )
    offsets: dict[str, int] = {}
    for record in history:
        if record.topic == "catalog":
            continue
        event = PARSERS[record.topic](orjson.dumps(record.value), max_bytes=65536)
        if not hasattr(event, "customer_id"):
            continue
        source = f"{record.topic}/0"
        offsets[source] = offsets.get(source, -1) + 1
        events.setdefault(event.customer_id, []).append(
            Envelope(event, source, offsets[source], record.topic)
        )
    return {
        cid: clear_outbox(fold(new_state(cid), envs, config=config).state)
        for cid, envs in events.items()
    }


async def measure(states: dict[str, object], url: str) -> tuple[int, int]:
    redis = connect(url, retries=3)
    store = Store(
        redis,
        prefix="rapport:",
        retention_days=400,
        fence_days=7,
        metrics=Metrics(CollectorRegistry()),
    )
    config = StepConfig()
    before = int((await redis.info("memory"))["used_memory"])
    items = list(states.items())
    with Progress() as progress:
        task = progress.add_task("writing profiles", total=len(items))
        for i in range(0, len(items), CHUNK):
            chunk = items[i : i + CHUNK]
            await store.save(
                [Write(cid, 0, state) for cid, state in chunk],  # type: ignore[arg-type]
                [(cid, indexes(s, config=config)) for cid, s in chunk],  # type: ignore[arg-type]
            )
            progress.advance(task, len(chunk))
    after = int((await redis.info("memory"))["used_memory"])
    await redis.aclose()
    return before, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events-per-customer", type=int, default=20)
    args = parser.parse_args()
    states = build_states(args.customers, args.events_per_customer)
    sizes = [len(encode_state(s)) for s in states.values()]  # type: ignore[arg-type]
    server, url = start_redis(Path(tempfile.mkdtemp(prefix="rapport-mem-")))
    try:
        before, after = asyncio.run(measure(states, url))
    finally:
        server.terminate()
        server.wait()
    n = len(states)
    print(f"customers={n} used_memory_before={before} used_memory_after={after}")
    print(f"bytes_per_profile={(after - before) / n:,.0f} (state string + population indexes)")
    print(
        f"state_bytes (format 3, as stored) median={statistics.median(sizes):,.0f} "
        f"p90={statistics.quantiles(sizes, n=10)[-1]:,.0f} max={max(sizes):,}"
    )


if __name__ == "__main__":
    main()
