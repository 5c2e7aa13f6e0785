"""Storage format of a customer's state: JSON with short keys, deflated with a preset dictionary.

Format 3 (written): the byte ``0x03``, then the JSON document raw-deflated
(level 1) with the preset dictionary ``data/state-v3.zdict`` (made by
``bench/zdict.py``: the skeleton of typical states, field and segment names,
no identifiers). A typical state shrinks about 3x (see README, Benchmarks).
Format 2 (still read): the same JSON, uncompressed, starting with ``{``; a
format-2 value becomes format 3 at its customer's next write.

``profile_to_plain`` is also the body of the internal ``merge_in`` record.
"""

from __future__ import annotations

import base64
import zlib
from importlib import resources
from typing import Any

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
        applied=Applied(offsets=doc["ao"], recent_ids=tuple(doc["ar"])),
        outbox=tuple(output_from_plain(o) for o in doc["x"]),
        erased=doc["e"],
    )


def encode_applied(applied: Applied) -> bytes:
    return orjson.dumps({"ao": dict(applied.offsets), "ar": list(applied.recent_ids)})


def decode_applied(raw: bytes) -> Applied:
    doc = orjson.loads(raw)
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
