"""Rapport's speed bench: throughput, latency, CPU and memory of the worker, in one command.

Starts the embedded stack (Tansu broker + Redis), pre-loads N generated shop events
(clicks:orders about 20:1, customer records with consent) into a fresh topic prefix
per run, and measures four consumers of the same events, each in a fresh consumer
group: a raw floor (plain aiokafka + one packed Redis script per batch), a faust
no-op on faust's per-message path and one on Rapport's batch fast path, and the real
`rapport worker`. Then it offers live events at half the measured worker rate and
measures event-to-decision latency. Then (unless --no-scale-out) two `rapport worker`
processes in one consumer group consume the same history, produced again into a
fresh prefix: their combined rate, and every customer's state compared with the
single worker's. Medians over --runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
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
from speed.exactness import Snapshot, compare, snapshot
from speed.floor import MIN_SECONDS, run_floor
from speed.latency import Latencies, measure_latency, percentile
from speed.metrics import Sample, events_counted, fetch, scrape
from speed.procs import BenchError, Window, check_alive, start_noop, start_worker, watch
from speed.report import FIGURES, medians, print_results, write_json
from speed.results import (
    RapportResult,
    RunResult,
    ScaleOutResult,
    details,
    figures,
    redis_snapshot,
)
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
                   (events done then - events done at the start) / elapsed.
                   raw floor: counts itself, re-reading the records from the start
                   until its window lasts 2 s. faust no-op: a subprocess answering
                   GET /bench/consumed, re-reading the same way; "per-message path" =
                   faust agents taking noack_take(batch_size, within=0.05 s) and acking
                   each event (faust's own delivery), "batch fast path" =
                   RapportApp.batch_flow handlers (whole fetched batches, as the worker
                   consumes now) that only count. rapport worker: rapport_events_total
                   (input topics, all outcomes) on GET /metrics, i.e. input to committed
                   state and published (broker-acknowledged) outputs.
  latency          live records at half the rapport rate for --latency-seconds; each
                   10th is a new customer opting in to email (welcome campaign).
                   Reported: decision record timestamp (set by the worker's producer)
                   minus the trigger's ts (wall clock at produce). Also: time received
                   by a plain consumer, and the worker's own histogram (bucket-
                   interpolated, observations of this phase only).
  2 workers        (skipped with --no-scale-out) after the latency phase, the history
                   is produced again into a fresh prefix (topics, Redis keys, consumer
                   group) and two `rapport worker` processes of one group, started
                   together, share its --partitions (both join the group's first
                   generation: the dev broker holds a JoinGroup 3 s; the generations
                   each joined are reported). events/s as above on the sum of both
                   workers' rapport_events_total, from the first progress of either
                   until the sum is at N; ratio to the single worker of the same run,
                   printed as worker cores ratio / CPU-per-event ratio.
  exactness        once the single worker settled (before the latency phase) and once
                   both scale-out workers settled, GET /customers/{id}?as_of=T (same T)
                   for every customer id of the history; compared: the fields the input
                   alone determines (orders, revenue, first/last seen, last order,
                   views, windows, affinity, RFM, tier, lifecycle, consent, contact,
                   attributes; cart lines and aliases as sets), not clv or segments.
                   Mismatches are counted (scaleout_mismatches in the JSON), the first
                   ones printed, and any make the bench exit with 1.
  CPU              utime+stime from /proc/<pid>/stat over the throughput window;
                   "other" = busy time of the whole machine (/proc/stat) minus those.
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
    add(
        "--scale-out",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure two workers sharing the partitions (default: on)",
    )
    args = parser.parse_args(argv)
    if args.events < 100 or args.runs < 1 or args.latency_seconds <= 0:
        parser.error("need --events >= 100, --runs >= 1 and --latency-seconds > 0")
    return args


def simulated_customers(args: argparse.Namespace) -> int:
    return int(args.customers or max(10, args.events // 10))


def redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def run_settings(bench: Bench, index: int, phase: str = "") -> Settings:
    """A fresh topic prefix, key prefix and consumer group for the worker(s) of one run."""
    name = f"bench-{bench.tag}-{index}{phase}"
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


#: The faust no-op's consumer paths (``noop_app.py --path``), their names and groups.
NOOP_PATHS = {
    "stream": ("faust no-op (per-message)", "noop"),
    "batch": ("faust no-op (fast path)", "fastpath"),
}


async def noop_phase(bench: Bench, settings: Settings, label: str, path: str) -> Window:
    name, group = NOOP_PATHS[path]
    own = settings.model_copy(
        update={
            "app_id": f"{settings.app_id}-{group}",
            "web_port": free_port(),
            "data_dir": str(Path(settings.data_dir).with_name(group)),
        }
    )
    log = Path(own.data_dir) / "noop.log"
    base = f"http://127.0.0.1:{own.web_port}"

    finished = False

    async def consumed() -> float:
        nonlocal finished
        body = await asyncio.to_thread(fetch, f"{base}/bench/consumed")
        answer = orjson.loads(body) if body else {"events": 0, "finished": False}
        finished = answer["finished"]
        return float(answer["events"])

    records = len(bench.workload.records)
    proc = start_noop(own, log, path=path, records=records, min_seconds=MIN_SECONDS)
    try:
        with bench.ui.phase(f"{label} {name}", records) as update:
            window = await watch(
                consumed,
                target=records,
                pids=pids(proc.pid, bench),
                children={proc: log},
                on_progress=update,
                finished=lambda done: finished,
            )
    finally:
        stop_process(proc)
    bench.ui.log(f"{label} {name}: {window.rate:,.0f} events/s")
    return window


@dataclass(frozen=True)
class States:
    """Every customer's state as the settled single worker answered (before live events)."""

    as_of: int
    customers: Snapshot


async def rapport_phase(
    bench: Bench, settings: Settings, label: str
) -> tuple[RapportResult, States | None]:
    """Throughput and memory from the pre-loaded events, the customers' states (for the
    scale-out's exactness check), then latency on the same worker."""
    log = Path(settings.data_dir) / "worker.log"
    base = f"http://127.0.0.1:{settings.web_port}"
    redis_before = redis_snapshot(bench.admin)
    proc = start_worker(settings, log)
    try:
        window = await rapport_throughput(bench, base, proc, log, label)
        (settled,) = await wait_stable({base: (proc, log)})
        redis_after = redis_snapshot(bench.admin)
        states = None
        if bench.args.scale_out:
            states = await read_states(bench, base, wall_ms(), label)
        rate = window.rate * LATENCY_LOAD_SHARE
        latencies = await latency_phase(bench, settings, rate, label)
        latency_end = await scrape(base)
        check_alive(proc, log)
    finally:
        stop_process(proc)
    result = RapportResult(window, redis_before, redis_after, latencies, settled, latency_end)
    return result, states


async def read_states(bench: Bench, base: str, as_of: int, label: str) -> States:
    ids = bench.workload.customer_ids
    with bench.ui.phase(f"{label} reading customers", len(ids)) as update:
        customers = await snapshot(base, ids, as_of=as_of, on_progress=update)
    return States(as_of, customers)


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
            children={proc: log},
            on_progress=update,
        )
    bench.ui.log(f"{label} rapport worker: {window.rate:,.0f} events/s")
    return window


Worker = tuple[subprocess.Popen[bytes], Path]  # a worker process and its log


async def wait_stable(workers: dict[str, Worker]) -> list[list[Sample]]:
    """Wait until every counter of the workers (base URL -> process and log) stayed still
    for ``STABLE_SECONDS``; then each one's metrics."""
    last: float | None = None
    since = deadline = time.monotonic()
    deadline += STABLE_TIMEOUT
    while True:
        every = await asyncio.gather(*(scrape(base) for base in workers))
        total = sum(s.value for samples in every for s in samples if s.name.endswith("_total"))
        now = time.monotonic()
        if total != last:
            last, since = total, now
        elif now - since >= STABLE_SECONDS or now > deadline:
            return every
        for proc, log in workers.values():
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


async def scaleout_phase(bench: Bench, index: int, label: str, single: States) -> ScaleOutResult:
    """Two workers of one group on the same history, in a fresh prefix: combined rate,
    then every customer's state against the single worker's."""
    settings = run_settings(bench, index, "-x2")
    await produce_history(bench, settings, f"{label} producing history again")
    bench.admin.flushall()  # the single worker's keys (its states are already read)
    second = settings.model_copy(
        update={"web_port": free_port(), "data_dir": f"{settings.data_dir}-2"}
    )
    workers: dict[str, Worker] = {}
    try:
        for own in (settings, second):
            log = Path(own.data_dir) / "worker.log"
            workers[f"http://127.0.0.1:{own.web_port}"] = (start_worker(own, log), log)
        window, first, all_running = await scaleout_throughput(bench, workers, label)
        settled = await wait_stable(workers)
        base = next(iter(workers))
        scaled = await read_states(bench, base, single.as_of, label)
    finally:
        for proc, _ in workers.values():
            stop_process(proc)
    mismatches = compare(single.customers, scaled.customers)
    verdict = f"{len(mismatches):,} mismatches in {len(single.customers):,} customers"
    bench.ui.log(f"{label} 2 rapport workers: {window.rate:,.0f} events/s; {verdict}")
    generations = [joined_generations(log) for _, log in workers.values()]
    customers = len(single.customers)
    return ScaleOutResult(window, settled, first, all_running, generations, customers, mismatches)


def joined_generations(log: Path) -> list[int]:
    """The consumer group generations a worker joined, from its log (more than one: a
    rebalance moved partitions while it ran)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [int(g) for g in re.findall(r"Joined group '[^']*' \(generation (\d+)\)", text)]


async def scaleout_throughput(
    bench: Bench, workers: dict[str, Worker], label: str
) -> tuple[Window, list[float | None], tuple[float, float] | None]:
    """The combined window, when each worker first counted an input event, and the time
    and combined count at the first poll where every worker had counted one."""
    first: list[float | None] = [None] * len(workers)
    all_running: tuple[float, float] | None = None

    async def counted() -> float:
        nonlocal all_running
        every = await asyncio.gather(*(scrape(base) for base in workers))
        counts = [events_counted(samples) for samples in every]
        now = time.monotonic()
        for number, count in enumerate(counts):
            if count > 0 and first[number] is None:
                first[number] = now
        if all_running is None and all(counts):
            all_running = (now, sum(counts))
        return sum(counts)

    procs = [proc.pid for proc, _ in workers.values()]
    others = {name: pid for name, pid in bench.services.items() if pid not in procs}
    with bench.ui.phase(f"{label} 2 rapport workers", len(bench.workload.records)) as update:
        window = await watch(
            counted,
            target=len(bench.workload.records),
            pids={"consumer": procs[0], "consumer_2": procs[1], **others},
            children=dict(workers.values()),
            on_progress=update,
        )
    return window, first, all_running


async def produce_history(bench: Bench, settings: Settings, description: str) -> None:
    await ensure_topics(settings, bench.stack.kafka_url)
    with bench.ui.phase(description, len(bench.workload.records)) as update:
        await produce(settings, bench.workload.records, update)


async def run_once(bench: Bench, index: int) -> tuple[dict[str, float], dict[str, Any]]:
    label = f"[{index + 1}/{bench.args.runs}]"
    settings = run_settings(bench, index)
    clock = PhaseClock()
    await produce_history(bench, settings, f"{label} producing history")
    bench.admin.flushall()
    clock.lap("produce")
    floor = await floor_phase(bench, settings, label)
    bench.admin.flushall()  # the floor's keys must not count as the worker's memory
    clock.lap("raw_floor")
    noop = await noop_phase(bench, settings, label, "stream")
    clock.lap("faust_noop")
    fastpath = await noop_phase(bench, settings, label, "batch")
    clock.lap("fastpath_noop")
    rapport, states = await rapport_phase(bench, settings, label)
    clock.lap("rapport")
    scaleout = None
    if states is not None:
        scaleout = await scaleout_phase(bench, index, label, states)
        clock.lap("scaleout")
    run = RunResult(floor, noop, fastpath, rapport, scaleout)
    return figures(run, customers=bench.workload.customers), details(run, clock.laps)


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
            "scale_out": args.scale_out,
            "seed": args.seed,
            "customers": workload.customers,
            "per_topic": workload.per_topic,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "units": {f.key: f.unit for f in FIGURES if all(f.key in r for r in runs)},
        "median": medians(runs),
        "scaleout_mismatches": scaleout_mismatches(extra),
        "runs": [{"figures": f, "details": d} for f, d in zip(runs, extra, strict=True)],
    }


def scaleout_mismatches(extra: list[dict[str, Any]]) -> int | None:
    """Customers' fields that differ between one and two workers, over all runs."""
    checked = [d["scaleout"]["mismatches"] for d in extra if "scaleout" in d]
    return sum(checked) if checked else None


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
    if result["scaleout_mismatches"]:
        console.print(
            f"[red]bench failed[/red]: {result['scaleout_mismatches']:,} customer fields differ "
            f"between one and two workers (details.scaleout in {args.json}); logs kept in {work}"
        )
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
