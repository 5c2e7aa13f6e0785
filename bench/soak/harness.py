"""The soak run: a generated history replayed into real workers, faults on the way, checks.

The delivery is cut into phases. In each phase the soak sends the phase's records at full
speed, strikes the phase's faults when the workers' committed offsets pass the fault's share
of the phase, waits until the workers have committed everything and every timer due by the
engine clock has fired, then compares the engine with the reference over every record sent
so far (``verify.py``). So each fault is followed by a full check of exact state, message
ids and timers before the next one strikes.

Everything runs on servers of the soak's own (Redis with an append-only file; the broker too
unless one is given), with topic and key prefixes of its own.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.soak.history import History, Record, Shape, follow_up, generate
from bench.soak.kafka import GroupOffsets, TopicLog, send_all
from bench.soak.servers import OwnBroker, OwnRedis
from bench.soak.verify import Expected, Observed, Result, run_checks
from bench.soak.workers import Exit, WorkerPool
from bench.speed.metrics import fetch
from stream import keys
from stream.settings import Settings
from stream.topics import ensure_topics
from tests.integration import independent
from tests.integration.conftest import http_get

OUTPUT_LOG = ("segments", "messages.email", "messages.sms", "messages.push", "deadletter")
FAULT_KINDS = ("kill9", "redis_pause", "redis_restart", "broker_restart")
POLL_SECONDS = 0.5
#: RAPPORT_ALIGN_WAIT_SECONDS of the workers, as README recommends for replays of history.
REPLAY_ALIGN_WAIT_SECONDS = 60.0
SETTLED_POLLS = 3  # consecutive polls with nothing left to do: the phase has drained


@dataclass(frozen=True, slots=True)
class Fault:
    """``kind`` strikes in ``phase`` once ``at`` (0..1) of the phase's records are committed.

    ``seconds``: how long Redis stays paused, or down before its restart. ``slot``: the worker
    a ``kill9`` hits. ``broker_restart`` strikes after the last phase (see ``Soak``).
    """

    kind: str
    phase: int
    at: float
    seconds: float = 0.0
    slot: int = 0

    def describe(self) -> str:
        what = {
            "kill9": f"kill -9 worker {self.slot}, restart it",
            "redis_pause": f"SIGSTOP Redis for {self.seconds:g} s, then SIGCONT",
            "redis_restart": f"SIGKILL Redis, {self.seconds:g} s down, restart from its AOF",
            "broker_restart": "restart the broker (memory storage: every topic is lost)",
        }[self.kind]
        return f"phase {self.phase + 1} at {self.at:.0%}: {what}"


def fault_plan(seed: int, workers: int, pause_seconds: float = 30.0) -> tuple[int, list[Fault]]:
    """The bench's faults, at random points (by seed): three kill -9 (alternating workers),
    a Redis pause, a Redis restart from its AOF, then the broker restart. (phases, faults)"""
    rng = random.Random(seed)

    def at() -> float:
        return round(rng.uniform(0.15, 0.85), 2)

    faults = [
        Fault("kill9", 0, at(), slot=0),
        Fault("redis_pause", 1, at(), seconds=pause_seconds),
        Fault("kill9", 2, at(), slot=1 % workers),
        Fault("redis_restart", 3, at(), seconds=2.0),
        Fault("kill9", 4, at(), slot=0),
        Fault("broker_restart", 5, 1.0),
    ]
    return 5, faults


@dataclass
class Config:
    shape: Shape
    work: Path
    workers: int = 1
    phases: int = 1
    faults: list[Fault] = field(default_factory=list)
    kafka_url: str | None = None  # None: the soak starts its own broker
    timer_lease_seconds: float = 30.0
    phase_timeout: float = 600.0
    follow_up_customers: int = 200  # new orders sent after a broker restart


@dataclass
class Phase:
    number: int
    records: int
    seconds: float  # first send to drained
    faults: list[str]
    results: list[Result]
    exits: list[Exit]


@dataclass
class Report:
    config: Config
    counts: dict[str, int]
    phases: list[Phase] = field(default_factory=list)
    replay_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    redis_memory: dict[str, int] = field(default_factory=dict)
    trouble: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # what happened when, for the report

    @property
    def records(self) -> int:
        return sum(p.records for p in self.phases)

    @property
    def passed(self) -> bool:
        return all(r.ok for p in self.phases for r in p.results)

    def failures(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in self.phases:
            for r in p.results:
                if r.problems:
                    out.setdefault(f"phase {p.number + 1} {r.name}", []).extend(r.problems)
        return out


def soak_settings(config: Config, kafka_url: str, redis_url: str) -> Settings:
    run = uuid.uuid4().hex[:8]
    return Settings(
        kafka_url=kafka_url,
        redis_url=redis_url,
        topic_prefix=f"soak{run}.",
        redis_prefix=f"soak:{run}:",
        app_id=f"rapport-soak-{run}",
        clock="event",
        session_timeout=6.0,
        fetch_max_wait_ms=20,
        partitions=4,
        refresh_seconds=3600.0,
        timer_lease_seconds=config.timer_lease_seconds,
        # a replay of history wants its topics aligned in event time whatever it takes: a
        # restarted worker's partitions can need many seconds to catch up with each other
        align_wait_seconds=REPLAY_ALIGN_WAIT_SECONDS,
    )


class Soak:
    """One soak run: ``run`` returns the report (and stops everything it started)."""

    settings: Settings  # set once the servers are up
    pool: WorkerPool
    offsets: GroupOffsets
    log: TopicLog

    def __init__(self, config: Config, say: Callable[[str], None] = print) -> None:
        self.config = config
        self.say = say
        self.started = time.monotonic()
        self.redis = OwnRedis(config.work / "redis")
        self.broker = OwnBroker(config.work / "broker") if config.kafka_url is None else None
        self.history: History | None = None
        self.sent: list[Record] = []
        self.report: Report | None = None

    def note(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:7.1f}s] {text}"
        self.say(line)
        if self.report is not None:
            self.report.events.append(line)

    async def run(self) -> Report:
        self.note(f"generating {self.config.shape.customers:,} customers")
        self.history = await asyncio.to_thread(generate, self.config.shape)
        self.report = Report(self.config, self.history.counts())
        self.note(f"history: {len(self.history.records):,} records {self.report.counts}")
        self.redis.start()
        if self.broker is not None:
            self.broker.start()
        kafka_url = self.broker.url if self.broker else self.config.kafka_url or ""
        self.settings = soak_settings(self.config, kafka_url, self.redis.url)
        self.pool = WorkerPool(self.settings, self.config.work, self.config.workers)
        try:
            await ensure_topics(self.settings, kafka_url)
            await asyncio.to_thread(self.pool.start_all)
            self.note(f"{self.config.workers} worker(s) healthy")
            await self.replay()
            self.finish()
        finally:
            self.pool.close()
            self.redis.close()
            if self.broker is not None:
                self.broker.close()
        return self.report

    async def replay(self) -> None:
        assert self.history is not None and self.report is not None
        self.offsets = GroupOffsets(self.settings)
        self.log = TopicLog(self.settings, OUTPUT_LOG)
        await self.offsets.start()
        await self.log.start()
        try:
            for number, part in enumerate(self.history.phases(self.config.phases)):
                faults = [
                    f
                    for f in self.config.faults
                    if f.phase == number and f.kind != "broker_restart"
                ]
                self.report.phases.append(await self.phase(number, part, faults))
            if any(f.kind == "broker_restart" for f in self.config.faults):
                self.report.phases.append(await self.broker_phase())
        finally:
            await self.offsets.close()
            await self.log.close()

    async def phase(self, number: int, part: list[Record], faults: list[Fault]) -> Phase:
        self.note(f"phase {number + 1}: sending {len(part):,} records")
        exits_before, trouble_before = len(self.pool.exits), len(self.pool.trouble())
        begun = time.monotonic()
        base = await self.offsets.committed(independent.CUSTOMER_TOPICS)
        self.sent.extend(part)
        sending = asyncio.create_task(
            send_all(self.settings, [(r.topic, r.key, r.payload) for r in part])
        )
        done_faults = await self.strike(faults, base, len(part), sending)
        await sending
        drained = await self.drain()
        seconds = time.monotonic() - begun
        self.note(f"phase {number + 1}: drained={drained} after {seconds:.1f}s; verifying")
        results = await self.verify(strict=not self.config.faults)
        results.append(Result("drained", [] if drained else [await self.leftovers()]))
        exits = self.pool.exits[exits_before:]
        results.append(Result("worker_exits", [self.exit_line(e) for e in exits]))
        trouble = self.pool.trouble()[trouble_before:]
        results.append(Result("logs_clean", [f"{path.name}: {line}" for path, line in trouble]))
        return Phase(number, len(part), seconds, done_faults, results, exits)

    async def strike(
        self, faults: list[Fault], base: int, size: int, sending: asyncio.Task[None]
    ) -> list[str]:
        """Each fault once the group has committed its share of the phase's records."""
        done = []
        for fault in sorted(faults, key=lambda f: f.at):
            while True:
                self.pool.supervise()
                committed = await self.offsets.committed(independent.CUSTOMER_TOPICS) - base
                if committed >= fault.at * size:
                    break
                if sending.done() and not await self.offsets.lag() and committed >= size:
                    break
                await asyncio.sleep(0.05)
            self.note(f"{fault.describe()} ({committed:,} of {size:,} committed)")
            await asyncio.to_thread(self.inflict, fault)
            done.append(fault.describe())
        return done

    def inflict(self, fault: Fault) -> None:
        if fault.kind == "kill9":
            self.pool.kill9(self.pool.slots[fault.slot])
        elif fault.kind == "redis_pause":
            self.redis.pause(fault.seconds)
        elif fault.kind == "redis_restart":
            self.redis.restart(fault.seconds)
        else:
            raise ValueError(f"unknown fault {fault.kind}")

    async def drain(self) -> bool:
        """Until nothing is left to consume and no timer is due: SETTLED_POLLS in a row."""
        deadline = time.monotonic() + self.config.phase_timeout
        quiet, consumed = 0, False
        while time.monotonic() < deadline:
            for exit_ in self.pool.supervise():
                self.note(f"worker {exit_.slot} stopped by itself ({exit_.code}); restarted")
            try:
                lag = await self.offsets.lag()
                due, leased = await asyncio.to_thread(self.timers)
            except Exception as exc:  # a server mid-restart: look again
                self.note(f"waiting: {type(exc).__name__}: {exc}")
                lag, due, leased = {"?": 1}, 0, 0
            if not lag and not consumed:
                consumed = True
                self.note(f"consumed (lag 0); {due} timers due, {leased} leased")
            quiet = quiet + 1 if not lag and not due and not leased else 0
            if quiet >= SETTLED_POLLS:
                return True
            await asyncio.sleep(POLL_SECONDS)
        return False

    def timers(self) -> tuple[int, int]:
        """(timers due by the engine clock, leases held), read from the engine's own keys."""
        prefix = self.settings.redis_prefix
        client = redis.Redis.from_url(self.redis.url, socket_timeout=5)
        try:
            clock = int(client.get(keys.clock(prefix)) or 0)
            due = client.zcount(keys.timers_due(prefix), "-inf", clock)
            return int(due), int(client.zcard(keys.timers_leased(prefix)))
        finally:
            client.close()

    def timer_index(self) -> dict[str, int]:
        """Customer -> next timer, as the engine's due index holds it."""
        client = redis.Redis.from_url(self.redis.url, socket_timeout=30)
        try:
            due = client.zrange(keys.timers_due(self.settings.redis_prefix), 0, -1, withscores=True)
            return {member.decode(): int(score) for member, score in due}
        finally:
            client.close()

    async def leftovers(self) -> str:
        lag = await self.offsets.lag()
        due, leased = await asyncio.to_thread(self.timers)
        waited = self.config.phase_timeout
        return f"not drained in {waited:.0f}s: lag {lag}, {due} due, {leased} leased"

    async def verify(self, *, strict: bool) -> list[Result]:
        now_ms = int(time.time() * 1000)
        records = [(r.topic, r.payload) for r in self.sent]
        reference, refused = await asyncio.to_thread(
            independent.compute_raw, records, now_ms=now_ms
        )
        expected = Expected(reference, refused, self.settings.topic_prefix, strict)
        observed = await self.observe(expected)
        await asyncio.to_thread(self.dump, observed)
        return await asyncio.to_thread(run_checks, expected, observed)

    def dump(self, observed: Observed) -> None:
        """What the engine showed, as JSON lines in the work directory, for post-mortems
        (the soak's broker and Redis are gone when it ends)."""
        phase = len(self.report.phases) + 1 if self.report else 0
        out = self.config.work / f"observed-{phase}"
        out.mkdir(exist_ok=True)
        for suffix, records in self.log.records.items():
            (out / f"{suffix}.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in records))
        (out / "profiles.jsonl").write_bytes(
            b"\n".join(orjson.dumps([cid, *answer]) for cid, answer in observed.answers.items())
        )

    async def observe(self, expected: Expected) -> Observed:
        await self.log.catch_up()
        base = self.pool.any_base()
        ids = [*expected.reference.customers, *expected.reference.merged]
        answers = await asyncio.to_thread(fetch_profiles, base, ids, expected.clock)
        _, health = await asyncio.to_thread(http_get, f"{base}/health")
        due, leased = await asyncio.to_thread(self.timers)
        index = await asyncio.to_thread(self.timer_index)
        messages = [
            m
            for s in ("messages.email", "messages.sms", "messages.push")
            for m in self.log.records[s]
        ]
        restarted = self.pool.kills or self.pool.exits or self.config.workers > 1
        return Observed(
            answers=answers,
            watermark=(health or {}).get("watermark"),
            segments=self.log.records["segments"],
            messages=messages,
            deadletters=self.log.records["deadletter"],
            timers_due=due,
            timers_leased=leased,
            timer_index=index,
            counted=None if restarted else await asyncio.to_thread(self.counted),
        )

    def counted(self) -> dict[tuple[str, str], float]:
        """``rapport_events_total`` by (topic, outcome), summed over the workers."""
        out: dict[tuple[str, str], float] = {}
        for slot in self.pool.slots:
            body = fetch(f"{slot.base}/metrics")
            for family in text_string_to_metric_families((body or b"").decode()):
                for s in family.samples:
                    if s.name == "rapport_events_total":
                        key = (s.labels["topic"], s.labels["outcome"])
                        out[key] = out.get(key, 0.0) + s.value
        return out

    @staticmethod
    def exit_line(e: Exit) -> str:
        last = [line for line in e.tail.splitlines() if line.strip()][-6:]
        return f"worker {e.slot} exited with {e.code}: " + " | ".join(last)

    async def broker_phase(self) -> Phase:
        """The dev broker keeps topics in memory: a restart loses every record, every
        committed offset and the group. The workers must stop with a clear message or
        recover; either way, fresh records sent afterwards (their offsets start again
        from 0) must all be applied, none taken for redeliveries."""
        assert self.history is not None
        number = len(self.report.phases) if self.report else 0
        fault = next(f for f in self.config.faults if f.kind == "broker_restart")
        if self.broker is None:
            self.note("broker restart skipped: the broker is not the soak's own")
            return Phase(number, 0, 0.0, ["skipped: not the soak's own broker"], [], [])
        exits_before, trouble_before = len(self.pool.exits), len(self.pool.trouble())
        earlier = self.log.records
        await self.offsets.close()
        await self.log.close()
        self.note(fault.describe())
        begun = time.monotonic()
        await asyncio.to_thread(self.broker.restart, 1.0)
        for _ in range(20):  # let the workers meet the empty broker before topics exist again
            self.pool.supervise()
            await asyncio.sleep(0.5)
        await ensure_topics(self.settings, self.broker.url)
        self.offsets, self.log = GroupOffsets(self.settings), TopicLog(self.settings, OUTPUT_LOG)
        await self.offsets.start()
        await self.log.start(earlier)
        extra = follow_up(self.history, self.config.follow_up_customers)
        self.note(f"sending {len(extra)} fresh records (new orders) after the restart")
        self.sent.extend(extra)
        await send_all(self.settings, [(r.topic, r.key, r.payload) for r in extra])
        drained = await self.drain()
        seconds = time.monotonic() - begun
        results = await self.verify(strict=False)
        results.append(Result("drained", [] if drained else [await self.leftovers()]))
        exits = self.pool.exits[exits_before:]
        unclear = [self.exit_line(e) for e in exits if "Traceback" in e.tail]
        results.append(Result("broker_restart_exit", unclear))
        trouble = self.pool.trouble()[trouble_before:]
        results.append(Result("logs_clean", [f"{path.name}: {line}" for path, line in trouble]))
        return Phase(number, len(extra), seconds, [fault.describe()], results, exits)

    def finish(self) -> None:
        assert self.report is not None
        self.report.replay_seconds = sum(p.seconds for p in self.report.phases)
        self.report.peak_rss_mib = self.pool.peak_mib()
        self.report.redis_memory = self.redis.memory()
        self.report.trouble = [f"{p.name}: {line}" for p, line in self.pool.trouble()]


def fetch_profiles(base: str, ids: list[str], as_of: int) -> dict[str, tuple[int, Any]]:
    def one(cid: str) -> tuple[int, Any]:
        return http_get(f"{base}/customers/{cid}?as_of={as_of}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(ids, pool.map(one, ids), strict=True))
