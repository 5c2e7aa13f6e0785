"""One frozen settings object, read once from ``RAPPORT_*`` environment variables.

Built in the composition root (``agents.cli``) and passed down; tests build it
directly with keyword arguments. Every default is documented in README.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
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
    redis_prefix: str = Field(default="rapport:", description="Prefix of every Redis key.")
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
        default=8, ge=0, description="Retries of a failed Redis call before the worker stops."
    )
    data_dir: str = Field(default=".rapport", description="Directory for the worker's local files.")
    log_level: str = Field(default="info")

    def topic(self, suffix: str) -> str:
        """Full topic name for a contract suffix (``clicks`` -> ``rapport.clicks``)."""
        return f"{self.topic_prefix}{suffix}"

    def suffix(self, topic: str) -> str:
        """The contract suffix of a full topic name (``rapport.clicks`` -> ``clicks``)."""
        return topic.removeprefix(self.topic_prefix)
