"""What one run of the bench found: the figures, and the details behind them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from speed.latency import Latencies, histogram_quantile, percentile
from speed.metrics import Sample, events_counted, histogram, means
from speed.procs import Window
from stream.app import INTERNAL_TOPICS

HISTOGRAM = "rapport_event_to_decision_seconds"


@dataclass(frozen=True, slots=True)
class RedisSnapshot:
    used_memory: int
    commands: int
    net_input_bytes: int


def redis_snapshot(admin: redis.Redis) -> RedisSnapshot:
    info = admin.info()
    return RedisSnapshot(
        int(info["used_memory"]),
        int(info["total_commands_processed"]),
        int(info["total_net_input_bytes"]),
    )


@dataclass
class RapportResult:
    window: Window
    redis_before: RedisSnapshot  # before the worker started
    redis_after: RedisSnapshot  # once the pre-loaded events were done
    latencies: Latencies
    settled: list[Sample]  # the worker's metrics once the pre-loaded events were done
    latency_end: list[Sample]  # ... and at the end of the latency phase

    def latency_histogram(self, q: float) -> float:
        before, after = histogram(self.settled, HISTOGRAM), histogram(self.latency_end, HISTOGRAM)
        return histogram_quantile(before, after, q)


def figures(
    floor: Window, noop: Window, rapport: RapportResult, *, customers: int
) -> dict[str, float]:
    lat = rapport.latencies
    grown = rapport.redis_after.used_memory - rapport.redis_before.used_memory
    return {
        "raw_floor_events_per_s": floor.rate,
        "faust_noop_events_per_s": noop.rate,
        "rapport_events_per_s": rapport.window.rate,
        "rapport_vs_floor": rapport.window.rate / floor.rate,
        "noop_vs_floor": noop.rate / floor.rate,
        "offered_events_per_s": lat.offered_rate,
        "latency_p50_ms": percentile(lat.appended_ms, 0.5),
        "latency_p99_ms": percentile(lat.appended_ms, 0.99),
        "received_p50_ms": percentile(lat.received_ms, 0.5),
        "received_p99_ms": percentile(lat.received_ms, 0.99),
        "histogram_p50_ms": 1000 * rapport.latency_histogram(0.5),
        "histogram_p99_ms": 1000 * rapport.latency_histogram(0.99),
        "worker_cpu_s_per_1k": rapport.window.cpu_per_1k("consumer"),
        "noop_cpu_s_per_1k": noop.cpu_per_1k("consumer"),
        "floor_cpu_s_per_1k": floor.cpu_per_1k("consumer"),
        "redis_bytes_per_profile": grown / customers,
    }


def window_details(window: Window) -> dict[str, Any]:
    return {
        "seconds": round(window.seconds, 3),
        "events": window.events,
        "cpu_cores": window.cores(),
    }


def details(
    floor: Window, noop: Window, rapport: RapportResult, phases: dict[str, float]
) -> dict[str, Any]:
    lat = rapport.latencies
    return {
        "raw_floor": window_details(floor),
        "faust_noop": window_details(noop),
        "rapport": {
            **window_details(rapport.window),
            "counted_input": events_counted(rapport.settled),
            "counted_internal": events_counted(rapport.settled, INTERNAL_TOPICS),
            "redis": redis_details(rapport, events=events_counted(rapport.settled)),
            "engine": engine_details(rapport.settled),
        },
        "latency": {
            "seconds": round(lat.seconds, 3),
            "sent": lat.sent,
            "triggers": len(lat.triggers),
            "decided": len(lat.appended_ms),
            "engine": engine_details(rapport.latency_end, since=rapport.settled),
        },
        "phase_seconds": phases,
    }


def redis_details(rapport: RapportResult, *, events: float) -> dict[str, Any]:
    """Redis work of the whole throughput phase (worker start to settled), per input event."""
    before, after = rapport.redis_before, rapport.redis_after
    return {
        "used_memory_before": before.used_memory,
        "used_memory_after": after.used_memory,
        "commands_per_event": round((after.commands - before.commands) / events, 2),
        "bytes_sent_per_event": round((after.net_input_bytes - before.net_input_bytes) / events),
    }


def engine_details(samples: list[Sample], since: list[Sample] | None = None) -> dict[str, Any]:
    """What the worker's own metrics say: batch sizes, Redis round trips (seconds)."""
    return {
        "batch_events": means(samples, "rapport_batch_events", "topic", since),
        "redis_roundtrip_seconds": means(samples, "rapport_redis_roundtrip_seconds", "op", since),
    }
