"""Storage format of a customer's state: compact JSON in one Redis hash field.

Short keys keep profiles small; the format carries a version number ``f`` so a
later release can migrate old values when it reads them.
"""

from __future__ import annotations

from typing import Any

import orjson

from models.customer import CustomerState
from models.dedup import Applied
from models.outputs import CampaignResult, Coupon, Decision, Message, Offer
from models.profile import ConsentFact, OrderFact, Profile

FORMAT = 1


def encode_state(state: CustomerState) -> bytes:
    p = state.profile
    doc = {
        "f": FORMAT,
        "id": p.customer_id,
        "fs": p.first_seen,
        "ls": p.last_seen,
        "o": {oid: [f.status, f.total, f.ts] for oid, f in p.order_facts.items()},
        "v": {pid: list(v) for pid, v in p.views.items()},
        "c": dict(p.cart),
        "k": {ch: [f.granted, f.ts] for ch, f in p.consent.items()},
        "ct": dict(p.contact),
        "at": dict(p.attributes),
        "fi": dict(p.fired),
        "ao": dict(state.applied.offsets),
        "ar": list(state.applied.recent_ids),
        "x": [_encode_result(r) for r in state.outbox],
    }
    return orjson.dumps(doc)


def decode_state(raw: bytes) -> CustomerState:
    doc = orjson.loads(raw)
    profile = Profile(
        customer_id=doc["id"],
        first_seen=doc["fs"],
        last_seen=doc["ls"],
        order_facts={oid: OrderFact(s, t, ts) for oid, (s, t, ts) in doc["o"].items()},
        views={pid: (n, ts) for pid, (n, ts) in doc["v"].items()},
        cart=doc["c"],
        consent={ch: ConsentFact(g, ts) for ch, (g, ts) in doc["k"].items()},
        contact=doc["ct"],
        attributes=doc["at"],
        fired=doc["fi"],
    )
    applied = Applied(offsets=doc["ao"], recent_ids=tuple(doc["ar"]))
    outbox = tuple(_decode_result(r) for r in doc["x"])
    return CustomerState(profile=profile, applied=applied, outbox=outbox)


def _encode_result(result: CampaignResult) -> dict[str, Any]:
    offer = result.offer
    message = result.message
    return {
        "d": _fields(result.decision),
        "o": None if offer is None else {**_fields(offer), "coupon": _coupon(offer.coupon)},
        "m": None if message is None else _fields(message),
    }


def _decode_result(doc: dict[str, Any]) -> CampaignResult:
    offer = None
    if doc["o"] is not None:
        fields = dict(doc["o"])
        coupon = fields.pop("coupon")
        offer = Offer(
            **{**fields, "items": tuple(fields["items"])},
            coupon=None if coupon is None else Coupon(**coupon),
        )
    message = None
    if doc["m"] is not None:
        fields = doc["m"]
        message = Message(**{**fields, "vars": tuple(tuple(kv) for kv in fields["vars"])})
    return CampaignResult(decision=Decision(**doc["d"]), offer=offer, message=message)


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__ if name != "coupon"}


def _coupon(coupon: Coupon | None) -> dict[str, Any] | None:
    return None if coupon is None else _fields(coupon)
