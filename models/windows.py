"""Rolling event-time windows of counts per customer: bucketed and memory-bounded.

Each metric (``"views"``, ``"carts"``, ``"orders"``, ... any string) is counted in
buckets of three granularities, and every add increments one bucket of each:

| granularity | bucket                    | serves window(s) | buckets kept at most |
|-------------|---------------------------|------------------|----------------------|
| ``"5m"``    | 5 minutes                 | ``"1h"``         | 13                   |
| ``"1h"``    | 1 hour                    | ``"24h"``        | 25                   |
| ``"1d"``    | 1 UTC day (00:00-24:00)   | ``"7d"``, ``"30d"`` | 31                |

Bucket starts are multiples of the bucket size in epoch milliseconds, so daily
buckets are UTC days. The state is a plain mapping
``metric -> granularity -> bucket_start_ms -> count`` (see ``Windows``); it lives
inside the customer's state in Redis, so ``windows_to_plain`` gives a compact
JSON-safe form (``[[start, count], ...]``) and ``windows_from_plain`` reads it back.

Window semantics and error bound. Window ``W`` at ``now`` is meant to be
``(now - W, now]``. It is answered with whole buckets: every bucket from the one
holding the window's first millisecond (``now - W + 1``) to the one holding
``now``, i.e. exactly the events with ``bucket_start(now - W + 1) <= ts <= now``
when ``now`` is at or after the high-water mark. So:

* the far edge over-counts by at most one bucket: events up to 5 min too old for
  ``"1h"``, up to 1 hour for ``"24h"``, up to 1 day for ``"7d"`` and ``"30d"``;
  a count never misses an event that is inside the window;
* events with ``ts > now`` are not counted when they fall in a later bucket than
  ``now``. They can only exist when ``now`` is before the high-water mark (an
  ``as_of`` in the past); then the bucket holding ``now`` is counted whole, so the
  near edge may also over-count by up to one bucket, and windows that reach back
  past what pruning kept (see below) may under-count.

Memory bound. ``add_count`` and ``merge_windows`` take ``horizon_ms``, the
customer's own event-time high-water mark. A bucket is dropped once no window can
count it at any ``now >= horizon``, i.e. once its last millisecond is at or before
``horizon - 1h`` (5-minute buckets), ``horizon - 24h`` (hourly) or ``horizon - 30d``
(daily): roughly, buckets starting more than 65 min / 25 h / 31 d before the
horizon. A count whose bucket is already beyond that point is not recorded at all.
Hence at most 13 + 25 + 31 buckets per metric, whatever the traffic.

Stream semantics. Adds are sums, so the arrival order of events does not matter:
any permutation of the same adds (each with the running high-water mark) ends in
the same state. ``n`` may be negative (a cancelled order removes its count: pass
the original order ``ts``); a bucket that reaches 0 is removed, a metric with no
bucket left disappears. A bucket may go transiently negative when a removal
arrives before its add; ``window_counts`` never reports less than 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

#: Conventional metric names (any string is accepted).
METRICS: tuple[str, ...] = ("views", "carts", "orders")

#: Bucket size of each granularity.
GRANULARITIES: Mapping[str, int] = {"5m": 5 * MINUTE_MS, "1h": HOUR_MS, "1d": DAY_MS}

#: Window name -> (granularity that serves it, window length).
WINDOWS: Mapping[str, tuple[str, int]] = {
    "1h": ("5m", HOUR_MS),
    "24h": ("1h", 24 * HOUR_MS),
    "7d": ("1d", 7 * DAY_MS),
    "30d": ("1d", 30 * DAY_MS),
}

#: Longest window each granularity serves: how far back its buckets are kept.
RETENTION_MS: Mapping[str, int] = {"5m": HOUR_MS, "1h": 24 * HOUR_MS, "1d": 30 * DAY_MS}

#: metric -> granularity -> bucket start (epoch ms) -> count. Never mutated in place.
Windows = Mapping[str, Mapping[str, Mapping[int, int]]]


def bucket_start(ts: int, granularity: str) -> int:
    """Start of the bucket holding ``ts`` (floor to the bucket size; UTC days for ``"1d"``)."""
    size = GRANULARITIES[granularity]
    return ts - ts % size


def add_count(
    w: Windows, metric: str, ts: int, n: int = 1, *, horizon_ms: int
) -> dict[str, dict[str, dict[int, int]]]:
    """Add ``n`` (may be negative) at event time ``ts``, then prune at the horizon.

    The effective horizon is ``max(horizon_ms, ts)``: the high-water mark after this
    event. Buckets of every metric that can no longer count are dropped, and the
    count is not recorded in a granularity whose bucket for ``ts`` is already beyond
    pruning (a very late event still lands in the daily bucket while it can count
    in ``"30d"``).
    """
    horizon = max(horizon_ms, ts)
    out = _pruned(w, horizon)
    if n == 0:
        return out
    grans = out.setdefault(metric, {})
    for granularity in GRANULARITIES:
        start = bucket_start(ts, granularity)
        if not _alive(start, granularity, horizon):
            continue
        buckets = grans.setdefault(granularity, {})
        total = buckets.get(start, 0) + n
        if total:
            buckets[start] = total
        else:
            del buckets[start]
        if not buckets:
            del grans[granularity]
    if not grans:
        del out[metric]
    return out


def window_counts(
    w: Windows, *, now: int, metrics: Iterable[str] = ()
) -> dict[str, dict[str, int]]:
    """Counts per window (``"1h"``, ``"24h"``, ``"7d"``, ``"30d"``) of every metric at ``now``.

    Every metric present in ``w`` and every name in ``metrics`` is reported, with all
    four windows (0 when empty), metrics in name order. See the module docstring for
    the edges: whole buckets from ``bucket_start(now - W + 1)`` to ``bucket_start(now)``.
    """
    names = sorted(set(w) | set(metrics))
    result: dict[str, dict[str, int]] = {}
    for metric in names:
        grans = w.get(metric, {})
        counts: dict[str, int] = {}
        for window, (granularity, span) in WINDOWS.items():
            first = bucket_start(now - span + 1, granularity)
            last = bucket_start(now, granularity)
            buckets = grans.get(granularity, {})
            total = sum(c for start, c in buckets.items() if first <= start <= last)
            counts[window] = max(total, 0)
        result[metric] = counts
    return result


def merge_windows(
    a: Windows, b: Windows, *, horizon_ms: int
) -> dict[str, dict[str, dict[int, int]]]:
    """Bucket-wise sum of two customers' windows (identity resolution), pruned at the horizon.

    ``horizon_ms`` is the merged customer's high-water mark (the larger of the two).
    Commutative and associative; merging with an empty ``Windows`` only prunes.
    """
    out = _pruned(a, horizon_ms)
    for metric, grans in b.items():
        target = out.setdefault(metric, {})
        for granularity, buckets in grans.items():
            merged = target.setdefault(granularity, {})
            for start, count in buckets.items():
                if not _alive(start, granularity, horizon_ms):
                    continue
                total = merged.get(start, 0) + count
                if total:
                    merged[start] = total
                else:
                    merged.pop(start, None)
            if not merged:
                del target[granularity]
        if not target:
            del out[metric]
    return out


def windows_to_plain(w: Windows) -> dict[str, dict[str, list[list[int]]]]:
    """JSON-safe form: ``{metric: {granularity: [[bucket_start_ms, count], ...]}}``, sorted.

    Empty granularities and metrics are left out, so an empty state is ``{}``.
    """
    plain: dict[str, dict[str, list[list[int]]]] = {}
    for metric in sorted(w):
        grans = {
            g: [[start, count] for start, count in sorted(buckets.items()) if count]
            for g, buckets in sorted(w[metric].items())
        }
        grans = {g: pairs for g, pairs in grans.items() if pairs}
        if grans:
            plain[metric] = grans
    return plain


def windows_from_plain(d: Mapping[str, Any]) -> dict[str, dict[str, dict[int, int]]]:
    """Inverse of ``windows_to_plain``. Raises ``ValueError`` on a malformed value.

    Zero counts are dropped; a repeated bucket start is summed.
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"windows must be an object, got {type(d).__name__}")
    out: dict[str, dict[str, dict[int, int]]] = {}
    for metric, grans in d.items():
        if not isinstance(metric, str) or not isinstance(grans, Mapping):
            raise ValueError(f"windows[{metric!r}] must be an object keyed by granularity")
        for granularity, pairs in grans.items():
            if granularity not in GRANULARITIES:
                raise ValueError(
                    f"unknown granularity {granularity!r} (expected one of {list(GRANULARITIES)})"
                )
            if not isinstance(pairs, list | tuple):
                raise ValueError(f"windows[{metric!r}][{granularity!r}] must be a list of pairs")
            for pair in pairs:
                if (
                    not isinstance(pair, list | tuple)
                    or len(pair) != 2
                    or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
                ):
                    raise ValueError(
                        f"windows[{metric!r}][{granularity!r}] holds {pair!r}, "
                        "expected [bucket_start_ms, count] integers"
                    )
                start, count = pair
                if start % GRANULARITIES[granularity]:
                    raise ValueError(
                        f"bucket start {start} is not aligned to granularity {granularity!r}"
                    )
                buckets = out.setdefault(metric, {}).setdefault(granularity, {})
                total = buckets.get(start, 0) + count
                if total:
                    buckets[start] = total
                else:
                    buckets.pop(start, None)
    return {
        metric: {g: b for g, b in grans.items() if b}
        for metric, grans in out.items()
        if any(grans.values())
    }


def _alive(start: int, granularity: str, horizon: int) -> bool:
    """Whether the bucket can still hold a millisecond of its longest window at a now >= horizon.

    At ``now = horizon`` the window's first millisecond is ``horizon - span + 1``; later
    windows only move forward. The bucket's last millisecond is ``start + size - 1``.
    """
    size = GRANULARITIES[granularity]
    return start + size - 1 >= horizon - RETENTION_MS[granularity] + 1


def _pruned(w: Windows, horizon: int) -> dict[str, dict[str, dict[int, int]]]:
    """A fresh copy of ``w`` holding only buckets still alive at ``horizon`` (never empty parts)."""
    out: dict[str, dict[str, dict[int, int]]] = {}
    for metric, grans in w.items():
        kept: dict[str, dict[int, int]] = {}
        for granularity, buckets in grans.items():
            alive = {
                start: count
                for start, count in buckets.items()
                if count and _alive(start, granularity, horizon)
            }
            if alive:
                kept[granularity] = alive
        if kept:
            out[metric] = kept
    return out
