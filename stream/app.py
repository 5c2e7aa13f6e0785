"""The faust App factory: broker driver, topics, web server, nothing else.

Faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500``. Real Kafka
answers a fetch as soon as data arrives, but the dev broker holds each fetch
for about half that wait, which alone would put ~0.75 s on every event. The
transport below makes the wait a setting (``RAPPORT_FETCH_MAX_WAIT_MS``), and its
consumer is the batch fast path (``stream.batching``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT

from stream.batching import BatchConsumer, BatchFlow, BatchHandler
from stream.settings import Settings

INPUT_TOPICS = ("clicks", "orders", "customers", "catalog", "feedback")
#: Rapport's own topic (a contract extension): events for the owner of a customer.
INTERNAL_TOPICS = ("internal",)
OUTPUT_TOPICS = (
    "offers",
    "messages.email",
    "messages.sms",
    "messages.push",
    "decisions",
    "segments",
    "deadletter",
)

DEFAULT_KAFKA_URL = "kafka://127.0.0.1:9092"


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.conf.rapport_fetch_max_wait_ms  # type: ignore[attr-defined]
        return consumer


class _Consumer(BatchConsumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class RapportApp(faust.App):
    """A faust App whose consumers use Rapport's transport, with batch flows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_flows: dict[str, BatchFlow] = {}

    def batch_flow(
        self, topics: Sequence[faust.TopicT], handler: BatchHandler, *, batch_size: int
    ) -> None:
        """Subscribe to ``topics`` and hand their records to ``handler`` in whole batches
        (records of all of them fetched together arrive in the same call)."""
        flow = BatchFlow(handler, batch_size)
        for topic in topics:
            for name in topic.topics:
                self.batch_flows[name] = flow
            self.topics.add(topic)

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self, loop=self.loop)


def kafka_url(settings: Settings) -> str:
    return settings.kafka_url or DEFAULT_KAFKA_URL


def create_app(settings: Settings) -> RapportApp:
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    app = RapportApp(
        settings.app_id,
        broker=kafka_url(settings),
        autodiscover=False,
        store="memory://",
        datadir=str(data_dir),
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_host=settings.web_host,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_allow_declare=True,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(settings.session_timeout / 5, 0.5),
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=1,
        # a send the broker does not acknowledge fails after this, and the batch runs
        # again (stream.resilience) instead of waiting for faust's default 20 minutes
        producer_request_timeout=30.0,
    )
    app.conf.rapport_fetch_max_wait_ms = settings.fetch_max_wait_ms  # type: ignore[attr-defined]
    app.conf.rapport_align_wait_seconds = settings.align_wait_seconds  # type: ignore[attr-defined]
    return app


def raw_topic(app: faust.App, name: str) -> faust.TopicT:
    """Topics carry raw bytes: decoding is the codecs' job, so bad data cannot kill an agent."""
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


class WebPortUnavailable(RuntimeError):
    """The worker's HTTP port cannot be bound; the message says which port and what to set."""


def web_port_unavailable(settings: Settings, reason: str) -> WebPortUnavailable:
    return WebPortUnavailable(
        f"cannot serve HTTP on {settings.web_host}:{settings.web_port} ({reason}); another "
        "worker or demo may be using it: stop it or set RAPPORT_WEB_PORT to a free port"
    )


def check_web_port(settings: Settings) -> None:
    """Raise ``WebPortUnavailable`` unless the HTTP port can be bound right now.

    A worker that cannot serve its port must not run: its health, metrics and
    API would be answered by whatever holds the port (another worker's figures).
    Checked before faust starts so the failure is one line, not a traceback;
    faust failing to bind later (a race) stops the worker too.
    """
    host, port = settings.web_host, settings.web_port
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.create_server((host, port), family=family):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise web_port_unavailable(settings, reason) from exc
