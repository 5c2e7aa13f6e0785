"""The bench's figures: names, units, medians over runs, the table and the JSON file."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    label: str
    unit: str
    digits: int = 0


FIGURES: tuple[Figure, ...] = (
    Figure("raw_floor_events_per_s", "raw floor (aiokafka + EVALSHA)", "ev/s"),
    Figure("faust_noop_events_per_s", "faust no-op agents", "ev/s"),
    Figure("rapport_events_per_s", "rapport worker", "ev/s"),
    Figure("rapport_vs_floor", "rapport / raw floor", "ratio", 3),
    Figure("noop_vs_floor", "faust no-op / raw floor", "ratio", 3),
    Figure("offered_events_per_s", "latency: offered load", "ev/s"),
    Figure("latency_p50_ms", "latency p50 (record ts)", "ms"),
    Figure("latency_p99_ms", "latency p99 (record ts)", "ms"),
    Figure("received_p50_ms", "latency p50 (received)", "ms"),
    Figure("received_p99_ms", "latency p99 (received)", "ms"),
    Figure("histogram_p50_ms", "latency p50 (worker histogram)", "ms"),
    Figure("histogram_p99_ms", "latency p99 (worker histogram)", "ms"),
    Figure("worker_cpu_s_per_1k", "worker CPU per 1k events", "s", 3),
    Figure("noop_cpu_s_per_1k", "faust no-op CPU per 1k events", "s", 3),
    Figure("floor_cpu_s_per_1k", "raw floor CPU per 1k events", "s", 4),
    Figure("redis_bytes_per_profile", "Redis bytes per profile", "B"),
)


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        f.key: statistics.median(r[f.key] for r in runs)
        for f in FIGURES
        if all(f.key in r for r in runs)
    }


def fmt(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def table(runs: list[dict[str, float]], median: dict[str, float]) -> Table:
    out = Table(title="Rapport speed bench")
    out.add_column("figure")
    out.add_column("unit")
    for number in range(1, len(runs) + 1):
        out.add_column(f"run {number}", justify="right")
    out.add_column("median", justify="right", style="bold")
    for f in FIGURES:
        if f.key not in median:
            continue
        values = [fmt(r[f.key], f.digits) for r in runs]
        out.add_row(f.label, f.unit, *values, fmt(median[f.key], f.digits))
    return out


def cpu_table(phases: dict[str, list[dict[str, float]]]) -> Table:
    """Cores used during each throughput window (median over runs), per process."""
    names = ["consumer", "broker", "redis", "bench", "other"]
    out = Table(title="CPU in the throughput windows (cores used, median)")
    out.add_column("phase")
    for name in names:
        out.add_column(name, justify="right")
    for phase, windows in phases.items():
        cells = [[w[name] for w in windows if name in w] for name in names]
        out.add_row(phase, *(fmt(statistics.median(c), 2) if c else "-" for c in cells))
    return out


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def print_results(result: dict[str, Any]) -> None:
    out = Console()
    if not out.is_terminal:
        out = Console(width=120)
    runs = [r["figures"] for r in result["runs"]]
    out.print(table(runs, result["median"]))
    phases = {
        phase: [r["details"][phase]["cpu_cores"] for r in result["runs"]]
        for phase in ("raw_floor", "faust_noop", "rapport")
    }
    out.print(cpu_table(phases))
    out.print(
        "latency (record ts) = decision record timestamp (the worker's producer) - trigger ts "
        "(wall clock at produce); (received) = when a plain consumer got it."
    )
