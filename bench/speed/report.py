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
    Figure("faust_noop_events_per_s", "faust no-op (per-message path)", "ev/s"),
    Figure("fastpath_noop_events_per_s", "faust no-op (batch fast path)", "ev/s"),
    Figure("rapport_events_per_s", "rapport worker", "ev/s"),
    Figure("scaleout_events_per_s", "2 rapport workers (4 partitions)", "ev/s"),
    Figure("rapport_vs_floor", "rapport / raw floor", "ratio", 3),
    Figure("noop_vs_floor", "no-op (per-message) / raw floor", "ratio", 3),
    Figure("fastpath_vs_floor", "no-op (batch fast path) / raw floor", "ratio", 3),
    Figure("scaleout_vs_one_worker", "2 workers / 1 worker", "ratio", 2),
    Figure("offered_events_per_s", "latency: offered load", "ev/s"),
    Figure("latency_p50_ms", "latency p50 (record ts)", "ms"),
    Figure("latency_p99_ms", "latency p99 (record ts)", "ms"),
    Figure("received_p50_ms", "latency p50 (received)", "ms"),
    Figure("received_p99_ms", "latency p99 (received)", "ms"),
    Figure("histogram_p50_ms", "latency p50 (worker histogram)", "ms"),
    Figure("histogram_p99_ms", "latency p99 (worker histogram)", "ms"),
    Figure("worker_cpu_s_per_1k", "worker CPU per 1k events", "s", 3),
    Figure("scaleout_cpu_s_per_1k", "2 workers' CPU per 1k events", "s", 3),
    Figure("noop_cpu_s_per_1k", "no-op (per-message) CPU per 1k events", "s", 3),
    Figure("fastpath_cpu_s_per_1k", "no-op (fast path) CPU per 1k events", "s", 4),
    Figure("floor_cpu_s_per_1k", "raw floor CPU per 1k events", "s", 4),
    Figure("redis_bytes_per_profile", "Redis bytes per profile", "B"),
)


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        f.key: statistics.median(r[f.key] for r in runs)
        for f in FIGURES
        if all(f.key in r for r in runs)
    }


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


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


#: Throughput windows of a run (keys of its details) and their names in the CPU table.
PHASES = {
    "raw_floor": "raw floor",
    "faust_noop": "faust no-op (per-message path)",
    "fastpath_noop": "faust no-op (batch fast path)",
    "rapport": "rapport worker",
    "scaleout": "2 rapport workers",
}
#: Mismatches of the scale-out's exactness check printed under the tables (all in the JSON).
MISMATCHES_PRINTED = 5
#: Processes of the CPU table: ``consumer_2`` is the second worker of the scale-out.
PROCESSES = ["consumer", "consumer_2", "broker", "redis", "bench", "other"]


def cpu_table(phases: dict[str, list[dict[str, float]]]) -> Table:
    """Cores used during each throughput window (median over runs), per process."""
    out = Table(title="CPU in the throughput windows (cores used, median)")
    out.add_column("phase")
    for name in PROCESSES:
        out.add_column(name.replace("_", " "), justify="right")
    for phase, windows in phases.items():
        cells = [[w[name] for w in windows if name in w] for name in PROCESSES]
        out.add_row(phase, *(fmt(statistics.median(c), 2) if c else "-" for c in cells))
    return out


def scaleout_lines(result: dict[str, Any]) -> list[str]:
    """Per run with a scale-out: what each worker did, where the ratio to one worker comes
    from (rate = cores / CPU per event, so the ratio is the cores ratio over the CPU per
    event ratio), and the exactness check with its first mismatches if any."""
    lines = []
    for number, run in enumerate(result["runs"], 1):
        scaled = run["details"].get("scaleout")
        if scaled is None:
            continue
        counts = ", ".join(
            f"{w['counted_input']:,.0f} (first at +{w['first_progress_s']} s, "
            f"generations {w['generations']})"
            for w in scaled["workers"]
        )
        internal = sum(w["counted_internal"] for w in scaled["workers"])
        lines.append(f"run {number} scale-out: input events counted per worker {counts}")
        lines.append(
            f"    once both counted: {fmt(scaled['all_running_events_per_s'] or math.nan, 0)} "
            "events/s; "
            f"internal records applied {internal:,.0f} "
            f"(one worker: {run['details']['rapport']['counted_internal']:,.0f})"
        )
        one, two = run["details"]["rapport"]["cpu_cores"], scaled["cpu_cores"]
        cores_one, cores_two = one["consumer"], two["consumer"] + two["consumer_2"]
        cost_one, cost_two = (
            run["figures"]["worker_cpu_s_per_1k"],
            run["figures"]["scaleout_cpu_s_per_1k"],
        )
        lines.append(
            f"    2 workers / 1 worker {run['figures']['scaleout_vs_one_worker']:.2f} = worker "
            f"cores {cores_two:.2f} / {cores_one:.2f} ({ratio(cores_two, cores_one):.2f}x) / CPU "
            f"per 1k events {cost_two:.3f} / {cost_one:.3f} s ({ratio(cost_two, cost_one):.2f}x); "
            f"machine busy {two['machine']:.2f} of {result['machine']['cpus']} cores"
        )
        verdict = "[green]0 mismatches[/green]"
        if scaled["mismatches"]:
            verdict = f"[red]{scaled['mismatches']:,} MISMATCHES[/red]"
        lines.append(
            f"    exactness: {scaled['customers_compared']:,} customers compared with the "
            f"single worker's run: {verdict}"
        )
        lines += [f"    {m}" for m in scaled["first_mismatches"][:MISMATCHES_PRINTED]]
    return lines


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
        name: [r["details"][phase]["cpu_cores"] for r in result["runs"] if phase in r["details"]]
        for phase, name in PHASES.items()
    }
    out.print(cpu_table({name: windows for name, windows in phases.items() if windows}))
    for line in scaleout_lines(result):
        out.print(line)
    out.print(
        "latency (record ts) = decision record timestamp (the worker's producer) - trigger ts "
        "(wall clock at produce); (received) = when a plain consumer got it."
    )
