"""The real dev stack for integration tests: Tansu and Redis, started by the project's code.

One broker, one Redis and one worker serve the whole session; every test uses
its own customer ids. Topics and Redis keys carry a per-run prefix, and every
key under that prefix is deleted at the end. ``RAPPORT_KAFKA_URL`` /
``RAPPORT_REDIS_URL`` point the tests at other servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from agents.demo import stop_process
from stream.campaign_file import builtin_text
from stream.devstack import DevStack, die_with_parent, free_port, start_devstack
from stream.metrics import Metrics
from stream.producer import EventProducer
from stream.settings import Settings
from stream.store import Store, connect
from stream.topics import bootstrap, ensure_topics

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    configured = Settings()
    running = start_devstack(
        kafka_url=configured.kafka_url,
        redis_url=configured.redis_url,
        work_dir=tmp_path_factory.mktemp("stack"),
    )
    yield running
    running.close()


def test_campaign_file(directory: Path) -> Path:
    """The built-in library with no global control group, so every test customer is treated.

    The control group itself is tested on its own (test_campaigns.py).
    """
    text = builtin_text().replace("control_group_percent: 5", "control_group_percent: 0")
    assert "control_group_percent: 0" in text
    path = directory / "campaigns.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def settings(stack: DevStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    run = uuid.uuid4().hex[:8]
    built = Settings(
        campaigns=str(test_campaign_file(tmp_path_factory.mktemp("campaigns"))),
        kafka_url=stack.kafka_url,
        redis_url=stack.redis_url,
        topic_prefix=f"t{run}.",
        redis_prefix=f"test:{run}:",
        app_id=f"rapport-test-{run}",
        web_port=free_port(),
        fetch_max_wait_ms=20,
        partitions=2,
    )
    yield built
    delete_keys(built)


def worker_env(settings: Settings, data_dir: Path) -> dict[str, str]:
    """The environment that makes ``rapport worker`` use exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"RAPPORT_{name.upper()}"] = str(value)
    env["RAPPORT_DATA_DIR"] = str(data_dir)
    return env


def start_worker(settings: Settings, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "worker"],
        env=worker_env(settings, data_dir),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )


def wait_ok(
    url: str, proc: subprocess.Popen[bytes], log: Path, *, name: str, timeout: float
) -> None:
    """Until ``url`` answers 200; fail with the log's tail if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{name} not ready in {timeout}s:\n{log.read_text()[-3000:]}")


def wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    wait_ok(f"{base}/health", proc, log, name="worker", timeout=timeout)


@contextlib.contextmanager
def running_worker(settings: Settings, work: Path) -> Iterator[str]:
    """A ``rapport worker`` process with these settings; yields its HTTP base URL.

    Creates the topics first, waits until /health answers, and stops the worker
    (SIGTERM, then SIGKILL after 20 s) however the block ends.
    """
    asyncio.run(ensure_topics(settings, settings.kafka_url or ""))
    log = work / "worker.log"
    proc = start_worker(settings, work / "data", log)
    base = f"http://127.0.0.1:{settings.web_port}"
    try:
        wait_healthy(base, proc, log)
        yield base
    finally:
        stop_process(proc, grace=20)


def delete_keys(settings: Settings) -> None:
    """Every Redis key under the settings' prefix: tests clean up after themselves."""
    client = redis.Redis.from_url(settings.redis_url or "")
    for key in client.scan_iter(match=f"{settings.redis_prefix}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def worker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One running worker; yields its HTTP base URL."""
    with running_worker(settings, tmp_path_factory.mktemp("worker")) as base:
        yield base


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[EventProducer]:
    async with EventProducer(settings, settings.kafka_url or "") as p:
        yield p


def http_get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read() or b"null")


async def eventually(
    check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2
) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; last value: {last!r}")


async def profile_when(
    base: str, customer_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        status, body = http_get(f"{base}/customers/{customer_id}")
        return body if status == 200 and predicate(body) else None

    return await eventually(check, timeout=timeout)


async def read_topic(
    settings: Settings,
    suffix: str,
    predicate: Callable[[dict[str, Any]], bool],
    *,
    want: int = 1,
    timeout: float = 30.0,
    settle: float = 0.0,
) -> list[dict[str, Any]]:
    """Read a topic from the start with a plain aiokafka consumer; return matching values.

    Returns once ``want`` matches are seen and then ``settle`` seconds passed
    (to catch extra, unwanted records), or fails after ``timeout``.
    """
    consumer = AIOKafkaConsumer(
        settings.topic(suffix),
        bootstrap_servers=bootstrap(settings.kafka_url or ""),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            if settle_until is not None and time.monotonic() >= settle_until:
                return found
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    if record.value is None:  # a tombstone
                        continue
                    value = orjson.loads(record.value)
                    if predicate(value):
                        found.append(value)
            if len(found) >= want and settle_until is None:
                settle_until = time.monotonic() + settle
        if len(found) >= want:
            return found
        raise AssertionError(f"saw {len(found)} of {want} matching records on {suffix}")
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def group_reader(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer with the workers' group id that never joins the group (so it causes no
    rebalance): for reading the group's committed offsets."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap(settings.kafka_url or ""),
        group_id=settings.app_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def isolated(settings: Settings, kind: str, **update: Any) -> Settings:
    """The same servers, with topics, keys, consumer group and HTTP port of its own."""
    run = uuid.uuid4().hex[:8]
    own = {
        "topic_prefix": f"{kind}{run}.",
        "redis_prefix": f"test:{run}:",
        "app_id": f"rapport-{kind}-{run}",
        "web_port": free_port(),
    }
    return settings.model_copy(update={**own, **update})


@pytest.fixture(scope="module")
def event_settings(settings: Settings) -> Iterator[Settings]:
    """Settings of a worker of its own, on the event clock (time moves only with events).

    Tests give each scenario its own stretch of event time years ahead of today (``Shop``),
    so this worker accepts event times up to 2100 (RAPPORT_FUTURE_TOLERANCE_SECONDS).
    """
    own = isolated(
        settings,
        "event",
        clock="event",
        timer_interval=0.2,
        refresh_seconds=3600.0,
        future_tolerance_seconds=100 * 365 * 86400.0,
    )
    yield own
    delete_keys(own)


@pytest.fixture(scope="module")
def event_worker(
    event_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with running_worker(event_settings, tmp_path_factory.mktemp("event-worker")) as base:
        yield base


def http_send(url: str, method: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read() or b"null")


@pytest.fixture
async def scratch_store(settings: Settings) -> AsyncIterator[Store]:
    """A ``Store`` on the tests' Redis under a prefix of its own, emptied afterwards."""
    client = connect(settings.redis_url or "", retries=3)
    prefix = f"{settings.redis_prefix}{unique('scratch')}:"
    yield Store(
        client,
        prefix=prefix,
        retention_days=400,
        fence_days=7,
        metrics=Metrics(CollectorRegistry()),
    )
    async for key in client.scan_iter(match=f"{prefix}*"):
        await client.delete(key)
    await client.aclose()
