"""What one run of the bench found: the figures, and the details behind them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import redis

from speed.exactness import Mismatch
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


@dataclass
class ScaleOutResult:
    window: Window  # both workers' input events summed; CPU of ``consumer`` and ``consumer_2``
    settled: list[list[Sample]]  # each worker's metrics once both had settled
    first_progress: list[float | None]  # when each worker first counted an event, monotonic
    all_running: tuple[float, float] | None  # first poll with every worker counting: t, count
    generations: list[list[int]]  # consumer group generations each worker joined
    customers: int  # customers compared with the single worker's run
    mismatches: list[Mismatch]

    @property
    def all_running_rate(self) -> float:
        """The combined rate from the first poll where every worker had counted an event
        (the window without the start-up skew between the workers)."""
        if self.all_running is None:
            return math.nan
        t, count = self.all_running
        last = self.window.last
        return (last.count - count) / (last.t - t) if last.t > t else math.nan

    @property
    def workers_cpu_per_1k(self) -> float:
        used = self.window.cpu("consumer") + self.window.cpu("consumer_2")
        return 1000 * used / self.window.events if self.window.events else math.nan


@dataclass(frozen=True)
class RunResult:
    floor: Window
    noop: Window  # faust's per-message path
    fastpath: Window  # the batch fast path
    rapport: RapportResult
    scaleout: ScaleOutResult | None  # None with --no-scale-out


def figures(run: RunResult, *, customers: int) -> dict[str, float]:
    floor, noop, fastpath, rapport = run.floor, run.noop, run.fastpath, run.rapport
    lat = rapport.latencies
    grown = rapport.redis_after.used_memory - rapport.redis_before.used_memory
    out = {
        "raw_floor_events_per_s": floor.rate,
        "faust_noop_events_per_s": noop.rate,
        "fastpath_noop_events_per_s": fastpath.rate,
        "rapport_events_per_s": rapport.window.rate,
        "rapport_vs_floor": rapport.window.rate / floor.rate,
        "noop_vs_floor": noop.rate / floor.rate,
        "fastpath_vs_floor": fastpath.rate / floor.rate,
        "offered_events_per_s": lat.offered_rate,
        "latency_p50_ms": percentile(lat.appended_ms, 0.5),
        "latency_p99_ms": percentile(lat.appended_ms, 0.99),
        "received_p50_ms": percentile(lat.received_ms, 0.5),
        "received_p99_ms": percentile(lat.received_ms, 0.99),
        "histogram_p50_ms": 1000 * rapport.latency_histogram(0.5),
        "histogram_p99_ms": 1000 * rapport.latency_histogram(0.99),
        "worker_cpu_s_per_1k": rapport.window.cpu_per_1k("consumer"),
        "noop_cpu_s_per_1k": noop.cpu_per_1k("consumer"),
        "fastpath_cpu_s_per_1k": fastpath.cpu_per_1k("consumer"),
        "floor_cpu_s_per_1k": floor.cpu_per_1k("consumer"),
        "redis_bytes_per_profile": grown / customers,
    }
    if run.scaleout is not None:
        scaled = run.scaleout.window.rate
        out["scaleout_events_per_s"] = scaled
        out["scaleout_vs_one_worker"] = scaled / rapport.window.rate
        out["scaleout_cpu_s_per_1k"] = run.scaleout.workers_cpu_per_1k
    return out


def window_details(window: Window) -> dict[str, Any]:
    return {
        "seconds": round(window.seconds, 3),
        "events": window.events,
        "cpu_cores": window.cores(),
    }


def details(run: RunResult, phases: dict[str, float]) -> dict[str, Any]:
    rapport = run.rapport
    lat = rapport.latencies
    out = {
        "raw_floor": window_details(run.floor),
        "faust_noop": window_details(run.noop),
        "fastpath_noop": window_details(run.fastpath),
        "rapport": {
            **window_details(rapport.window),
            "counted_input": events_counted(rapport.settled),
            "counted_internal": events_counted(rapport.settled, INTERNAL_TOPICS),
            "duplicates": outcome_count(rapport.settled, "duplicate"),
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
    }
    if run.scaleout is not None:
        out["scaleout"] = scaleout_details(run.scaleout)
    return {**out, "phase_seconds": phases}


#: Mismatches kept in the JSON (all are counted).
MISMATCHES_SHOWN = 20


def scaleout_details(scaled: ScaleOutResult) -> dict[str, Any]:
    """The combined window, what each worker did, and the exactness check."""
    start = scaled.window.first.t
    workers = [
        {
            "counted_input": events_counted(samples),
            "counted_internal": events_counted(samples, INTERNAL_TOPICS),
            "duplicates": outcome_count(samples, "duplicate"),
            "first_progress_s": None if first is None else round(max(0.0, first - start), 3),
            "generations": generations,
            "engine": engine_details(samples),
        }
        for samples, first, generations in zip(
            scaled.settled, scaled.first_progress, scaled.generations, strict=True
        )
    ]
    return {
        **window_details(scaled.window),
        "all_running_events_per_s": round(scaled.all_running_rate, 1),
        "workers": workers,
        "customers_compared": scaled.customers,
        "mismatches": len(scaled.mismatches),
        "first_mismatches": [str(m) for m in scaled.mismatches[:MISMATCHES_SHOWN]],
    }


def outcome_count(samples: list[Sample], outcome: str) -> float:
    """Input records (every topic) the worker counted with ``outcome``."""
    return sum(
        s.value
        for s in samples
        if s.name == "rapport_events_total" and s.labels.get("outcome") == outcome
    )


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
