"""Rapport's speed bench: throughput, latency, CPU and memory of one worker, in one command.

Starts the embedded stack (Tansu broker + Redis), pre-loads N generated shop events
(clicks:orders about 20:1, customer records with consent) into a fresh topic prefix
per run, and measures three consumers of the same events, each in a fresh consumer
group: a raw floor (plain aiokafka + one packed Redis script per batch), faust no-op
agents, and the real `rapport worker`. Then it offers live events at half the
measured worker rate and measures event-to-decision latency. Medians over --runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import redis
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from speed.floor import run_floor
from speed.latency import Latencies, measure_latency, percentile
from speed.metrics import Sample, events_counted, fetch, scrape
from speed.procs import BenchError, Window, check_alive, start_noop, start_worker, watch
from speed.report import FIGURES, medians, print_results, write_json
from speed.results import RapportResult, details, figures, redis_snapshot
from speed.workload import LiveLoad, Workload, build_workload, produce, wall_ms

from agents.demo import stop_process
from stream.devstack import DevStack, free_port, start_devstack
from stream.settings import Settings
from stream.topics import ensure_topics

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
#: The dev broker holds every JoinGroup for half the session timeout.
SESSION_TIMEOUT = 6.0
#: The latency phase offers this share of the rapport rate measured in the same run.
LATENCY_LOAD_SHARE = 0.5
#: Every n-th live record is a first email opt-in (a ``welcome`` decision).
TRIGGER_EVERY = 10
#: After the last input record is counted, counters must stay still this long.
STABLE_SECONDS = 1.0
STABLE_TIMEOUT = 30.0

EPILOG = """\
how each figure is measured:
  events/s         from the first progress seen to the first poll (every 0.1 s) at N:
                   (events done then - events done at the start) / elapsed. The raw
                   floor counts itself (re-reading the records from the start until
                   its window lasts 2 s); faust no-op answers GET /bench/consumed;
                   the worker is read from rapport_events_total (input topics, all
                   outcomes) on GET /metrics, i.e. input to committed state and
                   published (broker-acknowledged) outputs.
  latency          live records at half the rapport rate for --latency-seconds; each
                   10th is a new customer opting in to email (welcome campaign).
                   Reported: decision record timestamp (set by the worker's producer)
                   minus the trigger's ts (wall clock at produce). Also: time received
                   by a plain consumer, and the worker's own histogram (bucket-
                   interpolated, observations of this phase only).
  CPU              utime+stime from /proc/<pid>/stat over the throughput window.
  bytes/profile    Redis INFO used_memory growth over the worker's throughput phase
                   / distinct customer ids in the history (the raw floor writes to
                   another DB, flushed before the worker starts).
"""


@dataclass(frozen=True)
class Bench:
    args: argparse.Namespace
    stack: DevStack
    work: Path
    workload: Workload
    ui: Ui
    tag: str
    admin: redis.Redis
    services: dict[str, int]  # process name -> pid, for CPU shares


class Ui:
    """Progress bars on stderr, one per phase, with a log line when each phase ends."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )

    @contextlib.contextmanager
    def phase(self, description: str, total: float) -> Iterator[Callable[[float], None]]:
        task = self.progress.add_task(description, total=total)
        try:
            yield lambda done: self.progress.update(task, completed=done)
        finally:
            self.progress.remove_task(task)

    def log(self, text: str) -> None:
        self.progress.console.print(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--events", type=int, default=30_000, help="input records per run (default 30000)")
    add("--runs", type=int, default=3, help="repetitions; medians are reported (default 3)")
    add("--json", type=Path, default=DEFAULT_JSON, help="result file (default %(default)s)")
    add("--customers", type=int, help="simulated customers (default: events / 10)")
    add("--partitions", type=int, default=4, help="partitions per topic (default 4)")
    add("--fetch-wait-ms", type=int, default=20, help="fetch_max_wait_ms of every consumer")
    add("--latency-seconds", type=float, default=20.0, help="latency phase length (default 20)")
    add("--seed", type=int, default=11, help="seed of the simulated shop (default 11)")
    args = parser.parse_args(argv)
    if args.events < 100 or args.runs < 1 or args.latency_seconds <= 0:
        parser.error("need --events >= 100, --runs >= 1 and --latency-seconds > 0")
    return args


def simulated_customers(args: argparse.Namespace) -> int:
    return int(args.customers or max(10, args.events // 10))


def redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def run_settings(bench: Bench, index: int) -> Settings:
    """A fresh topic prefix, key prefix and consumer group for the worker of one run."""
    name = f"bench-{bench.tag}-{index}"
    return Settings(
        kafka_url=bench.stack.kafka_url,
        redis_url=bench.stack.redis_url,
        topic_prefix=f"{name}.",
        redis_prefix=f"{name}:",
        app_id=f"{name}-rapport",
        web_port=free_port(),
        fetch_max_wait_ms=bench.args.fetch_wait_ms,
        partitions=bench.args.partitions,
        session_timeout=SESSION_TIMEOUT,
        data_dir=str(bench.work / name / "rapport"),
    )


def pids(consumer: int, bench: Bench) -> dict[str, int]:
    """The consumer's pid and the services', each once (the raw floor runs in the bench)."""
    others = {name: pid for name, pid in bench.services.items() if pid != consumer}
    return {"consumer": consumer, **others}


async def floor_phase(bench: Bench, settings: Settings, label: str) -> Window:
    with bench.ui.phase(f"{label} raw floor", len(bench.workload.records)) as update:
        window = await run_floor(
            settings,
            redis_url=redis_db(bench.stack.redis_url, 1),
            group=f"{settings.app_id}-floor",
            records=len(bench.workload.records),
            pids=pids(os.getpid(), bench),
            on_progress=update,
        )
    bench.ui.log(f"{label} raw floor: {window.rate:,.0f} events/s")
    return window


async def noop_phase(bench: Bench, settings: Settings, label: str) -> Window:
    own = settings.model_copy(
        update={
            "app_id": f"{settings.app_id}-noop",
            "web_port": free_port(),
            "data_dir": str(Path(settings.data_dir).with_name("noop")),
        }
    )
    log = Path(own.data_dir) / "noop.log"
    base = f"http://127.0.0.1:{own.web_port}"

    async def consumed() -> float:
        body = await asyncio.to_thread(fetch, f"{base}/bench/consumed")
        return float(orjson.loads(body)["events"]) if body else 0.0

    proc = start_noop(own, log)
    try:
        with bench.ui.phase(f"{label} faust no-op", len(bench.workload.records)) as update:
            window = await watch(
                consumed,
                target=len(bench.workload.records),
                pids=pids(proc.pid, bench),
                proc=proc,
                log=log,
                on_progress=update,
            )
    finally:
        stop_process(proc)
    bench.ui.log(f"{label} faust no-op: {window.rate:,.0f} events/s")
    return window


async def rapport_phase(bench: Bench, settings: Settings, label: str) -> RapportResult:
    """Throughput and memory from the pre-loaded events, then latency on the same worker."""
    log = Path(settings.data_dir) / "worker.log"
    base = f"http://127.0.0.1:{settings.web_port}"
    redis_before = redis_snapshot(bench.admin)
    proc = start_worker(settings, log)
    try:
        window = await rapport_throughput(bench, base, proc, log, label)
        settled = await wait_stable(base, proc, log)
        redis_after = redis_snapshot(bench.admin)
        rate = window.rate * LATENCY_LOAD_SHARE
        latencies = await latency_phase(bench, settings, rate, label)
        latency_end = await scrape(base)
        check_alive(proc, log)
    finally:
        stop_process(proc)
    return RapportResult(window, redis_before, redis_after, latencies, settled, latency_end)


async def rapport_throughput(
    bench: Bench, base: str, proc: subprocess.Popen[bytes], log: Path, label: str
) -> Window:
    async def counted() -> float:
        return events_counted(await scrape(base))

    with bench.ui.phase(f"{label} rapport worker", len(bench.workload.records)) as update:
        window = await watch(
            counted,
            target=len(bench.workload.records),
            pids=pids(proc.pid, bench),
            proc=proc,
            log=log,
            on_progress=update,
        )
    bench.ui.log(f"{label} rapport worker: {window.rate:,.0f} events/s")
    return window


async def wait_stable(base: str, proc: subprocess.Popen[bytes], log: Path) -> list[Sample]:
    """Wait until every counter of the worker stayed still for ``STABLE_SECONDS``."""
    last: float | None = None
    since = deadline = time.monotonic()
    deadline += STABLE_TIMEOUT
    while True:
        samples = await scrape(base)
        total = sum(s.value for s in samples if s.name.endswith("_total"))
        now = time.monotonic()
        if total != last:
            last, since = total, now
        elif now - since >= STABLE_SECONDS or now > deadline:
            return samples
        check_alive(proc, log)
        await asyncio.sleep(0.1)


async def latency_phase(bench: Bench, settings: Settings, rate: float, label: str) -> Latencies:
    seconds = bench.args.latency_seconds
    load = LiveLoad(
        seed=bench.args.seed + 1,
        customers=simulated_customers(bench.args),
        tag=settings.redis_prefix.rstrip(":"),
        trigger_every=TRIGGER_EVERY,
    )
    with bench.ui.phase(f"{label} latency at {rate:,.0f} events/s", seconds) as update:
        ticking = asyncio.create_task(tick(update, seconds))
        try:
            latencies = await measure_latency(settings, load, rate=rate, seconds=seconds)
        finally:
            ticking.cancel()
    p50, p99 = percentile(latencies.appended_ms, 0.5), percentile(latencies.appended_ms, 0.99)
    bench.ui.log(f"{label} latency: p50 {p50:,.0f} ms, p99 {p99:,.0f} ms")
    return latencies


async def tick(update: Callable[[float], None], seconds: float) -> None:
    started = time.monotonic()
    while True:
        update(min(seconds, time.monotonic() - started))
        await asyncio.sleep(0.25)


async def run_once(bench: Bench, index: int) -> tuple[dict[str, float], dict[str, Any]]:
    label = f"[{index + 1}/{bench.args.runs}]"
    settings = run_settings(bench, index)
    clock = PhaseClock()
    await ensure_topics(settings, bench.stack.kafka_url)
    with bench.ui.phase(f"{label} producing history", len(bench.workload.records)) as update:
        await produce(settings, bench.workload.records, update)
    bench.admin.flushall()
    clock.lap("produce")
    floor = await floor_phase(bench, settings, label)
    bench.admin.flushall()  # the floor's keys must not count as the worker's memory
    clock.lap("raw_floor")
    noop = await noop_phase(bench, settings, label)
    clock.lap("faust_noop")
    rapport = await rapport_phase(bench, settings, label)
    clock.lap("rapport")
    run_figures = figures(floor, noop, rapport, customers=bench.workload.customers)
    return run_figures, details(floor, noop, rapport, clock.laps)


class PhaseClock:
    """Wall time of each phase, start-up and shutdown included (where the minutes go)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self._last, 2)
        self._last = now


def services(stack: DevStack, admin: redis.Redis) -> dict[str, int]:
    found = {"bench": os.getpid(), "redis": int(admin.info("server")["process_id"])}
    if stack.broker is not None:
        found["broker"] = stack.broker.pid
    return found


async def run_bench(
    args: argparse.Namespace, stack: DevStack, work: Path, ui: Ui
) -> dict[str, Any]:
    workload = build_workload(
        events=args.events, customers=simulated_customers(args), seed=args.seed, now_ms=wall_ms()
    )
    ui.log(
        f"history: {len(workload.records):,} records {workload.per_topic}, "
        f"{workload.customers:,} distinct customer ids"
    )
    admin = redis.Redis.from_url(stack.redis_url)
    tag = uuid.uuid4().hex[:6]
    bench = Bench(args, stack, work, workload, ui, tag, admin, services(stack, admin))
    runs: list[dict[str, float]] = []
    extra: list[dict[str, Any]] = []
    try:
        for index in range(args.runs):
            run_figures, run_details = await run_once(bench, index)
            runs.append(run_figures)
            extra.append(run_details)
    finally:
        admin.close()
    return document(args, workload, runs, extra)


def document(
    args: argparse.Namespace,
    workload: Workload,
    runs: list[dict[str, float]],
    extra: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "config": {
            "events": args.events,
            "runs": args.runs,
            "partitions": args.partitions,
            "fetch_wait_ms": args.fetch_wait_ms,
            "latency_seconds": args.latency_seconds,
            "latency_load_share": LATENCY_LOAD_SHARE,
            "seed": args.seed,
            "customers": workload.customers,
            "per_topic": workload.per_topic,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "units": {f.key: f.unit for f in FIGURES},
        "median": medians(runs),
        "runs": [{"figures": f, "details": d} for f, d in zip(runs, extra, strict=True)],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on SIGTERM too
    work = Path(tempfile.mkdtemp(prefix="rapport-bench-"))
    ui = Ui(console)
    stack: DevStack | None = None
    started = time.monotonic()
    try:
        with ui.progress:
            stack = start_devstack(kafka_url=None, redis_url=None, work_dir=work)
            result = asyncio.run(run_bench(args, stack, work, ui))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: worker, broker and Redis stopped")
        shutil.rmtree(work, ignore_errors=True)
        return 130
    except BenchError as exc:
        console.print(f"[red]bench failed[/red]: {exc}")
        return 1
    finally:
        if stack is not None:
            stack.close()
    write_json(args.json, result)
    print_results(result)
    console.print(f"{time.monotonic() - started:,.0f} s; results in {args.json}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
