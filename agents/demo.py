"""``rapport demo``: the whole product on one laptop, with live figures.

Starts the embedded stack (unless configured), one worker as a child process,
and the shopper simulator producing through the contract topics. Stops on
Ctrl-C or after ``--duration`` and leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.table import Table

from models.simulation import ShopSimulator
from stream.devstack import DevStack, die_with_parent, start_devstack
from stream.producer import EventProducer
from stream.settings import Settings
from stream.topics import ensure_topics

#: The dev broker holds fetches for half the wait; a short wait keeps the demo snappy.
DEV_FETCH_WAIT_MS = "20"
TICK_SECONDS = 0.2


@dataclass
class Figures:
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    worker: dict[str, float] = field(default_factory=dict)
    rate: float = 0.0


def run_demo(
    settings: Settings,
    *,
    duration: float | None,
    customers: int,
    rate: float,
    seed: int,
    console: Console,
) -> int:
    work = Path(settings.data_dir) / "demo"
    console.print("[bold]Rapport demo[/bold]: starting broker and Redis ...")
    stack = start_devstack(
        kafka_url=settings.kafka_url, redis_url=settings.redis_url, work_dir=work
    )
    worker = None
    try:
        for note in stack.notes:
            console.print(f"  {note}")
        run = settings.model_copy(
            update={"kafka_url": stack.kafka_url, "redis_url": stack.redis_url}
        )
        asyncio.run(ensure_topics(run, stack.kafka_url))
        worker = start_worker(stack, settings, work, embedded=settings.kafka_url is None)
        base = f"http://127.0.0.1:{settings.web_port}"
        wait_healthy(base, worker, console, work / "worker.log")
        console.print(
            f"\n  API        {base}/customers/c00001\n  metrics    {base}/metrics\n"
            f"  health     {base}/health\n  dashboard  {base}/dashboard\n"
            f"  offers     RAPPORT_KAFKA_URL={stack.kafka_url} rapport tail offers\n"
            f"  worker log {work / 'worker.log'}\n"
        )
        asyncio.run(
            drive(
                run,
                stack,
                base,
                duration=duration,
                customers=customers,
                rate=rate,
                seed=seed,
                console=console,
            )
        )
        return 0
    except KeyboardInterrupt:
        console.print("\nstopping ...")
        return 0
    finally:
        if worker is not None:
            stop_process(worker)
        stack.close()
        console.print("stopped: worker, broker and Redis are down.")


def start_worker(
    stack: DevStack, settings: Settings, work: Path, *, embedded: bool
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RAPPORT_KAFKA_URL": stack.kafka_url,
        "RAPPORT_REDIS_URL": stack.redis_url,
        "RAPPORT_DATA_DIR": str(work / "worker"),
    }
    if embedded:
        env.setdefault("RAPPORT_FETCH_MAX_WAIT_MS", DEV_FETCH_WAIT_MS)
    log = (work / "worker.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )


def wait_healthy(
    base: str, worker: subprocess.Popen[bytes], console: Console, log: Path, timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    with console.status("waiting for the worker to join its consumer group ..."):
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}; see {log}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{base}/health", timeout=1) as answer,
            ):
                if answer.status == 200:
                    return
            time.sleep(0.3)
    raise RuntimeError(f"the worker did not answer {base}/health in {timeout:.0f}s; see {log}")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def drive(
    settings: Settings,
    stack: DevStack,
    base: str,
    *,
    duration: float | None,
    customers: int,
    rate: float,
    seed: int,
    console: Console,
) -> None:
    start_ms = int(time.time() * 1000)
    sim = ShopSimulator(seed=seed, start_ms=start_ms, customers=customers, events_per_second=rate)
    figures = Figures()
    async with EventProducer(settings, stack.kafka_url) as producer:
        for record in sim.catalog():
            await producer.send(record.topic, record.value, key=record.key)
        await producer.flush()
        with Live(render(figures), console=console, refresh_per_second=4) as live:
            last_scrape = 0.0
            while duration is None or time.monotonic() - figures.started < duration:
                for record in sim.step(int(time.time() * 1000)):
                    await producer.send(record.topic, record.value, key=record.key)
                    figures.sent += 1
                await producer.flush()
                if time.monotonic() - last_scrape >= 1.0:
                    figures.worker = await asyncio.to_thread(scrape, base)
                    last_scrape = time.monotonic()
                    live.update(render(figures))
                await asyncio.sleep(TICK_SECONDS)
            figures.worker = await asyncio.to_thread(scrape, base)
            live.update(render(figures))


def scrape(base: str) -> dict[str, float]:
    """Sum the worker's counters by metric name (and by outcome for events)."""
    totals: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return totals
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            name = sample.name
            if name == "rapport_events_total":
                name = f"events_{sample.labels['outcome']}"
            totals[name] = totals.get(name, 0.0) + sample.value
    return totals


def render(figures: Figures) -> Table:
    elapsed = max(time.monotonic() - figures.started, 1e-6)
    w = figures.worker
    processed = (
        w.get("events_accepted", 0) + w.get("events_duplicate", 0) + w.get("events_rejected", 0)
    )
    table = Table(title=f"Rapport demo — {elapsed:,.0f}s", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("per second", justify="right")
    rows = [
        ("events sent by shoppers", figures.sent),
        ("events processed by the worker", processed),
        ("  rejected to deadletter", w.get("events_rejected", 0)),
        ("offers", w.get("rapport_offers_total", 0)),
        ("messages", w.get("rapport_messages_total", 0)),
        ("decisions", w.get("rapport_decisions_total", 0)),
    ]
    for label, value in rows:
        table.add_row(label, f"{value:,.0f}", f"{value / elapsed:,.1f}")
    return table
