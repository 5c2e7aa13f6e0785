"""Decoding the ``internal`` topic: what one worker asks the owner of another customer.

Written by Rapport itself, but still input: a record from another release, a
bug or a hand-made test record must not crash-loop the worker that reads it
(the record would come back after every restart). So ``parse_internal``
never raises, on any bytes: a record that is not exactly what this release
writes becomes a ``Rejected`` with a reason and goes to ``deadletter`` like
any bad input. An accepted record holds the types the events declare (a
handed-over profile is checked field by field, ``profile_from_untrusted``),
so folding it cannot trip over a list where an object belongs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from models.customer import CampaignTrigger, InternalEvent, MergeIn
from models.events import EraseRequest, LifecycleTick, MergeOut, Rejected, RfmUpdate
from stream.state_codec import (
    StateFormatError,
    check_context,
    check_shape,
    profile_from_untrusted,
)

__all__ = ["MAX_INTERNAL_BYTES", "parse_internal"]

#: Internal records carry whole profiles (merge_in): larger than input events may be.
MAX_INTERNAL_BYTES = 4 * 1024 * 1024
#: Ids of internal records join a customer id (<= 256 characters) with a few more parts.
MAX_INTERNAL_ID = 1024
#: Times: epoch ms up to the end of 2100, as for input events (0 is a clock never set).
_TS_END_MS = 4_133_980_800_000

Doc = Mapping[str, Any]


class _Malformed(Exception):
    """One problem with an internal record; private, converted to ``Rejected``."""


def parse_internal(
    raw: bytes | None, *, latest_ms: int | None = None, **_: Any
) -> InternalEvent | Rejected:
    """Decode an ``internal`` record; never raises.

    ``latest_ms`` (wall time plus the tolerance) guards the clock as for input events: an
    internal record carries an event time the engine accepted earlier, never a later one.
    """
    if raw is None:
        return Rejected("Internal record has no value.", "malformed_json")
    if len(raw) > MAX_INTERNAL_BYTES:
        return Rejected(
            f"Internal record is {len(raw)} bytes, over {MAX_INTERNAL_BYTES}; not read.",
            "too_large",
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejected(f"Internal record is not valid JSON: {exc}.", "malformed_json")
    if not isinstance(doc, dict):
        return Rejected("Internal record must be a JSON object.", "not_object")
    try:
        return _build(doc, latest_ms)
    except (_Malformed, StateFormatError) as problem:
        return Rejected(f"Internal record is malformed: {problem}.", "bad_value")
    except Exception as exc:  # backstop: a record must never stop the worker
        return Rejected(f"Internal record does not decode: {exc!r}."[:1000], "bad_value")


def _build(doc: Doc, latest_ms: int | None) -> InternalEvent:
    kind = doc.get("kind")
    build = _KINDS.get(kind) if isinstance(kind, str) else None
    if build is None:
        raise _Malformed(f"unknown kind {str(kind)[:40]!r}")
    common = {
        "event_id": _text(doc, "event_id"),
        "ts": _ts(doc, latest_ms),
        "customer_id": _text(doc, "customer_id"),
    }
    event = build(doc, common, latest_ms)
    if not isinstance(event, MergeIn):  # its profile was checked whole as it was built
        check_shape(event, type(event), kind)
    return event


def _text(doc: Doc, key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_INTERNAL_ID:
        raise _Malformed(f"'{key}' must be a string of 1 to {MAX_INTERNAL_ID} characters")
    return value


def _ts(doc: Doc, latest_ms: int | None) -> int:
    value = doc.get("ts")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _TS_END_MS:
        raise _Malformed("'ts' must be integer epoch milliseconds from 1970 to 2100")
    if latest_ms is not None and value > latest_ms:
        raise _Malformed("'ts' is later than the latest accepted event time")
    return value


def _score(doc: Doc, key: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise _Malformed(f"'{key}' must be an RFM score from 1 to 5")
    return value


def _context(doc: Doc) -> tuple[tuple[str, object], ...]:
    """``[[key, value], ...]``: values are scalars or lists of scalars (kept as tuples)."""
    pairs = doc.get("context")
    if not isinstance(pairs, list):
        raise _Malformed("'context' must be a list of [key, value] pairs")
    context: list[tuple[str, object]] = []
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise _Malformed("'context' must be a list of [key, value] pairs")
        key, value = pair
        context.append((key, tuple(value) if isinstance(value, list) else value))
    check_context(tuple(context), "context")
    return tuple(context)


Builder = Callable[[Doc, dict[str, Any], int | None], InternalEvent]

_KINDS: dict[str, Builder] = {
    "tick": lambda doc, common, _: LifecycleTick(**common),
    "erase": lambda doc, common, _: EraseRequest(**common),
    "merge_out": lambda doc, common, _: MergeOut(**common, into=_text(doc, "into")),
    "merge_in": lambda doc, common, latest: MergeIn(
        **common,
        source_id=_text(doc, "from"),
        profile=profile_from_untrusted(doc.get("profile"), latest_ms=latest),
    ),
    "rfm": lambda doc, common, _: RfmUpdate(
        **common,
        r=_score(doc, "r"),
        f=_score(doc, "f"),
        m=_score(doc, "m"),
        segment=_text(doc, "segment"),
    ),
    "campaign": lambda doc, common, _: CampaignTrigger(
        **common, campaign=_text(doc, "campaign"), context=_context(doc)
    ),
}
