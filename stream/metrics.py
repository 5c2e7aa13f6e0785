"""All Prometheus metrics, created once from an injected registry.

Labels are bounded (topic, outcome, reason, campaign, channel): never a customer id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter(
            "rapport_events_total",
            "Input records by topic and outcome (accepted, duplicate, rejected).",
            ["topic", "outcome"],
            registry=registry,
        )
        self.deadletters = Counter(
            "rapport_deadletter_total",
            "Records sent to the deadletter topic, by source topic and reason code.",
            ["topic", "reason"],
            registry=registry,
        )
        self.offers = Counter(
            "rapport_offers_total", "Offers published.", ["campaign"], registry=registry
        )
        self.messages = Counter(
            "rapport_messages_total",
            "Messages published.",
            ["channel", "campaign"],
            registry=registry,
        )
        self.decisions = Counter(
            "rapport_decisions_total",
            "Campaign decisions by outcome and reason.",
            ["outcome", "reason"],
            registry=registry,
        )
        self.event_to_decision = Histogram(
            "rapport_event_to_decision_seconds",
            "Event time of the trigger to the moment its decision is published.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "rapport_batch_events",
            "Events per processed batch.",
            ["topic"],
            buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=registry,
        )
        self.redis_seconds = Histogram(
            "rapport_redis_roundtrip_seconds",
            "Duration of Redis round trips.",
            ["op"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
            registry=registry,
        )
        self.conflicts = Counter(
            "rapport_state_conflicts_total",
            "Optimistic writes retried because another writer changed the customer.",
            registry=registry,
        )
        self.segment_changes = Counter(
            "rapport_segment_changes_total",
            "Segment entries and exits published, by family (lifecycle, tier, rfm).",
            ["family", "change"],
            registry=registry,
        )
        self.refresh_seconds = Histogram(
            "rapport_refresh_seconds",
            "Duration of population refreshes (RFM scoring).",
            buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0),
            registry=registry,
        )
        self.timers_fired = Counter(
            "rapport_timers_fired_total",
            "Lifecycle timers claimed and sent to their customer's owner.",
            registry=registry,
        )
        self.campaign_reloads = Counter(
            "rapport_campaign_reloads_total",
            "Campaign file reloads by result (loaded, rejected).",
            ["result"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "rapport_consumer_lag",
            "Records not yet committed, per assigned partition (log end minus committed).",
            ["topic", "partition"],
            registry=registry,
        )
        self.freshness = Gauge(
            "rapport_event_time_freshness_seconds",
            "Wall time minus the newest event time applied (how far behind the engine is).",
            registry=registry,
        )
        self.watermark = Gauge(
            "rapport_event_time_watermark_seconds",
            "Largest event time accepted so far (the engine clock in event mode).",
            registry=registry,
        )
        self.batch_retries = Counter(
            "rapport_batch_retries_total",
            "Batches run again, by why: outage (Redis or the broker unreachable, retried "
            "with backoff) or error (any other exception; repeated, it isolates poison).",
            ["flow", "kind"],
            registry=registry,
        )
        self.poison = Counter(
            "rapport_poison_records_total",
            "Records the worker failed on alone, again and again: sent to deadletter with "
            "the exception so the rest of the stream goes on.",
            ["topic"],
            registry=registry,
        )
        self.outage = Gauge(
            "rapport_outage_seconds",
            "How long the batch in flight has been waiting out a Redis or broker outage "
            "(0 when none).",
            ["flow"],
            registry=registry,
        )
        self.offset_resets = Counter(
            "rapport_offset_resets_total",
            "Partitions whose log was found reset (offsets back below what was applied, "
            "log end below it too): their records are applied as new from then on.",
            ["topic"],
            registry=registry,
        )
