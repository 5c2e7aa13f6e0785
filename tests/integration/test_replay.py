"""Replays of a generated shop history against an independent reference computation.

Acceptance criteria of the exactly-once issue:

(a) a replay of a generated history of >= 1,000 customers, with 5% redelivered records and
    out-of-order cancellations, gives profiles equal field by field to a straightforward
    computation over the same events (``tests/integration/independent.py``, written from the
    contract text only);
(b) killing the worker with SIGKILL in the middle of such a replay and restarting it ends in
    exactly the same state as an uninterrupted run.

Each test runs its own worker(s) with their own topic prefix, Redis prefix and consumer group
(the RFM population is every customer under a Redis prefix, so sharing the session worker
would mix in other tests' customers), in event-clock mode, and deletes its keys at the end.

Every field comparison is a separate named check (``CHECKS``); a check can be switched off
for an engine that does not compute that field yet by naming it in ``RAPPORT_REPLAY_SKIP``
(comma separated, e.g. ``RAPPORT_REPLAY_SKIP=rfm_code,tier``). The identity-resolution part
is ``EXPECT_IDENTITY_MERGE`` (``RAPPORT_REPLAY_IDENTITY_MERGE=0`` turns it off) plus
``check_identity_merge``. Run with ``-s`` to see the per-check report of a passing run.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import random
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiokafka import TopicPartition

from agents.demo import stop_process
from models.simulation import generate_history
from stream.devstack import free_port
from stream.producer import EventProducer
from stream.settings import Settings
from stream.state_codec import decode_state
from stream.topics import ensure_topics
from tests.integration import independent
from tests.integration.conftest import (
    delete_keys,
    group_reader,
    http_get,
    start_worker,
    wait_healthy,
)
from tests.integration.profile_checks import CHECKS, Check, Comparison, Mismatch

pytestmark = pytest.mark.integration

# -- the history ------------------------------------------------------------------------------

SEED = 20260302
START_MS = 1_772_409_600_000  # 2026-03-02T00:00:00Z
DAYS = 3
CUSTOMERS = 1200
PRODUCTS = 100
EVENTS_PER_DAY = 6000  # ~18.7k records over 3 days
REDELIVERED_SHARE = 0.05
NEARBY_REDELIVERY_SHARE = 0.4  # of redeliveries: within the next 30 records; else later on
NEARBY_WINDOW = 30
MOVED_REVERSAL_SHARE = 0.6  # of cancellations/refunds: delivered before their placed order
SYNTHETIC_REVERSALS = 40  # extra cancellations/refunds, all delivered before their order
SYNTHETIC_FEEDBACK = 60  # the simulator emits no feedback; these exercise consent revocation
CONSENT_TIES = 8  # unsubscribes at exactly the ts of an opt-in: the revocation must win
ENGINE_DEDUP_IDS = 64  # README: producer duplicates are recognised within 64 events

#: The engine merges an identified anonymous id into its customer (contract, clicks/identify).
#: False (``RAPPORT_REPLAY_IDENTITY_MERGE=0``) describes an engine without identity resolution:
#: the reference then keeps anonymous ids as customers of their own, and
#: ``check_identity_merge`` is skipped.
EXPECT_IDENTITY_MERGE = os.environ.get("RAPPORT_REPLAY_IDENTITY_MERGE", "1") != "0"

CUSTOMER_TOPICS = independent.CUSTOMER_TOPICS


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record as sent: topic suffix, key and the exact bytes (a redelivery reuses them)."""

    topic: str
    key: str
    payload: bytes
    redelivery: bool = False
    moved: bool = False


@cache
def base_history() -> tuple[tuple[str, str, bytes], ...]:
    """The simulator's history without the catalogue (it does not touch profiles)."""
    return tuple(
        (r.topic, r.key, orjson.dumps(r.value))
        for r in generate_history(
            seed=SEED,
            start_ms=START_MS,
            days=DAYS,
            customers=CUSTOMERS,
            products=PRODUCTS,
            events_per_day=EVENTS_PER_DAY,
        )
        if r.topic != "catalog"
    )


def namespaced(value: dict[str, Any], ns: str) -> dict[str, Any]:
    """Every customer, anonymous, event, order and session id gets the test's own prefix."""
    out = dict(value)
    for name in ("customer_id", "anonymous_id", "event_id", "order_id", "session_id"):
        if name in out:
            out[name] = f"{ns}{out[name]}"
    return out


def strip_ns(customer_id: str, ns: str) -> str:
    return customer_id.removeprefix(ns)


def build_delivery(ns: str) -> list[Outgoing]:
    """The delivery sequence: history in ts order, some reversals moved before their order,
    synthetic feedback, and 5% of all records sent a second time later on."""
    rng = random.Random(SEED)
    values = [(topic, namespaced(orjson.loads(raw), ns)) for topic, _, raw in base_history()]
    sequence: list[tuple[str, dict[str, Any], bool]] = [(t, v, False) for t, v in values]

    # Synthetic feedback at ts order positions: unsubscribes (one channel or all) and others.
    known = sorted({v["customer_id"] for t, v in values if t == "customers"})
    registrations = [v for t, v in values if t == "customers" and v.get("consent")]
    end_ms = START_MS + DAYS * independent.DAY_MS
    feedback: list[dict[str, Any]] = []
    for number in range(SYNTHETIC_FEEDBACK):
        action = "unsubscribed" if number % 3 else rng.choice(["opened", "clicked", "delivered"])
        item: dict[str, Any] = {
            "event_id": f"{ns}fb-{number:04d}",
            "ts": rng.randrange(START_MS, end_ms),
            "customer_id": rng.choice(known),
            "action": action,
            "offer_id": f"{ns}offer-{number}",
        }
        if number % 2:
            item["channel"] = rng.choice(independent.CHANNELS)
        feedback.append(item)
    opted_in = [v for v in registrations if any(v["consent"].values())]
    for number, registration in enumerate(rng.sample(opted_in, CONSENT_TIES)):
        channel = next(ch for ch, on in registration["consent"].items() if on)
        feedback.append(
            {
                "event_id": f"{ns}fb-tie-{number:04d}",
                "ts": registration["ts"],
                "customer_id": registration["customer_id"],
                "action": "unsubscribed",
                "channel": channel,
            }
        )
    for item in sorted(feedback, key=lambda v: v["ts"]):
        stamps = [v["ts"] for _, v, _ in sequence]
        sequence.insert(bisect.bisect_right(stamps, item["ts"]), ("feedback", item, False))

    # Out-of-order reversals: a share of cancellations/refunds arrive before their placed order.
    reversals = [
        v for t, v, _ in sequence if t == "orders" and v.get("status") in ("cancelled", "refunded")
    ]
    for reversal in reversals:
        if rng.random() >= MOVED_REVERSAL_SHARE:
            continue
        at = next(i for i, (_, v, _) in enumerate(sequence) if v is reversal)
        entry = sequence.pop(at)
        placed_at = next(
            i
            for i, (t, v, _) in enumerate(sequence)
            if t == "orders"
            and v["order_id"] == reversal["order_id"]
            and v.get("status", "placed") == "placed"
        )
        sequence.insert(rng.randint(max(0, placed_at - 200), placed_at), (entry[0], entry[1], True))

    # More of them (the simulator reverses ~5% of orders): later in event time, earlier on the wire.
    reversed_ids = {v["order_id"] for v in reversals}
    placed = [
        v
        for t, v, _ in sequence
        if t == "orders"
        and v.get("status", "placed") == "placed"
        and v["order_id"] not in reversed_ids
    ]
    for number, order in enumerate(rng.sample(placed, SYNTHETIC_REVERSALS)):
        reversal = {
            "event_id": f"{ns}rv-{number:04d}",
            "ts": order["ts"] + rng.randint(60_000, 7_200_000),
            "customer_id": order["customer_id"],
            "order_id": order["order_id"],
            "status": rng.choice(["cancelled", "refunded"]),
        }
        placed_at = next(i for i, (_, v, _) in enumerate(sequence) if v is order)
        at = rng.randint(max(0, placed_at - 200), placed_at)
        sequence.insert(at, ("orders", reversal, True))

    outgoing = [
        Outgoing(topic, value["customer_id"], orjson.dumps(value), moved=moved)
        for topic, value, moved in sequence
    ]

    # Redeliveries: the same bytes and key again, nearby, or later but within the engine's
    # documented dedup window (the customer's next ENGINE_DEDUP_IDS events; README).
    slots: list[tuple[float, Outgoing]] = [(float(i), o) for i, o in enumerate(outgoing)]
    by_key: dict[str, list[int]] = {}
    for i, o in enumerate(outgoing):
        by_key.setdefault(o.key, []).append(i)
    count = round(REDELIVERED_SHARE * len(outgoing))
    for index in rng.sample(range(len(outgoing)), count):
        original = outgoing[index]
        if rng.random() < NEARBY_REDELIVERY_SHARE:
            later = min(len(outgoing), index + rng.randint(1, NEARBY_WINDOW))
        else:
            own = by_key[original.key]
            after = own[own.index(index) + 1 :][: ENGINE_DEDUP_IDS // 2]
            later = rng.choice(after) + 1 if after else len(outgoing)
        copy = Outgoing(original.topic, original.key, original.payload, redelivery=True)
        slots.append((later - 0.5 + rng.random() * 0.4, copy))
    return [o for _, o in sorted(slots, key=lambda s: s[0])]


def as_records(delivery: list[Outgoing]) -> list[tuple[str, dict[str, Any]]]:
    """What the reference reads: the very bytes sent, decoded, in delivery order."""
    return [(o.topic, orjson.loads(o.payload)) for o in delivery]


def choose_as_of(reference: independent.Reference) -> int:
    """A fixed evaluation time: exactly 90 days after a mid-history last order, so that the
    at_risk boundary (inclusive) falls inside the population and one customer sits on it."""
    lasts = sorted(
        c.last_order_at for c in reference.customers.values() if c.last_order_at is not None
    )
    return lasts[len(lasts) // 2] + independent.AT_RISK_AFTER_DAYS * independent.DAY_MS


def far_redeliveries(delivery: list[Outgoing], reference: independent.Reference) -> Counter[str]:
    """Per customer: redeliveries that arrive ENGINE_DEDUP_IDS or more of that customer's
    distinct events after the original (beyond the engine's documented id window). Only used
    to annotate mismatches: the contract knows no such window."""
    first_at: dict[bytes, int] = {}
    applied: Counter[str] = Counter()
    far: Counter[str] = Counter()
    for outgoing in delivery:
        owner = independent.resolve(reference.merged, outgoing.key)
        if outgoing.payload in first_at:
            if applied[owner] - first_at[outgoing.payload] >= ENGINE_DEDUP_IDS:
                far[owner] += 1
            continue
        applied[owner] += 1
        first_at[outgoing.payload] = applied[owner]
    return far


# -- a worker of our own ------------------------------------------------------------------------


def own_settings(settings: Settings) -> Settings:
    run = uuid.uuid4().hex[:8]
    update: dict[str, Any] = {
        "topic_prefix": f"replay{run}.",
        "redis_prefix": f"replay:{run}:",
        "app_id": f"rapport-replay-{run}",
        "web_port": free_port(),
        "clock": "event",
        "session_timeout": 6.0,
    }
    if "refresh_seconds" in Settings.model_fields:
        # Only our own POST /admin/refresh?as_of= recomputes the population models, so the
        # stored RFM segments are the same in every run whatever its duration.
        update["refresh_seconds"] = 3600.0
    return settings.model_copy(update=update)


@dataclass
class Worker:
    base: str
    proc: subprocess.Popen[bytes]
    log: Path

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-4000:]
            raise AssertionError(f"worker exited with {self.proc.returncode}:\n{tail}")


@contextlib.contextmanager
def running_worker(settings: Settings, work: Path, name: str) -> Iterator[Worker]:
    log = work / f"{name}.log"
    proc = start_worker(settings, work / f"{name}-data", log)
    try:
        worker = Worker(f"http://127.0.0.1:{settings.web_port}", proc, log)
        wait_healthy(worker.base, proc, log)
        yield worker
    finally:
        stop_process(proc, grace=20)


@contextlib.contextmanager
def redis_cleanup(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url or "")
    try:
        yield client
    finally:
        client.close()
        delete_keys(settings)


async def send_all(settings: Settings, delivery: list[Outgoing]) -> None:
    async with EventProducer(settings, settings.kafka_url or "") as producer:
        for outgoing in delivery:
            await producer.send(outgoing.topic, outgoing.payload, key=outgoing.key)


@dataclass(frozen=True, slots=True)
class Counted:
    inputs: int  # rapport_events_total over outcomes, for the contract's customer topics
    everything: int  # the same over every topic (the engine's internal ones too)


def events_counted(worker: Worker) -> Counted:
    try:
        with urllib.request.urlopen(f"{worker.base}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        worker.check_alive()
        raise
    inputs = everything = 0.0
    for line in text.splitlines():
        if line.startswith("rapport_events_total{"):
            value = float(line.rsplit(" ", 1)[1])
            everything += value
            if any(f'topic="{t}"' in line for t in CUSTOMER_TOPICS):
                inputs += value
    return Counted(int(inputs), int(everything))


#: Topics of the contract the engine only writes (or that this test does not use).
NOT_CONSUMED = {
    "catalog",
    "offers",
    "messages.email",
    "messages.sms",
    "messages.push",
    "decisions",
    "segments",
    "deadletter",
}


async def consumer_lag(settings: Settings) -> dict[str, int]:
    """Per topic: records not yet committed by the worker's consumer group, for the customer
    input topics and any engine-internal topic under the prefix (e.g. forwarded events).

    Reads the group's committed offsets through a consumer with the group's id and a manual
    assignment: it never joins the group, so it causes no rebalance.
    """
    async with group_reader(settings) as consumer:
        names = {
            name
            for name in await consumer.topics()
            if name.startswith(settings.topic_prefix)
            and name.removeprefix(settings.topic_prefix) not in NOT_CONSUMED
        } | {settings.topic(t) for t in CUSTOMER_TOPICS}
        partitions = [
            TopicPartition(name, p)
            for name in sorted(names)
            for p in consumer.partitions_for_topic(name) or range(settings.partitions)
        ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        lag: dict[str, int] = {}
        for tp in partitions:
            done = await consumer.committed(tp)
            behind = max(0, ends[tp] - (done or 0))
            if behind:
                lag[tp.topic] = lag.get(tp.topic, 0) + behind
        return lag


async def wait_done(
    worker: Worker,
    settings: Settings,
    *,
    at_least: int,
    timeout: float = 120,
    stable_for: float = 2.0,
) -> Counted:
    """Until the worker counted ``at_least`` input events, its group has committed everything,
    and no count moved for ``stable_for`` seconds (re-keyed records come round again)."""
    deadline = time.monotonic() + timeout
    last, since = Counted(-1, -1), time.monotonic()
    while time.monotonic() < deadline:
        worker.check_alive()
        counted = await asyncio.to_thread(events_counted, worker)
        if counted != last:
            last, since = counted, time.monotonic()
        elif (
            counted.inputs >= at_least
            and time.monotonic() - since >= stable_for
            and not await consumer_lag(settings)
        ):
            return counted
        await asyncio.sleep(0.25)
    lag = await consumer_lag(settings)
    raise AssertionError(
        f"replay not done in {timeout}s: counted {last.inputs} of {at_least}, lag {lag}"
    )


def refresh_models(base: str, as_of: int) -> int:
    """``POST /admin/refresh?as_of=`` (RFM cut points); the status says whether it exists."""
    request = urllib.request.Request(f"{base}/admin/refresh?as_of={as_of}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def fetch_profiles(base: str, ids: list[str], as_of: int) -> dict[str, tuple[int, Any]]:
    def one(cid: str) -> tuple[int, Any]:
        return http_get(f"{base}/customers/{cid}?as_of={as_of}")

    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(zip(ids, pool.map(one, ids), strict=True))


# -- the comparisons, one named check per field family -----------------------------------------


def enabled_checks() -> dict[str, Check]:
    skip = {s.strip() for s in os.environ.get("RAPPORT_REPLAY_SKIP", "").split(",") if s.strip()}
    if not EXPECT_IDENTITY_MERGE:
        skip.add("identity_merge")
    unknown = skip - CHECKS.keys()
    assert not unknown, f"RAPPORT_REPLAY_SKIP names unknown checks {sorted(unknown)}"
    return {name: check for name, check in CHECKS.items() if name not in skip}


def compare(
    cmp: Comparison, far: Counter[str], checks: dict[str, Check]
) -> tuple[str, dict[str, list[Mismatch]]]:
    """Run every check; a report with per-check results and the first mismatches."""
    failures = {name: check(cmp) for name, check in checks.items()}
    lines = []
    for name, mismatches in failures.items():
        lines.append(f"  {name:15} {'ok' if not mismatches else f'{len(mismatches)} mismatches'}")
        for mismatch in mismatches[:8]:
            cid = mismatch.split(".", 1)[0].split(":", 1)[0].split(" ", 1)[0]
            note = (
                f"  [{far[cid]} redeliveries beyond the engine's {ENGINE_DEDUP_IDS}-id window]"
                if far.get(cid)
                else ""
            )
            lines.append(f"      {mismatch[:400]}{note}")
    return "\n".join(lines), {k: v for k, v in failures.items() if v}


# -- shared set-up ------------------------------------------------------------------------------


@dataclass
class Replay:
    ns: str
    delivery: list[Outgoing]
    reference: independent.Reference
    as_of: int
    rfm: dict[str, tuple[int, int, int]]
    far: Counter[str]

    @property
    def ids(self) -> list[str]:
        return [*self.reference.customers, *self.reference.merged]

    def describe(self) -> str:
        redelivered = sum(o.redelivery for o in self.delivery)
        moved = sum(o.moved for o in self.delivery)
        return (
            f"{len(self.delivery)} records ({redelivered} redelivered, {moved} reversals "
            f"moved before their order), {len(self.reference.customers)} customers, "
            f"{len(self.reference.merged)} anonymous ids merged, as_of={self.as_of}, "
            f"{sum(self.far.values())} redeliveries beyond {ENGINE_DEDUP_IDS} events "
            f"for {len(self.far)} customers"
        )


def prepare(ns: str) -> Replay:
    delivery = build_delivery(ns)
    reference = independent.compute(as_records(delivery), merge_identities=EXPECT_IDENTITY_MERGE)
    as_of = choose_as_of(reference)
    return Replay(
        ns=ns,
        delivery=delivery,
        reference=reference,
        as_of=as_of,
        rfm=independent.rfm_scores(reference.customers, as_of),
        far=far_redeliveries(delivery, reference),
    )


async def verify(replay: Replay, worker: Worker, settings: Settings) -> dict[str, tuple[int, Any]]:
    """Refresh the population models at ``as_of`` and let what that changes settle, fetch
    every profile, and run the checks; fail with the report."""
    refreshed = await asyncio.to_thread(refresh_models, worker.base, replay.as_of)
    await wait_done(worker, settings, at_least=0)
    answers = await asyncio.to_thread(fetch_profiles, worker.base, replay.ids, replay.as_of)
    cmp = Comparison(replay.reference, replay.as_of, answers, replay.rfm)
    report, failures = compare(cmp, replay.far, enabled_checks())
    print(f"{replay.describe()}\nPOST /admin/refresh -> {refreshed}\n{report}")
    assert not failures, f"{replay.describe()}\n{report}"
    return answers


def leftover_outboxes(client: redis.Redis, settings: Settings) -> list[str]:
    """Customers whose stored state still holds unpublished records."""
    left = []
    for key in client.scan_iter(match=f"{settings.redis_prefix}{{*}}:state", count=1000):
        raw = client.get(key)
        if raw is not None and decode_state(raw.partition(b":")[2]).outbox:
            left.append(key.decode())
    return left


#: Profiles of the uninterrupted run, namespace stripped, for (b) to compare with when both run.
UNINTERRUPTED: dict[str, tuple[int, Any]] = {}


def normalised(answers: dict[str, tuple[int, Any]], ns: str) -> dict[str, tuple[int, Any]]:
    """Bodies with the run's id prefix removed everywhere, cart lines in product order."""
    out = {}
    for cid, (status, body) in answers.items():
        if status == 200:
            body = orjson.loads(orjson.dumps(body).replace(ns.encode(), b""))
            body["cart"] = sorted(body["cart"], key=lambda line: line["product_id"])
        out[strip_ns(cid, ns)] = (status, body if status == 200 else None)
    return out


#: Profile fields each check covers: a skipped check also leaves its fields out of (b)'s
#: comparison with the uninterrupted run.
CHECK_FIELDS = {
    "cart": ("cart",),
    "top_viewed": ("top_viewed",),
    "tier": ("tier",),
    "rfm_r": ("rfm",),
    "rfm_f": ("rfm",),
    "rfm_m": ("rfm",),
    "rfm_code": ("rfm",),
}


def differences_from_uninterrupted(mine: dict[str, tuple[int, Any]]) -> list[str]:
    """Field by field: this run's profiles against the uninterrupted run's (whole bodies)."""
    checks = enabled_checks()
    ignored = {f for name, fields in CHECK_FIELDS.items() if name not in checks for f in fields}
    out = []
    for cid, (status, body) in mine.items():
        other_status, other = UNINTERRUPTED.get(cid, (None, None))
        if status != other_status:
            out.append(f"{cid}: HTTP {status}, uninterrupted {other_status}")
        elif body != other:
            fields = sorted(k for k in {*body, *other} - ignored if body.get(k) != other.get(k))
            out.extend(
                f"{cid}.{k}: {body.get(k)!r}, uninterrupted {other.get(k)!r}" for k in fields
            )
    return out


# -- the tests ----------------------------------------------------------------------------------


async def test_replay_matches_independent_computation(settings: Settings, tmp_path: Path) -> None:
    started = time.monotonic()
    own = own_settings(settings)
    replay = prepare(f"rpa{uuid.uuid4().hex[:6]}-")
    assert len(replay.reference.customers) >= 1000
    await ensure_topics(own, own.kafka_url or "")
    with redis_cleanup(own), running_worker(own, tmp_path, "worker") as worker:
        await send_all(own, replay.delivery)
        counted = await wait_done(worker, own, at_least=len(replay.delivery))
        print(f"\nreplayed in {time.monotonic() - started:.1f}s, {counted}")
        answers = await verify(replay, worker, own)
        UNINTERRUPTED.update(normalised(answers, replay.ns))


async def test_sigkill_mid_replay_ends_in_the_uninterrupted_state(
    settings: Settings, tmp_path: Path
) -> None:
    started = time.monotonic()
    own = own_settings(settings)
    replay = prepare(f"rpb{uuid.uuid4().hex[:6]}-")
    await ensure_topics(own, own.kafka_url or "")
    with redis_cleanup(own) as client:
        with running_worker(own, tmp_path, "first") as first:
            await send_all(own, replay.delivery)
            half = len(replay.delivery) // 2
            while (counted := (await asyncio.to_thread(events_counted, first)).inputs) < half:
                first.check_alive()
                await asyncio.sleep(0.02)
            os.kill(first.proc.pid, signal.SIGKILL)
            first.proc.wait()
        uncommitted = await consumer_lag(own)
        print(f"\nSIGKILL after {counted} of {len(replay.delivery)}; {uncommitted} uncommitted")
        assert uncommitted, "the first worker finished before the kill: nothing to resume"
        with running_worker(own, tmp_path, "second") as second:
            recounted = await wait_done(second, own, at_least=1)
            print(f"second worker: {recounted}; done in {time.monotonic() - started:.1f}s")
            answers = await verify(replay, second, own)
            left = leftover_outboxes(client, own)
        assert not left, f"outbox records left after the replay: {left[:10]}"
        if UNINTERRUPTED:
            report = differences_from_uninterrupted(normalised(answers, replay.ns))
            assert not report, "differs from the uninterrupted run:\n" + "\n".join(report[:20])
