"""End-to-end throughput of one worker on the embedded stack (a first figure; see issue 7).

Usage: .venv/bin/python bench/throughput.py [--events 50000] [--customers 5000]

Pre-loads N events of a generated shop history into the input topics, then
starts one worker and times how long it takes until every record is counted
in ``rapport_events_total``. Prints events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from models.simulation import generate_history
from stream.devstack import die_with_parent, free_port, start_devstack
from stream.producer import EventProducer
from stream.settings import Settings
from stream.topics import ensure_topics


def processed(base: str) -> float:
    try:
        text = urllib.request.urlopen(f"{base}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    return sum(
        s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "rapport_events_total"
    )


async def preload(settings: Settings, events: int, customers: int) -> int:
    days = max(1, events // 20000)
    history = generate_history(
        seed=11,
        start_ms=1_795_341_600_000,
        days=days,
        customers=customers,
        products=500,
        events_per_day=events // days,
    )
    sent = 0
    async with EventProducer(settings, settings.kafka_url or "") as producer:
        for record in history:
            await producer.send(record.topic, record.value, key=record.key)
            sent += 1
            if sent >= events:
                break
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=5_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rapport-bench-"))
    stack = start_devstack(kafka_url=None, redis_url=None, work_dir=work)
    port = free_port()
    settings = Settings(
        kafka_url=stack.kafka_url,
        redis_url=stack.redis_url,
        web_port=port,
        fetch_max_wait_ms=20,
        data_dir=str(work / "worker"),
    )
    try:
        asyncio.run(ensure_topics(settings, stack.kafka_url))
        sent = asyncio.run(preload(settings, args.events, args.customers))
        env = {
            **os.environ,
            **{
                f"RAPPORT_{k.upper()}": str(v)
                for k, v in settings.model_dump().items()
                if v is not None
            },
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "agents.cli", "worker"],
            env=env,
            stdout=(work / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        base = f"http://127.0.0.1:{port}"
        started = None
        while True:
            done = processed(base)
            if started is None and done > 0:
                started = time.monotonic()
                first = done
            if done >= sent:
                break
            if worker.poll() is not None:
                raise SystemExit(f"worker died; see {work / 'worker.log'}")
            time.sleep(0.1)
        elapsed = time.monotonic() - (started or time.monotonic())
        rate = (sent - first) / elapsed if elapsed > 0 else float("nan")
        print(f"events={sent} seconds={elapsed:.1f} events_per_second={rate:,.0f}")
        worker.terminate()
        worker.wait(20)
    finally:
        stack.close()


if __name__ == "__main__":
    main()
