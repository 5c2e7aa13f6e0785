"""Wire form of every output record (contract section 2): topic suffix, key, JSON value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from models.clock import format_ts
from models.outputs import (
    BasketChange,
    CampaignResult,
    CampaignStat,
    Decision,
    Forward,
    Internal,
    Message,
    Offer,
    Output,
    SegmentChange,
    Tombstone,
)
from models.profile import Profile
from stream.state_codec import profile_to_plain

#: The deadletter payload is cut here (contract: 64 KiB).
DEADLETTER_PAYLOAD_BYTES = 65536


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str  # contract suffix, e.g. "offers" or "messages.email"
    key: str
    value: bytes | None  # None: a tombstone
    #: Event time as the Kafka timestamp, for records the workers read back (internal,
    #: re-keyed input): None for the producer's clock.
    timestamp_ms: int | None = None


def output_records(output: Output) -> list[OutRecord]:
    """The records one decided output becomes, in publication order."""
    if isinstance(output, CampaignResult):
        return campaign_records(output)
    if isinstance(output, SegmentChange):
        value = {
            "customer_id": output.customer_id,
            "segment": output.segment,
            "change": output.change,
            "ts": format_ts(output.ts),
        }
        return [_record("segments", output.customer_id, value)]
    if isinstance(output, Internal):
        return [internal_record(output)]
    if isinstance(output, Forward):
        return [forward_record(output)]
    if isinstance(output, BasketChange | CampaignStat):
        return []  # applied to Redis (association counts, campaign results), not published
    assert isinstance(output, Tombstone)
    return [OutRecord(output.topic, output.customer_id, None)]


def internal_record(output: Internal) -> OutRecord:
    body = {k: profile_to_plain(v) if isinstance(v, Profile) else v for k, v in output.body}
    value = {
        "kind": output.kind,
        "event_id": output.event_id,
        "ts": output.ts,
        "customer_id": output.customer_id,
        **body,
    }
    return OutRecord("internal", output.customer_id, orjson.dumps(value), output.ts)


def forward_record(output: Forward) -> OutRecord:
    """The same input record, re-addressed: only ``customer_id`` changes (event_id stays)."""
    value = orjson.loads(output.raw)
    value["customer_id"] = output.customer_id
    return OutRecord(output.topic, output.customer_id, orjson.dumps(value))


def campaign_records(result: CampaignResult) -> list[OutRecord]:
    """Offer, then message, then decision: no sender sees a message before its offer."""
    records = []
    if result.offer is not None:
        records.append(_record("offers", result.offer.customer_id, offer_value(result.offer)))
    if result.message is not None:
        message = result.message
        records.append(
            _record(f"messages.{message.channel}", message.customer_id, message_value(message))
        )
    decision = result.decision
    records.append(_record("decisions", decision.customer_id, decision_value(decision)))
    return records


def offer_value(offer: Offer) -> dict[str, Any]:
    coupon = offer.coupon
    return {
        "offer_id": offer.offer_id,
        "customer_id": offer.customer_id,
        "campaign": offer.campaign,
        "kind": offer.kind,
        "title": offer.title,
        "reason": offer.reason,
        "items": list(offer.items),
        "coupon": None
        if coupon is None
        else {
            "code": coupon.code,
            "value": coupon.value,
            "currency": coupon.currency,
            "min_spend": coupon.min_spend,
        },
        "created_at": format_ts(offer.created_at),
        "expires_at": format_ts(offer.expires_at),
        "trigger_event_id": offer.trigger_event_id,
    }


def message_value(message: Message) -> dict[str, Any]:
    return {
        "message_id": message.message_id,
        "offer_id": message.offer_id,
        "customer_id": message.customer_id,
        "channel": message.channel,
        "to": message.to,
        "campaign": message.campaign,
        "template": message.template,
        "vars": dict(message.vars),
        "send_at": format_ts(message.send_at),
        "expires_at": format_ts(message.expires_at),
    }


def decision_value(decision: Decision) -> dict[str, Any]:
    return {
        "decision_id": decision.decision_id,
        "customer_id": decision.customer_id,
        "campaign": decision.campaign,
        "trigger_event_id": decision.trigger_event_id,
        "outcome": decision.outcome,
        "reason": decision.reason,
        "channel": decision.channel,
        "offer_id": decision.offer_id,
        "ts": format_ts(decision.ts),
    }


def deadletter_record(
    *, source_topic: str, partition: int, offset: int, error: str, payload: bytes | None, ts: int
) -> OutRecord:
    raw = payload or b""
    text = raw[:DEADLETTER_PAYLOAD_BYTES].decode("utf-8", errors="replace")
    value = {
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "error": error,
        "payload": text,
        "ts": format_ts(ts),
    }
    return _record("deadletter", f"{source_topic}/{partition}/{offset}", value)


def _record(topic: str, key: str, value: dict[str, Any]) -> OutRecord:
    return OutRecord(topic=topic, key=key, value=orjson.dumps(value))
