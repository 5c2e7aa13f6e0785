"""A batch that fails every time for a reason a retry cannot fix must not crash-loop the
worker: the records that fail on their own go to deadletter with the exception, every
other record of the batch is applied, and the worker goes on."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import redis

from stream import keys
from stream.producer import EventProducer
from stream.settings import Settings
from tests.integration.conftest import (
    delete_keys,
    eventually,
    http_get,
    isolated,
    read_topic,
    running_worker,
    unique,
)

T0 = 1_700_000_000_000  # 2023-11-14: history, well before wall time


async def send(settings: Settings, healthy: list[str], broken: str) -> None:
    async with EventProducer(settings, settings.kafka_url or "") as producer:
        for i, cid in enumerate([*healthy[:10], broken, *healthy[10:], broken, broken]):
            await producer.send(
                "orders",
                {
                    "event_id": unique("e"),
                    "ts": T0 + i,
                    "customer_id": cid,
                    "order_id": unique("o"),
                    "total": 10.0,
                },
            )


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def test_records_of_a_customer_whose_state_cannot_be_read_are_isolated(
    settings: Settings, tmp_path: Path
) -> None:
    own = isolated(settings, "poison", clock="event")
    healthy = [unique("c") for _ in range(20)]
    broken = unique("broken")
    client = redis.Redis.from_url(own.redis_url or "")
    client.set(keys.customer_state(own.redis_prefix, broken), b"7:not a state at all")
    try:
        with running_worker(own, tmp_path) as base:
            asyncio.run(send(own, healthy, broken))

            def applied() -> bool:
                answers = [http_get(f"{base}/customers/{cid}") for cid in healthy]
                return all(status == 200 and body["orders"] == 1 for status, body in answers)

            asyncio.run(eventually(applied, timeout=90))
            dead = asyncio.run(
                read_topic(own, "deadletter", lambda v: broken in v["payload"], want=3, settle=2)
            )
            assert len(dead) == 3
            assert all(v["error"].startswith("the worker failed on this record") for v in dead)
            assert sorted(v["offset"] for v in dead) == sorted({v["offset"] for v in dead})
            assert metric(base, "rapport_poison_records_total") == 3
            status, _ = http_get(f"{base}/health")
            assert status == 200
    finally:
        client.close()
        delete_keys(own)
