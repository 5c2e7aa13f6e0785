"""Creating the contract's topics up front, with partition counts chosen at creation.

The dev broker cannot add partitions later, and every input topic must have the
same partition count so that one customer's clicks, orders and profile updates
land on the same worker.
"""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stream.app import INPUT_TOPICS, INTERNAL_TOPICS, OUTPUT_TOPICS
from stream.settings import Settings

log = logging.getLogger(__name__)


def bootstrap(url: str) -> str:
    """``kafka://a:9092;b:9092`` -> ``a:9092,b:9092`` (faust's URL form to aiokafka's)."""
    hosts = url.split("://", 1)[-1]
    return ",".join(h.strip() for h in hosts.replace(";", ",").split(",") if h.strip())


async def ensure_topics(settings: Settings, url: str) -> list[str]:
    """Create every contract topic that does not exist yet; return the ones created."""
    names = [settings.topic(s) for s in (*INPUT_TOPICS, *INTERNAL_TOPICS, *OUTPUT_TOPICS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(url), request_timeout_ms=30000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            new = [NewTopic(n, settings.partitions, settings.replication) for n in missing]
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                log.info("topics created concurrently by another worker")
        return missing
    finally:
        await admin.close()
