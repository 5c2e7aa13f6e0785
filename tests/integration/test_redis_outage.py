"""Redis trouble under a running worker: paused (SIGSTOP) and down for a while, then back
from its append-only file. The worker rides both out and ends with every event applied
exactly once; it stops only after an outage longer than RAPPORT_OUTAGE_SECONDS."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from agents.demo import stop_process
from stream.devstack import start_redis
from stream.producer import EventProducer
from stream.settings import Settings
from stream.topics import ensure_topics
from tests.integration.conftest import (
    eventually,
    http_get,
    isolated,
    running_worker,
    start_worker,
    unique,
    wait_healthy,
)
from tests.integration.rounds import DAY, HOUR, T0, all_have, orders_of, send_orders

CUSTOMERS = 10


async def send_click(settings: Settings, cid: str, ts: int) -> None:
    async with EventProducer(settings, settings.kafka_url or "") as producer:
        await producer.send(
            "clicks", {"event_id": unique("e"), "ts": ts, "customer_id": cid, "type": "page_view"}
        )


def lifecycles(base: str, customers: list[str]) -> set[str]:
    return {http_get(f"{base}/customers/{cid}")[1]["lifecycle"] for cid in customers}


def test_a_paused_then_restarted_redis_loses_and_doubles_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "redis"
    redis_proc, redis_url = start_redis(data, appendonly=True)
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    own = isolated(
        settings, "outage", redis_url=redis_url, clock="event", redis_timeout_seconds=1.0
    )
    customers = [unique("c") for _ in range(CUSTOMERS)]
    (tmp_path / "worker").mkdir()
    try:
        with running_worker(own, tmp_path / "worker") as base:
            asyncio.run(send_orders(own, customers, 1))
            all_have(base, customers, 1)

            os.kill(redis_proc.pid, signal.SIGSTOP)  # paused: calls time out, then retried
            asyncio.run(send_orders(own, customers, 2))
            time.sleep(6)
            os.kill(redis_proc.pid, signal.SIGCONT)
            all_have(base, customers, 2)

            redis_proc.kill()  # down for 10 s, then back from its append-only file
            redis_proc.wait()
            asyncio.run(send_orders(own, customers, 3))
            time.sleep(10)
            redis_proc, _ = start_redis(data, port=port, appendonly=True)
            all_have(base, customers, 3)

            asyncio.run(send_orders(own, customers, 3))  # a producer retry after all that
            time.sleep(3)
            assert orders_of(base, customers) == [3] * CUSTOMERS

            # the lifecycle timers still fire after all that: 90 days later, all at risk
            asyncio.run(send_click(own, unique("clock"), T0 + 3 * HOUR + 91 * DAY))
            asyncio.run(
                eventually(lambda: lifecycles(base, customers) == {"at_risk"}, timeout=30)
            )
            status, health = http_get(f"{base}/health")
            assert status == 200, health
        log = (tmp_path / "worker" / "worker.log").read_text()
        assert "Crashed" not in log
        assert "running the batch again" in log  # the outage was met, not missed
    finally:
        os.kill(redis_proc.pid, signal.SIGCONT)
        stop_process(redis_proc, grace=5)


def test_an_outage_longer_than_allowed_stops_the_worker_and_loses_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "redis"
    redis_proc, redis_url = start_redis(data, appendonly=True)
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    own = isolated(
        settings,
        "longoutage",
        redis_url=redis_url,
        clock="event",
        redis_timeout_seconds=1.0,
        outage_seconds=4.0,
    )
    customers = [unique("c") for _ in range(CUSTOMERS)]
    asyncio.run(ensure_topics(own, own.kafka_url or ""))
    log = tmp_path / "worker.log"
    worker = start_worker(own, tmp_path / "data", log)
    base = f"http://127.0.0.1:{own.web_port}"
    try:
        wait_healthy(base, worker, log)
        redis_proc.kill()
        redis_proc.wait()
        asyncio.run(send_orders(own, customers, 1))
        assert worker.wait(timeout=90) != 0
        assert "outage longer than 4 s" in log.read_text()

        redis_proc, _ = start_redis(data, port=port, appendonly=True)
        worker = start_worker(own, tmp_path / "data", log)
        wait_healthy(base, worker, log)
        all_have(base, customers, 1)
    finally:
        stop_process(worker, grace=10)
        stop_process(redis_proc, grace=5)
