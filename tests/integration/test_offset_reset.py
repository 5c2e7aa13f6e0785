"""A log that starts again from offset 0 (the dev broker restarted with its memory lost, a
topic recreated, another cluster) is not a redelivery: its records are applied as new,
while a real redelivery of the same log still changes nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from agents.demo import stop_process
from stream.devstack import start_broker
from stream.settings import Settings
from stream.topics import ensure_topics
from tests.integration.conftest import (
    delete_keys,
    isolated,
    running_worker,
    unique,
)
from tests.integration.rounds import all_have, orders_of, send_orders

CUSTOMERS = 12


def test_orders_after_the_log_starts_again_are_applied(settings: Settings, tmp_path: Path) -> None:
    """The broker restarts empty twice: once under the running worker, once while no worker
    runs (a new log read by a worker started on it). Each round of orders counts once."""
    proc, url = start_broker(tmp_path / "broker-1.log")
    port = int(url.rsplit(":", 1)[1])
    own = isolated(settings, "reset", kafka_url=url, clock="event")
    customers = [unique("c") for _ in range(CUSTOMERS)]
    try:
        (tmp_path / "worker-1").mkdir()
        (tmp_path / "worker-2").mkdir()
        with running_worker(own, tmp_path / "worker-1") as base:
            asyncio.run(send_orders(own, customers, 1))
            asyncio.run(send_orders(own, customers, 1))  # a producer retry: the same events again
            all_have(base, customers, 1)
            stop_process(proc, grace=5)
            proc, _ = start_broker(tmp_path / "broker-2.log", port=port)
            time.sleep(1)
            asyncio.run(ensure_topics(own, url))
            asyncio.run(send_orders(own, customers, 2))
            all_have(base, customers, 2)
        stop_process(proc, grace=5)
        proc, _ = start_broker(tmp_path / "broker-3.log", port=port)
        with running_worker(own, tmp_path / "worker-2") as base:
            for _ in range(3):  # as many records as the old log held, and more
                asyncio.run(send_orders(own, customers, 3))
            all_have(base, customers, 3)
            time.sleep(2)
            assert orders_of(base, customers) == [3] * CUSTOMERS
    finally:
        stop_process(proc, grace=5)
        delete_keys(own)
