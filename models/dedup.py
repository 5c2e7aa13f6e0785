"""Exactly-once effect under at-least-once delivery.

Two checks, both stored inside the customer's own state and written with it
atomically, so a crash can never separate "applied" from "remembered as applied":

* per source partition, the highest offset applied for this customer. Kafka
  redelivers a partition from its last committed offset, in order, so any
  redelivered record has an offset at or below the one remembered: exact, O(1).
* the last ``keep`` event ids (as 64-bit digests), for producers that send the
  same event twice under different offsets (retries, replays of an import).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class Applied:
    offsets: Mapping[str, int] = field(default_factory=dict)  # "topic/partition" -> offset
    recent_ids: tuple[str, ...] = ()


def event_digest(event_id: str) -> str:
    """16 hex chars: a collision within one customer's window is ~1 in 2**64 per pair."""
    return hashlib.blake2b(event_id.encode(), digest_size=8).hexdigest()


def is_duplicate(applied: Applied, event_id: str, source: str | None, offset: int | None) -> bool:
    if source is not None and offset is not None:
        done = applied.offsets.get(source)
        if done is not None and offset <= done:
            return True
    return event_digest(event_id) in applied.recent_ids


def remember(
    applied: Applied, event_id: str, source: str | None, offset: int | None, *, keep: int
) -> Applied:
    recent = (*applied.recent_ids, event_digest(event_id))[-keep:]
    return Applied(offsets=remember_offset(applied, source, offset).offsets, recent_ids=recent)


def remember_offset(applied: Applied, source: str | None, offset: int | None) -> Applied:
    if source is None or offset is None or offset <= applied.offsets.get(source, -1):
        return applied
    return replace(applied, offsets={**applied.offsets, source: offset})


def seen_before(applied: Applied, event_id: str) -> bool:
    """The event is among the customer's recent ones (the id window)."""
    return event_digest(event_id) in applied.recent_ids
