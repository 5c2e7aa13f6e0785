"""Event time helpers: the engine clock and the wire format of instants."""

from __future__ import annotations

from datetime import UTC, datetime


def format_ts(ms: int | None) -> str | None:
    """RFC 3339 in UTC with milliseconds: the form every output record uses."""
    if ms is None:
        return None
    instant = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def engine_now(watermark: int | None, wall_ms: int, *, mode: str) -> int:
    """Engine clock: the event-time watermark; in live mode it also follows wall time.

    ``event`` mode (replays of history) moves only with events, so a backfill
    of last year's data is evaluated as of last year, not as of today. In both
    modes the watermark stays within ``latest_event_ms`` of wall time.
    """
    if mode == "event":
        return watermark if watermark is not None else 0
    return max(watermark or 0, wall_ms)


def latest_event_ms(wall_ms: int, *, tolerance_seconds: float) -> int:
    """The latest event time a record read at ``wall_ms`` may carry.

    The engine clock is the largest event time accepted and never goes back,
    so one record stamped years ahead would age every customer at once (all
    lapsed, every offer expired, win-backs sent). Nothing that happened can be
    in the future, in a live feed or in a replay of history alike, so the
    bound is wall time plus a small tolerance for producers' clock skew.
    """
    return wall_ms + round(tolerance_seconds * 1000)
