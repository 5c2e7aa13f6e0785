"""Reading consumers over HTTP: the worker's Prometheus text, the no-op's counter."""

from __future__ import annotations

import asyncio
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from stream.app import INPUT_TOPICS


def fetch(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bytes(answer.read())
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


async def scrape(base: str) -> list[Sample]:
    """Every sample of a worker's ``/metrics`` (empty while it is not answering)."""
    body = await asyncio.to_thread(fetch, f"{base}/metrics")
    if body is None:
        return []
    return [
        Sample(s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    ]


def events_counted(samples: list[Sample], topics: tuple[str, ...] = INPUT_TOPICS) -> float:
    """``rapport_events_total`` summed over outcomes, for records of the given topics."""
    return sum(
        s.value
        for s in samples
        if s.name == "rapport_events_total" and s.labels.get("topic") in topics
    )


def histogram(samples: list[Sample], name: str) -> dict[float, float]:
    """Cumulative bucket counts of a histogram: upper bound -> count."""
    return {float(s.labels["le"]): s.value for s in samples if s.name == f"{name}_bucket"}


def totals(samples: list[Sample], name: str, label: str) -> dict[str, tuple[float, float]]:
    """Sum and count of a histogram per value of ``label`` (e.g. batch sizes per topic)."""
    sums = {s.labels[label]: s.value for s in samples if s.name == f"{name}_sum"}
    counts = {s.labels[label]: s.value for s in samples if s.name == f"{name}_count"}
    return {key: (sums[key], counts.get(key, 0.0)) for key in sums}


def means(
    samples: list[Sample], name: str, label: str, since: list[Sample] | None = None
) -> dict[str, dict[str, float]]:
    """Observations and their mean per ``label`` value, only those after ``since``."""
    now, before = totals(samples, name, label), totals(since or [], name, label)
    out = {}
    for key, (total, count) in now.items():
        old_total, old_count = before.get(key, (0.0, 0.0))
        if count > old_count:
            mean = (total - old_total) / (count - old_count)
            out[key] = {"count": count - old_count, "mean": round(mean, 6)}
    return out
