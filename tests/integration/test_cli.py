"""The user-facing commands, run as a user runs them: ``rapport demo`` and ``rapport import``."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from models.simulation import generate_history
from stream.devstack import free_port
from stream.history import write_jsonl
from stream.settings import Settings
from tests.integration.conftest import http_get, profile_when, read_topic, worker_env


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def test_demo_brings_everything_up_offers_flow_and_nothing_is_left_behind(
    tmp_path: Path,
) -> None:
    web_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    env.update(RAPPORT_WEB_PORT=str(web_port), RAPPORT_DATA_DIR=str(tmp_path))
    log = tmp_path / "demo.out"
    demo = subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "demo", "--duration", "30", "--customers", "200"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        kafka = redis_url = None
        while time.monotonic() < deadline and not (kafka and redis_url):
            text = log.read_text()
            kafka = re.search(r"kafka://127\.0\.0\.1:(\d+)", text)
            redis_url = re.search(r"redis://127\.0\.0\.1:(\d+)", text)
            time.sleep(0.2)
        assert kafka and redis_url, log.read_text()
        demo_settings = Settings(kafka_url=kafka.group(0))
        offers = await read_topic(demo_settings, "offers", lambda v: True, want=5, timeout=60)
        assert all(o["offer_id"] and o["customer_id"] and o["reason"] for o in offers)
        status, body = http_get(f"http://127.0.0.1:{web_port}/customers/{offers[0]['customer_id']}")
        assert status == 200 and body["customer_id"] == offers[0]["customer_id"]
        assert demo.wait(timeout=90) == 0, log.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    time.sleep(1)
    for port in (int(kafka.group(1)), int(redis_url.group(1)), web_port):
        assert not listening(port), f"port {port} still served after the demo stopped"
    assert "offers" in log.read_text()


async def test_import_replays_history_through_the_live_path(
    worker: str, settings: Settings, tmp_path: Path
) -> None:
    start = 1_795_341_600_000
    history = list(
        generate_history(
            seed=3, start_ms=start, days=2, customers=30, products=20, events_per_day=400
        )
    )
    orders = [r.value for r in history if r.topic == "orders"]
    prefix = f"imp{os.getpid()}-"
    for value in orders:  # a namespace of our own, so other tests' customers never mix in
        value["customer_id"] = prefix + str(value["customer_id"])
    path = tmp_path / "orders.jsonl"
    write_jsonl(orders, path)
    with path.open("a") as f:
        f.write("{not json\n")
    expected: dict[str, set[str]] = {}
    cancelled = {v["order_id"] for v in orders if v.get("status", "placed") != "placed"}
    for v in orders:
        if v.get("status", "placed") == "placed" and v["order_id"] not in cancelled:
            expected.setdefault(v["customer_id"], set()).add(v["order_id"])

    run = subprocess.run(
        [sys.executable, "-m", "agents.cli", "import", str(path), "--topic", "orders"],
        env=worker_env(settings, tmp_path / "import"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 1, run.stderr  # one unreadable line is reported, not hidden
    assert f"sent {len(orders)} records" in run.stderr
    assert f"line {len(orders) + 1}" in run.stderr
    assert expected, "the generated history should hold placed orders"
    for cid, order_ids in expected.items():
        want = len(order_ids)
        profile = await profile_when(worker, cid, lambda p, n=want: p["orders"] == n)
        assert profile["orders"] == want
