"""The batch fast path against the real broker and Redis: what gets committed, and when.

Offsets of a batch become committed only after its handler returned (its Redis
writes acknowledged); a failing batch stops the worker with its offsets
uncommitted, and the next worker replays it; two real workers sharing the
customer topics through rebalances apply every event exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.demo import stop_process
from stream.devstack import die_with_parent, free_port
from stream.producer import EventProducer
from stream.settings import Settings
from stream.topics import bootstrap, ensure_topics
from tests.integration.conftest import (
    delete_keys,
    eventually,
    group_reader,
    http_get,
    isolated,
    profile_when,
    start_worker,
    wait_healthy,
    worker_env,
)

RECORDS = 12


@pytest.fixture
def own(settings: Settings) -> Iterator[Settings]:
    mine = isolated(settings, "batch")
    yield mine
    delete_keys(mine)


async def create_topic(settings: Settings, name: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(settings.kafka_url or ""))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def produce(settings: Settings, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(settings.kafka_url or ""))
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


async def committed(settings: Settings, topic: str) -> int | None:
    async with group_reader(settings) as consumer:
        return await consumer.committed(TopicPartition(topic, 0))


@contextlib.contextmanager
def batch_app(
    settings: Settings, work: Path, topic: str, **steer: str
) -> Iterator[subprocess.Popen[bytes]]:
    env = worker_env(settings, work / "data")
    env.update({"BATCH_TOPIC": topic, **{f"BATCH_{k.upper()}": v for k, v in steer.items()}})
    work.mkdir(parents=True, exist_ok=True)
    log = work / "batch_app.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.batch_app", "worker"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    try:
        yield proc
    finally:
        stop_process(proc)


def handled_offsets(client: redis.Redis, key: str) -> list[int]:
    return [int(o) for batch in client.lrange(key, 0, -1) for o in batch.split(b",") if o]


async def test_offsets_are_committed_only_after_the_handler_returns(
    own: Settings, tmp_path: Path
) -> None:
    topic = own.topic("gated")
    await create_topic(own, topic)
    await produce(own, topic, [f"v{i}".encode() for i in range(RECORDS)])
    client = redis.Redis.from_url(own.redis_url or "")
    seen, gate = f"{own.redis_prefix}seen", f"{own.redis_prefix}gate"
    with batch_app(own, tmp_path, topic, key=seen, gate=gate):
        # the handler is held at the gate: the first batch was fetched, nothing is acked
        await eventually(lambda: client.exists(f"{seen}:entered"), timeout=60)
        await asyncio.sleep(2.5)  # over two commit intervals (1 s)
        assert await committed(own, topic) is None
        assert client.llen(seen) == 0
        client.set(gate, 1)
        await eventually(lambda: sorted(handled_offsets(client, seen)) == list(range(RECORDS)))
        deadline = time.monotonic() + 30
        while await committed(own, topic) != RECORDS and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        assert await committed(own, topic) == RECORDS
    client.close()


async def test_a_failing_batch_stays_uncommitted_and_is_replayed(
    own: Settings, tmp_path: Path
) -> None:
    topic = own.topic("poisoned")
    await create_topic(own, topic)
    values = [f"v{i}".encode() for i in range(RECORDS)]
    values[7] = b"poison"
    await produce(own, topic, values)
    client = redis.Redis.from_url(own.redis_url or "")
    seen = f"{own.redis_prefix}seen"
    with batch_app(own, tmp_path / "first", topic, key=seen, poison="poison") as proc:
        code = await asyncio.to_thread(proc.wait, 90)
    assert code != 0, "the worker must stop when a batch fails after its retries"
    before = handled_offsets(client, seen)
    done_at_crash = await committed(own, topic)
    assert 7 not in before
    assert (done_at_crash or 0) <= 7, "an offset at or after the failed batch was committed"
    assert set(before) >= set(range(done_at_crash or 0))

    with batch_app(own, tmp_path / "second", topic, key=seen):
        await eventually(lambda: set(handled_offsets(client, seen)) == set(range(RECORDS)))
    after = handled_offsets(client, seen)
    replayed = after[len(before) :]
    assert sorted(replayed) == list(range(done_at_crash or 0, RECORDS))
    client.close()


ORDERS_PER_CUSTOMER = 6  # rounds: one order and one view each
CUSTOMERS = 40


async def send_round(producer: EventProducer, ns: str, round_: int) -> None:
    """Per customer: one order (accounting dedups by order id: a loss check) and one
    product view (views are counted per event: a double-apply check)."""
    ts = 1_700_000_000_000 + round_ * 60_000
    for c in range(CUSTOMERS):
        cid = f"{ns}-c{c}"
        await producer.send(
            "orders",
            {
                "event_id": f"{cid}-o{round_}",
                "ts": ts + c,
                "customer_id": cid,
                "order_id": f"{cid}-o{round_}",
                "total": 10.0 + round_,
                "items": [{"product_id": "p1", "category": "c", "quantity": 1, "unit_price": 10.0}],
            },
        )
        await producer.send(
            "clicks",
            {
                "event_id": f"{cid}-v{round_}",
                "ts": ts + c,
                "customer_id": cid,
                "type": "product_view",
                "product_id": "p1",
            },
        )
    await producer.flush()


def counted(profile: dict) -> tuple[int, float, int]:
    views = {v["product_id"]: v["views"] for v in profile["top_viewed"]}
    return profile["orders"], profile["revenue"], views.get("p1", 0)


async def test_two_workers_through_rebalances_apply_every_order_once(
    own: Settings, tmp_path: Path
) -> None:
    """Worker B joins while orders flow (rebalance), then A leaves (another): every
    customer ends with exactly the orders sent, none lost, none counted twice."""
    settings = own.model_copy(update={"partitions": 4, "session_timeout": 6.0})
    second = settings.model_copy(update={"web_port": free_port()})
    await ensure_topics(settings, settings.kafka_url or "")
    ns = uuid.uuid4().hex[:6]
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    a = start_worker(settings, tmp_path / "a", a_log)
    b: subprocess.Popen[bytes] | None = None
    try:
        await asyncio.to_thread(wait_healthy, f"http://127.0.0.1:{settings.web_port}", a, a_log)
        async with EventProducer(settings, settings.kafka_url or "") as producer:
            await send_round(producer, ns, 0)
            await send_round(producer, ns, 1)
            b = start_worker(second, tmp_path / "b", b_log)
            for round_ in range(2, 4):
                await send_round(producer, ns, round_)
                await asyncio.sleep(1.0)
            base_b = f"http://127.0.0.1:{second.web_port}"
            await asyncio.to_thread(wait_healthy, base_b, b, b_log)
            await send_round(producer, ns, 4)
            a.terminate()  # graceful: A finishes its batch in flight, commits, leaves
            await send_round(producer, ns, ORDERS_PER_CUSTOMER - 1)
        expected = (ORDERS_PER_CUSTOMER, sum(10.0 + r for r in range(ORDERS_PER_CUSTOMER)))
        expected += (ORDERS_PER_CUSTOMER,)
        for c in range(CUSTOMERS):
            profile = await profile_when(
                base_b, f"{ns}-c{c}", lambda p: counted(p)[0] >= ORDERS_PER_CUSTOMER, timeout=90
            )
        await asyncio.sleep(2.0)  # anything replayed twice would land now
        found = {c: counted(http_get(f"{base_b}/customers/{ns}-c{c}")[1]) for c in range(CUSTOMERS)}
        assert {c: v for c, v in found.items() if v != expected} == {}
        assert profile
    finally:
        for proc in (a, b):
            if proc is not None:
                stop_process(proc)
