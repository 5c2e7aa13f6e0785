"""Decoding the ``internal`` topic: what one worker asks the owner of another customer.

Written only by Rapport itself, so a record that does not decode is a bug or
a version mismatch: it goes to ``deadletter`` like any bad input, never crashes.
"""

from __future__ import annotations

from typing import Any

import orjson

from models.customer import CampaignTrigger, InternalEvent, MergeIn
from models.events import EraseRequest, LifecycleTick, MergeOut, Rejected, RfmUpdate
from stream.state_codec import profile_from_plain

#: Internal records carry whole profiles (merge_in): larger than input events may be.
MAX_INTERNAL_BYTES = 4 * 1024 * 1024


def parse_internal(raw: bytes | None, **_: Any) -> InternalEvent | Rejected:
    if raw is None:
        return Rejected("empty internal record", "malformed_json")
    if len(raw) > MAX_INTERNAL_BYTES:
        return Rejected(f"internal record over {MAX_INTERNAL_BYTES} bytes", "too_large")
    try:
        doc = orjson.loads(raw)
        return _build(doc)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return Rejected(f"internal record does not decode: {exc!r}", "bad_value")


def _build(doc: dict[str, Any]) -> InternalEvent:
    kind = doc["kind"]
    common = {
        "event_id": str(doc["event_id"]),
        "ts": int(doc["ts"]),
        "customer_id": str(doc["customer_id"]),
    }
    if kind == "tick":
        return LifecycleTick(**common)
    if kind == "merge_out":
        return MergeOut(**common, into=str(doc["into"]))
    if kind == "merge_in":
        return MergeIn(
            **common, source_id=str(doc["from"]), profile=profile_from_plain(doc["profile"])
        )
    if kind == "rfm":
        return RfmUpdate(
            **common, r=int(doc["r"]), f=int(doc["f"]), m=int(doc["m"]), segment=str(doc["segment"])
        )
    if kind == "erase":
        return EraseRequest(**common)
    if kind == "campaign":
        context = tuple((str(k), _tupled(v)) for k, v in doc["context"])
        return CampaignTrigger(**common, campaign=str(doc["campaign"]), context=context)
    raise ValueError(f"unknown internal kind {kind!r}")


def _tupled(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
