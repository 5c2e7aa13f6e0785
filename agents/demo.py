"""``rapport demo``: the whole product on one laptop, with live figures.

Starts the embedded stack (unless configured), one worker as a child process,
and the shopper simulator producing through the contract topics. Stops on
Ctrl-C (SIGINT or SIGTERM) or after ``--duration``, in order: the worker first
(its last batches need the broker and Redis), then the simulator, then the
broker and Redis it started, and leaves no process behind. Children run in
sessions of their own, so the terminal's Ctrl-C reaches only the demo, which
stops them one by one; they still die with the demo (``die_with_parent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
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
from stream.app import check_web_port
from stream.devstack import DevStack, die_with_parent, start_devstack
from stream.producer import EventProducer
from stream.settings import Settings
from stream.topics import ensure_topics

#: The dev broker holds fetches for half the wait; a short wait keeps the demo snappy.
DEV_FETCH_WAIT_MS = "20"
TICK_SECONDS = 0.2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DemoError(RuntimeError):
    """The demo cannot go on (its worker stopped or never became healthy); says why."""


@dataclass
class Figures:
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    worker: dict[str, float] = field(default_factory=dict)
    rate: float = 0.0


@dataclass
class DemoWorker:
    """The worker child process and the log its output goes to."""

    proc: subprocess.Popen[bytes]
    log: Path

    def exited(self) -> str | None:
        """None while it runs; else its exit code and the last line it wrote."""
        code = self.proc.poll()
        if code is None:
            return None
        lines = self.log.read_text(errors="replace").strip().splitlines()
        last = lines[-1].strip() if lines else "(no output)"
        return f"the worker exited with code {code}: {last}\n  see {self.log}"


def run_demo(
    settings: Settings,
    *,
    duration: float | None,
    customers: int,
    rate: float,
    seed: int,
    console: Console,
) -> int:
    """0 when stopped by Ctrl-C or ``--duration``; 1 when the worker stopped on its own.

    Raises ``WebPortUnavailable`` before starting anything if the HTTP port is
    taken (the demo would read another process's figures from it), and
    ``DevStackError`` / aiokafka errors when a server is missing.
    """
    work = Path(settings.data_dir) / "demo"
    work.mkdir(parents=True, exist_ok=True)
    check_web_port(settings)
    console.print("[bold]Rapport demo[/bold]: starting ...")
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
        wait_healthy(base, worker, console)
        console.print(
            f"\n  API        {base}/customers/c00001\n  metrics    {base}/metrics\n"
            f"  health     {base}/health\n  dashboard  {base}/dashboard\n"
            f"  offers     RAPPORT_KAFKA_URL={stack.kafka_url} rapport tail offers\n"
            f"  worker log {worker.log}\n"
        )
        asyncio.run(
            drive(
                run,
                stack,
                base,
                worker,
                duration=duration,
                customers=customers,
                rate=rate,
                seed=seed,
                console=console,
            )
        )
        return 0
    except DemoError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    except KeyboardInterrupt:  # Ctrl-C while starting: the stop below is the same
        console.print("\nstopping ...")
        return 0
    finally:
        if worker is not None:
            stop_process(worker.proc)
        stack.close()
        if (stopped := stopped_message(stack, worker_started=worker is not None)) is not None:
            console.print(stopped)


def stopped_message(stack: DevStack, *, worker_started: bool) -> str | None:
    """Name what the demo stopped, and only that: servers it was pointed at keep running."""
    ours = {
        "the worker": worker_started,
        "the embedded broker": stack.broker is not None,
        "the embedded Redis": stack.redis_server is not None,
    }
    down = [name for name, started in ours.items() if started]
    servers = (("broker", stack.broker), ("Redis", stack.redis_server))
    kept = [name for name, proc in servers if proc is None]
    if not down:
        return None
    text = f"stopped {listed(down)}"
    if kept:
        text += f"; the {listed(kept)} it was pointed at {'keep' if len(kept) > 1 else 'keeps'}"
        text += " running"
    return text + "."


def listed(names: list[str]) -> str:
    return f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else "".join(names)


def start_worker(stack: DevStack, settings: Settings, work: Path, *, embedded: bool) -> DemoWorker:
    env = {
        **os.environ,
        "RAPPORT_KAFKA_URL": stack.kafka_url,
        "RAPPORT_REDIS_URL": stack.redis_url,
        "RAPPORT_DATA_DIR": str(work / "worker"),
    }
    if embedded:
        env.setdefault("RAPPORT_FETCH_MAX_WAIT_MS", DEV_FETCH_WAIT_MS)
    log = work / "worker.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agents.cli", "worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the terminal's Ctrl-C is the demo's to hand on
            preexec_fn=die_with_parent,
        )
    return DemoWorker(proc, log)


def wait_healthy(base: str, worker: DemoWorker, console: Console, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    with console.status("waiting for the worker to join its consumer group ..."):
        while time.monotonic() < deadline:
            if (ended := worker.exited()) is not None:
                raise DemoError(ended)
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{base}/health", timeout=1) as answer,
            ):
                if answer.status == 200:
                    return
            time.sleep(0.3)
    raise DemoError(f"the worker did not answer {base}/health in {timeout:.0f}s; see {worker.log}")


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
    worker: DemoWorker,
    *,
    duration: float | None,
    customers: int,
    rate: float,
    seed: int,
    console: Console,
) -> None:
    """Simulate shoppers until Ctrl-C, ``duration`` or the worker's exit; then stop the
    worker (and wait for it) before the simulator's producer closes. Raises ``DemoError``
    if the worker stopped on its own."""
    start_ms = int(time.time() * 1000)
    sim = ShopSimulator(seed=seed, start_ms=start_ms, customers=customers, events_per_second=rate)
    figures = Figures()
    stop = asyncio.Event()

    def on_stop_signal() -> None:
        if stop.is_set():  # a second Ctrl-C: no waiting for a clean stop
            worker.proc.kill()
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_stop_signal)
    try:
        async with EventProducer(settings, stack.kafka_url) as producer:
            for record in sim.catalog():
                await producer.send(record.topic, record.value, key=record.key)
            await producer.flush()
            with Live(render(figures), console=console, refresh_per_second=4) as live:
                await simulate(producer, sim, figures, live, base, worker, stop, duration)
            if (ended := worker.exited()) is not None:
                raise DemoError(ended)
            console.print("stopping the worker ...")
            await asyncio.to_thread(stop_process, worker.proc)
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def simulate(
    producer: EventProducer,
    sim: ShopSimulator,
    figures: Figures,
    live: Live,
    base: str,
    worker: DemoWorker,
    stop: asyncio.Event,
    duration: float | None,
) -> None:
    last_scrape = 0.0
    while not stop.is_set() and (duration is None or time.monotonic() - figures.started < duration):
        if worker.proc.poll() is not None:
            return  # figures at base now would be someone else's, if anyone's
        for record in sim.step(int(time.time() * 1000)):
            await producer.send(record.topic, record.value, key=record.key)
            figures.sent += 1
        await producer.flush()
        if time.monotonic() - last_scrape >= 1.0:
            figures.worker = await asyncio.to_thread(scrape, base)
            last_scrape = time.monotonic()
            live.update(render(figures))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_SECONDS)
    if worker.proc.poll() is None:  # the last figures, while the worker still serves them
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
