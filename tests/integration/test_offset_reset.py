"""A log that starts again from offset 0 (the dev broker restarted with its memory lost, a
topic recreated, another cluster) is not a redelivery: its records are applied as new,
while a real redelivery of the same log still changes nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("worker_kept_running", [False, True])
def test_orders_after_the_log_starts_again_are_applied(
    settings: Settings, tmp_path: Path, worker_kept_running: bool
) -> None:
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
            if worker_kept_running:
                stop_process(proc, grace=5)
                proc, _ = start_broker(tmp_path / "broker-2.log", port=port)
                time.sleep(1)
                asyncio.run(ensure_topics(own, url))
                asyncio.run(send_orders(own, customers, 2))
                all_have(base, customers, 2)
        if not worker_kept_running:
            stop_process(proc, grace=5)
            proc, _ = start_broker(tmp_path / "broker-2.log", port=port)
        with running_worker(own, tmp_path / "worker-2") as base:
            asyncio.run(send_orders(own, customers, 3))
            asyncio.run(send_orders(own, customers, 3))  # redelivered on the new log
            want = 3 if worker_kept_running else 2
            all_have(base, customers, want)
            time.sleep(2)
            assert orders_of(base, customers) == [want] * CUSTOMERS
    finally:
        stop_process(proc, grace=5)
        delete_keys(own)
