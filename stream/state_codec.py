"""Storage format of a customer's state: JSON with short keys, deflated with a preset dictionary.

Format 3 (written): the byte ``0x03``, then the JSON document raw-deflated
(level 1) with the preset dictionary ``data/state-v3.zdict`` (made by
``bench/zdict.py``: the skeleton of typical states, field and segment names,
no identifiers). A typical state shrinks about 3x (see README, Benchmarks).
Format 2 (still read): the same JSON, uncompressed, starting with ``{``; a
format-2 value becomes format 3 at its customer's next write.

``profile_to_plain`` is also the body of the internal ``merge_in`` record; a
profile read from a record rather than from this worker's store goes through
``profile_from_untrusted``, which checks every field against its annotation.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import types
import typing
import zlib
from collections.abc import Mapping
from importlib import resources
from typing import Any, Literal, Union, get_args, get_origin

import orjson

from models.attribution import Exposure
from models.customer import CustomerState
from models.dedup import Applied
from models.ledger import Sent
from models.outputs import (
    BasketChange,
    CampaignResult,
    CampaignStat,
    Coupon,
    Decision,
    Forward,
    Internal,
    Message,
    Offer,
    Output,
    Pending,
    SegmentChange,
    Tombstone,
)
from models.profile import ConsentFact, OrderFact, Profile
from models.rfm import make_rfm
from models.windows import windows_from_plain, windows_to_plain

FORMAT = 3
_V3 = b"\x03"
_ZDICT = resources.files("stream").joinpath("data", "state-v3.zdict").read_bytes()
_WBITS = -15  # raw deflate: no zlib header or checksum (the value is small, Redis keeps it)


class StateFormatError(ValueError):
    """A stored state in no format this release reads."""


def state_to_plain(state: CustomerState) -> dict[str, Any]:
    return {
        "f": FORMAT,
        "p": profile_to_plain(state.profile),
        "ao": dict(state.applied.offsets),
        "ar": list(state.applied.recent_ids),
        "x": [output_to_plain(o) for o in state.outbox],
        "e": state.erased,
    }


def encode_state(state: CustomerState) -> bytes:
    deflate = zlib.compressobj(1, zlib.DEFLATED, _WBITS, 9, zlib.Z_DEFAULT_STRATEGY, _ZDICT)
    return _V3 + deflate.compress(orjson.dumps(state_to_plain(state))) + deflate.flush()


def decode_state(raw: bytes) -> CustomerState:
    if raw[:1] == _V3:
        inflate = zlib.decompressobj(_WBITS, zdict=_ZDICT)
        doc = orjson.loads(inflate.decompress(raw[1:]) + inflate.flush())
    elif raw[:1] == b"{":  # format 2
        doc = orjson.loads(raw)
    else:
        raise StateFormatError(f"unknown customer state format (first byte {raw[:1]!r})")
    return CustomerState(
        profile=profile_from_plain(doc["p"]),
        applied=applied_from_plain(doc),
        outbox=tuple(output_from_plain(o) for o in doc["x"]),
        erased=doc["e"],
    )


def encode_applied(applied: Applied) -> bytes:
    return orjson.dumps({"ao": dict(applied.offsets), "ar": list(applied.recent_ids)})


def decode_applied(raw: bytes) -> Applied:
    return applied_from_plain(orjson.loads(raw))


def applied_from_plain(doc: dict[str, Any]) -> Applied:
    return Applied(offsets=doc["ao"], recent_ids=tuple(doc["ar"]))


def profile_to_plain(p: Profile) -> dict[str, Any]:
    return {
        "id": p.customer_id,
        "fs": p.first_seen,
        "ls": p.last_seen,
        "ck": p.clock,
        "o": {
            oid: [f.status, f.total, f.ts, list(f.products), list(f.categories)]
            for oid, f in p.order_facts.items()
        },
        "v": {pid: list(v) for pid, v in p.views.items()},
        "wl": dict(p.wishlist),
        "c": {pid: [list(c) for c in line] for pid, line in p.cart_lines.items()},
        "cc": dict(p.cart_cleared),
        "k": {ch: [f.granted, f.ts] for ch, f in p.consent.items()},
        "ct": dict(p.contact),
        "at": dict(p.attributes),
        "fi": dict(p.fired),
        "w": windows_to_plain(p.windows),
        "af": {cat: list(v) for cat, v in p.affinity.items()},
        "sg": sorted(p.segments),
        "rf": None if p.rfm is None else [p.rfm.r, p.rfm.f, p.rfm.m],
        "al": list(p.aliases),
        "mi": p.merged_into,
        "n": p.events,
        "pe": [_pending_to_plain(x) for x in p.pending],
        "sl": [[x.ts, x.channel, x.campaign] for x in p.sent_log],
        "of": [_offer_to_plain(o) for o in p.offers],
        "ex": {
            name: [e.group, e.ts, e.offer_id, e.coupon, e.touched_at]
            for name, e in p.exposures.items()
        },
    }


def profile_from_plain(doc: dict[str, Any]) -> Profile:
    rfm = doc["rf"]
    return Profile(
        customer_id=doc["id"],
        first_seen=doc["fs"],
        last_seen=doc["ls"],
        clock=doc["ck"],
        order_facts={
            oid: OrderFact(s, t, ts, tuple(pr), tuple(ca))
            for oid, (s, t, ts, pr, ca) in doc["o"].items()
        },
        views={pid: (n, ts) for pid, (n, ts) in doc["v"].items()},
        wishlist=doc["wl"],
        cart_lines={pid: tuple((ts, d) for ts, d in line) for pid, line in doc["c"].items()},
        cart_cleared=doc["cc"],
        consent={ch: ConsentFact(g, ts) for ch, (g, ts) in doc["k"].items()},
        contact=doc["ct"],
        attributes=doc["at"],
        fired=doc["fi"],
        windows=windows_from_plain(doc["w"]),
        affinity={cat: (score, ts) for cat, (score, ts) in doc["af"].items()},
        segments=frozenset(doc["sg"]),
        rfm=None if rfm is None else make_rfm(*rfm),
        aliases=tuple(doc["al"]),
        merged_into=doc["mi"],
        events=doc.get("n", 0),  # absent from states written before it was counted
        pending=tuple(_pending_from_plain(x) for x in doc["pe"]),
        sent_log=tuple(Sent(ts, ch, name) for ts, ch, name in doc["sl"]),
        offers=tuple(_offer_from_plain(o) for o in doc["of"]),
        exposures={name: Exposure(*fields) for name, fields in doc["ex"].items()},
    )


def _pending_to_plain(p: Pending) -> dict[str, Any]:
    return {
        "c": p.campaign,
        "d": p.due,
        "k": p.kind,
        "t": p.trigger_event_id,
        "y": p.key,
        "x": [list(kv) for kv in p.context],
        "r": None if p.result is None else output_to_plain(p.result),
    }


def _pending_from_plain(doc: dict[str, Any]) -> Pending:
    result = None if doc["r"] is None else output_from_plain(doc["r"])
    assert result is None or isinstance(result, CampaignResult)
    return Pending(
        campaign=doc["c"],
        due=doc["d"],
        kind=doc["k"],
        trigger_event_id=doc["t"],
        key=doc["y"],
        context=tuple((k, _tupled(v)) for k, v in doc["x"]),
        result=result,
    )


def _tupled(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _offer_to_plain(offer: Offer) -> dict[str, Any]:
    return {**_fields(offer), "coupon": _coupon(offer.coupon)}


def _offer_from_plain(doc: dict[str, Any]) -> Offer:
    fields = dict(doc)
    coupon = fields.pop("coupon")
    return Offer(
        **{**fields, "items": tuple(fields["items"])},
        coupon=None if coupon is None else Coupon(**coupon),
    )


def output_to_plain(output: Output) -> dict[str, Any]:
    if isinstance(output, CampaignResult):
        offer, message = output.offer, output.message
        return {
            "t": "campaign",
            "d": _fields(output.decision),
            "o": None if offer is None else _offer_to_plain(offer),
            "m": None if message is None else _fields(message),
        }
    if isinstance(output, SegmentChange):
        return {"t": "segment", **_fields(output)}
    if isinstance(output, Internal):
        body = [[k, profile_to_plain(v) if isinstance(v, Profile) else v] for k, v in output.body]
        return {"t": "internal", **_fields(output), "body": body}
    if isinstance(output, CampaignStat):
        return {"t": "stat", **_fields(output)}
    if isinstance(output, BasketChange):
        return {
            "t": "basket",
            "token": output.token,
            "products": list(output.products),
            "sign": output.sign,
        }
    if isinstance(output, Forward):
        return {
            "t": "forward",
            "topic": output.topic,
            "customer_id": output.customer_id,
            "raw": base64.b64encode(output.raw).decode(),
        }
    assert isinstance(output, Tombstone)
    return {"t": "tombstone", "topic": output.topic, "customer_id": output.customer_id}


def output_from_plain(doc: dict[str, Any]) -> Output:
    fields = {k: v for k, v in doc.items() if k != "t"}
    kind = doc["t"]
    if kind == "campaign":
        return _campaign_from_plain(doc)
    if kind == "segment":
        return SegmentChange(**fields)
    if kind == "internal":
        body = tuple(
            (k, profile_from_plain(v) if k == "profile" else v) for k, v in fields.pop("body")
        )
        return Internal(**fields, body=body)
    if kind == "stat":
        return CampaignStat(**fields)
    if kind == "basket":
        return BasketChange(fields["token"], tuple(fields["products"]), fields["sign"])
    if kind == "forward":
        return Forward(fields["topic"], fields["customer_id"], base64.b64decode(fields["raw"]))
    return Tombstone(**fields)


def _campaign_from_plain(doc: dict[str, Any]) -> CampaignResult:
    offer = None if doc["o"] is None else _offer_from_plain(doc["o"])
    message = None
    if doc["m"] is not None:
        fields = doc["m"]
        message = Message(**{**fields, "vars": tuple(tuple(kv) for kv in fields["vars"])})
    return CampaignResult(decision=Decision(**doc["d"]), offer=offer, message=message)


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__ if name not in ("coupon", "body")}


def _coupon(coupon: Coupon | None) -> dict[str, Any] | None:
    return None if coupon is None else _fields(coupon)


# --------------------------------------------------------------------------- untrusted profiles

#: Integers a profile holds are counts and epoch-ms times. 10^14 ms is the year 5138: a time
#: the engine derives from one (plus days or years) still formats and fits 64 bits.
MAX_INT = 10**14
#: Floats are order totals (input stops at 10^12), scores and coupon values: any sum of fewer
#: than 10^293 of them stays finite.
MAX_FLOAT = 1e15
#: Context entries that the engine iterates as product ids or categories.
_CONTEXT_LISTS = frozenset({"products", "categories"})


def profile_from_untrusted(doc: object, *, latest_ms: int | None = None) -> Profile:
    """A profile from JSON that did not come from this worker's store (an internal record).

    Raises ``StateFormatError``, and nothing else, when ``doc`` is not a profile this
    release writes: a field missing or unknown, a value of another type than its annotation,
    a number out of range, a document that does not encode back to itself, a clock later
    than ``latest_ms``. What it returns can be folded and stored.
    """
    if not isinstance(doc, dict):
        raise StateFormatError(f"profile must be an object, got {type(doc).__name__}")
    try:
        profile = profile_from_plain(doc)
    except Exception as exc:  # foreign JSON: any failure to build means "not a profile"
        raise StateFormatError(f"profile does not decode: {exc!r}"[:500]) from None
    check_shape(profile, Profile, "profile")
    if orjson.loads(orjson.dumps(profile_to_plain(profile))) != doc:
        # e.g. a string where a list belongs (read as its characters), an unknown key
        raise StateFormatError("profile is not in the form this release writes")
    for index, pending in enumerate(profile.pending):
        check_context(pending.context, f"profile.pending[{index}].context")
    times = (profile.clock, profile.first_seen, profile.last_seen)
    if latest_ms is not None and any(t is not None and t > latest_ms for t in times):
        raise StateFormatError("profile clock is later than the latest accepted event time")
    return profile


def check_context(pairs: tuple[tuple[str, Any], ...], path: str) -> None:
    """Campaign context: ``products`` and ``categories`` are iterated, so they hold strings."""
    for key, value in pairs:
        if key in _CONTEXT_LISTS and not (
            isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        ):
            raise StateFormatError(f"{path}.{key} must be a list of strings")


def check_shape(value: object, hint: Any, path: str) -> None:
    """Raise ``StateFormatError`` unless ``value`` is of type ``hint``, recursively.

    Dataclasses are checked field by field against their annotations, so a new field is
    covered without touching this function. ``Any``/``object`` take a JSON scalar or a
    tuple of them (attributes, campaign context), never a nested structure.
    """
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any or hint is object:
        ok = _is_scalar(value) or (
            isinstance(value, tuple) and all(_is_scalar(item) for item in value)
        )
    elif origin is Union or origin is types.UnionType:
        ok = any(_conforms(value, arm, path) for arm in args)
    elif origin is Literal:
        ok = any(type(value) is type(arm) and value == arm for arm in args)
    elif dataclasses.is_dataclass(hint):
        ok = isinstance(value, hint)  # type: ignore[arg-type]
        if ok:
            _check_fields(value, hint, path)  # type: ignore[arg-type]
    elif origin is tuple:
        ok = isinstance(value, tuple)
        if ok:
            _check_items(value, args, path)  # type: ignore[arg-type]
    elif origin in (Mapping, dict):
        ok = isinstance(value, Mapping)
        if ok:
            for key, item in value.items():  # type: ignore[union-attr]
                check_shape(key, args[0], f"{path} key")
                check_shape(item, args[1], f"{path}[{key!r}]")
    elif origin is frozenset:
        ok = isinstance(value, frozenset)
        for item in value if ok else ():  # type: ignore[union-attr]
            check_shape(item, args[0], f"{path} item")
    else:
        ok = _is_scalar(value) and _scalar_is(value, hint)
    if not ok:
        raise StateFormatError(f"{path} must be {_name(hint)}, got {type(value).__name__}")


def _conforms(value: object, hint: Any, path: str) -> bool:
    try:
        check_shape(value, hint, path)
    except StateFormatError:
        return False
    return True


def _check_fields(value: object, cls: type, path: str) -> None:
    hints = _hints(cls)
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        check_shape(getattr(value, item.name), hints[item.name], f"{path}.{item.name}")


def _check_items(value: tuple[object, ...], args: tuple[Any, ...], path: str) -> None:
    if len(args) == 2 and args[1] is Ellipsis:
        for index, item in enumerate(value):
            check_shape(item, args[0], f"{path}[{index}]")
        return
    if len(value) != len(args):
        raise StateFormatError(f"{path} must have {len(args)} entries, got {len(value)}")
    for index, (item, arm) in enumerate(zip(value, args, strict=True)):
        check_shape(item, arm, f"{path}[{index}]")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_scalar(value: object) -> bool:
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return -MAX_INT <= value <= MAX_INT
    return isinstance(value, float) and -MAX_FLOAT <= value <= MAX_FLOAT  # NaN fails too


def _scalar_is(value: object, hint: Any) -> bool:
    """Scalar annotations; an int is a float (as in Python's numeric tower), a bool is neither."""
    if hint is type(None):
        return value is None
    if hint is bool or hint is str:
        return isinstance(value, hint)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    raise TypeError(f"check_shape has no rule for {hint!r}")  # a new kind of annotation


def _name(hint: Any) -> str:
    if hint is Any or hint is object:
        return "a JSON scalar or a list of them"
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
