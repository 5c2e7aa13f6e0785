"""One frozen settings object, read once from ``RAPPORT_*`` environment variables.

Built in the composition root (``agents.cli``) and passed down; tests build it
directly with keyword arguments. Every default is documented in README.md.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAPPORT_", frozen=True, extra="ignore")

    kafka_url: str | None = Field(
        default=None,
        description="Kafka bootstrap URL, e.g. kafka://host:9092. Unset: the demo and the "
        "tests start an embedded broker; `rapport worker` uses kafka://127.0.0.1:9092.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL. Unset: the demo and the tests start an embedded server; "
        "`rapport worker` uses redis://127.0.0.1:6379/0.",
    )
    redis_prefix: str = Field(
        default="rapport:",
        pattern=r"^[^{}]*$",
        description="Prefix of every Redis key (no braces: they would make every key one "
        "Redis Cluster hash tag).",
    )
    topic_prefix: str = Field(default="rapport.", description="Prefix of every topic name.")
    clock: Literal["live", "event"] = Field(
        default="live",
        description="live: engine time follows wall time when idle; event: only events move it.",
    )
    app_id: str = Field(default="rapport", description="Consumer group id of the workers.")
    web_host: str = Field(default="127.0.0.1", description="Address the HTTP API binds to.")
    web_port: int = Field(default=6066, ge=1, le=65535, description="HTTP API port.")
    api_token: str | None = Field(default=None, description="Bearer token for admin routes.")
    campaigns: str | None = Field(default=None, description="Path of the campaign file.")
    max_event_bytes: int = Field(default=65536, ge=256, description="Larger records are rejected.")
    future_tolerance_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How far ahead of wall time an event may be; later ones go to deadletter "
        "(they would move the engine clock), in both clock modes.",
    )
    default_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    partitions: int = Field(default=4, ge=1, description="Partitions of topics Rapport creates.")
    replication: int = Field(default=1, ge=1, description="Replication of topics Rapport creates.")
    session_timeout: float = Field(
        default=10.0, gt=0, description="Consumer group session timeout, seconds."
    )
    fetch_max_wait_ms: int = Field(
        default=500, ge=0, description="Longest a fetch may wait for data (broker long-poll)."
    )
    batch_size: int = Field(default=500, ge=1, description="Most events applied per batch.")
    align_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Longest a fetched record waits for the customer's other topics to "
        "catch up in event time (0: no waiting).",
    )
    dedup_ids: int = Field(
        default=64, ge=1, description="Recent event ids remembered per customer for dedup."
    )
    retention_days: int = Field(
        default=400, ge=1, description="A customer idle this long expires from Redis whole."
    )
    cached_states: int = Field(
        default=20_000,
        ge=0,
        description="Decoded customer states a worker keeps in memory (skips re-decoding).",
    )
    fence_days: int = Field(
        default=7,
        ge=1,
        description="How long an erased customer's fence (applied offsets, no data) is kept.",
    )
    refresh_seconds: float = Field(
        default=60.0, gt=0, description="Period of the population refresh (RFM scores)."
    )
    timer_interval: float = Field(
        default=1.0, gt=0, description="Period, seconds, of the lifecycle timer poll."
    )
    timer_lease_seconds: float = Field(
        default=30.0, gt=0, description="A claimed timer not applied by then is claimed again."
    )
    offer_ttl_days: int = Field(default=14, ge=1, description="Lifetime of an offer.")
    redis_retries: int = Field(
        default=3, ge=0, description="Quick retries of one failed Redis call (capped backoff)."
    )
    redis_connections: int = Field(
        default=16,
        ge=1,
        description="Connections of the ingestion pool; more concurrent calls wait for one.",
    )
    api_redis_connections: int = Field(
        default=16,
        ge=1,
        description="Connections of the HTTP API's own pool (readers never take ingestion's).",
    )
    redis_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Socket and pool-wait timeout of every Redis call."
    )
    outage_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long a batch is retried through a Redis or broker outage before "
        "the worker stops.",
    )
    poison_attempts: int = Field(
        default=3,
        ge=1,
        description="Failures of the same batch (not an outage) before it is split and the "
        "records that fail alone go to deadletter.",
    )
    data_dir: str = Field(default=".rapport", description="Directory for the worker's local files.")
    log_level: str = Field(
        default="info", description="Worker log level: debug, info, warning, error or critical."
    )

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        return check_log_level(value)

    @field_validator("kafka_url")
    @classmethod
    def _kafka_url(cls, value: str | None) -> str | None:
        return value if value is None else check_kafka_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        return value if value is None else check_redis_url(value)

    def topic(self, suffix: str) -> str:
        """Full topic name for a contract suffix (``clicks`` -> ``rapport.clicks``)."""
        return f"{self.topic_prefix}{suffix}"

    def suffix(self, topic: str) -> str:
        """The contract suffix of a full topic name (``rapport.clicks`` -> ``clicks``)."""
        return topic.removeprefix(self.topic_prefix)


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
REDIS_SCHEMES = ("redis", "rediss", "unix")


def check_log_level(value: str) -> str:
    """One of the logging levels, any case (a typo would otherwise only fail inside faust)."""
    if value.lower() not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return value.lower()


def check_kafka_url(value: str) -> str:
    """``kafka://host[:port]``, several hosts separated by ``;`` or ``,``: a malformed URL
    is refused at start instead of surfacing as a connection error inside the client."""
    scheme, sep, hosts = value.partition("://")
    if not sep or scheme != "kafka":
        raise ValueError("must look like kafka://host:9092 (several: kafka://a:9092;b:9092)")
    for host in (h.strip() for h in hosts.replace(";", ",").split(",")):
        name, colon, port = host.rpartition(":") if ":" in host else (host, "", "")
        if not name or (colon and not (port.isdigit() and 0 < int(port) < 65536)):
            raise ValueError(f"{host!r} is not host:port (e.g. kafka://host:9092)")
    return value


def check_redis_url(value: str) -> str:
    """A URL redis-py understands: ``redis://``, ``rediss://`` or ``unix://`` (a bare host
    name would be read as a path and fail only at the first call)."""
    parsed = urlsplit(value)
    if parsed.scheme not in REDIS_SCHEMES or "://" not in value:
        raise ValueError("must be a redis://, rediss:// or unix:// URL, e.g. redis://host:6379/0")
    try:
        parsed.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"bad port in {value!r}") from exc
    return value
