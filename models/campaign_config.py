"""Declarative campaigns: what a marketer writes, validated into frozen values.

A campaign is: a trigger (an event, a first opt-in, a segment entry, a delay
after an event, a birthday, a replenishment due date), an audience condition
(``models.conditions``, no ``eval``), an offer, channels in preference order
with templates, a cooldown, a priority, an expiry and a holdout percentage.
``build_book`` turns plain data (parsed YAML, with line numbers) into a
``CampaignBook`` or raises ``CampaignFileError`` naming the line and field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from models.conditions import Condition, ConditionError, compile_condition
from models.ledger import Caps, LedgerConfig, QuietHours

TriggerKind = Literal["event", "consent", "segment", "birthday", "replenishment", "catalog"]
CHANNELS = ("email", "sms", "push")
OFFER_KINDS = ("coupon", "recommendation", "notice")
ITEM_SOURCES = ("cart", "trigger_product", "viewed_not_bought", "bought_together", "best_sellers")
#: Event names a trigger or a cancellation may name.
EVENT_NAMES = frozenset(
    {
        "page_view",
        "product_view",
        "search",
        "add_to_cart",
        "remove_from_cart",
        "wishlist_add",
        "identify",
        "order_placed",
        "order_cancelled",
        "order_refunded",
        "feedback:delivered",
        "feedback:opened",
        "feedback:clicked",
        "feedback:dismissed",
        "feedback:bounced",
        "feedback:unsubscribed",
        "feedback:complained",
    }
)
CATALOG_TRIGGERS = ("new_arrival", "price_drop", "back_in_stock")
#: Roots an audience condition may use (see ``models.campaigns.audience_facts``).
FACT_ROOTS = frozenset(
    {
        "orders",
        "revenue",
        "avg_order_value",
        "days_since_last_order",
        "lifecycle",
        "tier",
        "rfm",
        "segments",
        "affinity",
        "consent",
        "has",
        "attributes",
        "cart_items",
        "views_7d",
        "carts_7d",
        "orders_30d",
        "trigger",
        "product",
        "campaign",
        "true",
        "false",
        "null",
    }
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class CampaignFileError(ValueError):
    """A campaign file mistake, with where it is: ``campaigns.yaml:12: cooldown: ...``."""


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: TriggerKind
    event: str | None = None  # event: the event name
    channel: str | None = None  # consent: first opt-in on this channel
    segment: str | None = None  # segment: "lifecycle:at_risk", or "tier:*" for any tier
    catalog: str | None = None  # catalog: new_arrival | price_drop | back_in_stock
    delay_ms: int = 0  # fire this long after the trigger unless cancelled
    cancel_on: tuple[str, ...] = ()
    min_affinity: float = 0.0  # catalog new_arrival: the audience's category affinity
    local_hour: int = 9  # birthday: the local hour of the greeting
    interval_days: float = 30.0  # replenishment: prior interval of a category


@dataclass(frozen=True, slots=True)
class OfferSpec:
    kind: str = "notice"
    title: str = ""
    reason: str = ""
    coupon_value: float | None = None
    coupon_by_tier: Mapping[str, float] = field(default_factory=dict)
    min_spend: float = 0.0
    items: str | None = None
    max_items: int = 4
    expires_ms: int = 14 * 86_400_000


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    channel: str
    template: str


@dataclass(frozen=True, slots=True)
class Campaign:
    name: str
    trigger: Trigger
    audience: Condition | None
    offer: OfferSpec
    channels: tuple[ChannelSpec, ...]
    cooldown_ms: int = 0
    once: bool = False
    priority: int = 0
    holdout_percent: float = 0.0
    enabled: bool = True
    line: int = 0


@dataclass(frozen=True, slots=True)
class CampaignBook:
    campaigns: tuple[Campaign, ...] = ()
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    currency: str = "EUR"
    fanout_limit: int = 10_000  # most customers one catalog event may reach
    attribution_window_ms: int = 7 * 86_400_000  # an order this soon after counts

    def named(self, name: str) -> Campaign | None:
        return next((c for c in self.campaigns if c.name == name), None)


def parse_duration(value: object, *, where: str) -> int:
    """``"2h"``, ``"30d"``, ``"90s"``, ``"1.5h"`` or a number of seconds -> milliseconds."""
    if isinstance(value, bool):
        raise CampaignFileError(f"{where}: expected a duration like 2h or 30d, got {value!r}")
    if isinstance(value, int | float):
        return int(value * 1000)
    match = _DURATION.match(str(value))
    if not match:
        raise CampaignFileError(
            f"{where}: expected a duration like 90s, 2h, 30d, 1w; got {value!r}"
        )
    return int(float(match.group(1)) * _UNIT_MS[match.group(2)])


def build_book(doc: Mapping[str, Any], *, source: str, currency: str = "EUR") -> CampaignBook:
    """Validate a whole campaign file; every error names ``source:line``."""
    if not isinstance(doc, Mapping):
        raise CampaignFileError(f"{source}: the file must be a mapping with `campaigns:`")
    _only(doc, {"version", "settings", "campaigns", "__line__"}, f"{source}:{_line(doc)}")
    settings = doc.get("settings") or {}
    ledger = _ledger(settings, source)
    raw = doc.get("campaigns")
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise CampaignFileError(f"{source}:{_line(doc)}: `campaigns:` must be a non-empty list")
    campaigns = tuple(_campaign(item, source) for item in raw)
    names = [c.name for c in campaigns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CampaignFileError(f"{source}: campaign names must be unique: {duplicates}")
    fanout = int(settings.get("fanout_limit", 10_000)) if isinstance(settings, Mapping) else 10_000
    window = parse_duration(
        settings.get("attribution_window", "7d") if isinstance(settings, Mapping) else "7d",
        where=f"{source}: settings.attribution_window",
    )
    return CampaignBook(
        campaigns=campaigns,
        ledger=ledger,
        currency=currency,
        fanout_limit=fanout,
        attribution_window_ms=window,
    )


def _ledger(settings: Any, source: str) -> LedgerConfig:
    where = f"{source}:{_line(settings)}: settings"
    if not isinstance(settings, Mapping):
        raise CampaignFileError(f"{where}: must be a mapping")
    _only(
        settings,
        {
            "caps",
            "channel_caps",
            "quiet_hours",
            "default_timezone",
            "control_group_percent",
            "fanout_limit",
            "attribution_window",
            "__line__",
        },
        where,
    )
    try:
        caps = _caps(settings.get("caps") or {}, f"{where}.caps")
        channel_caps = {
            ch: _caps(spec, f"{where}.channel_caps.{ch}")
            for ch, spec in (settings.get("channel_caps") or {}).items()
            if ch != "__line__"
        }
        unknown = sorted(set(channel_caps) - set(CHANNELS))
        if unknown:
            raise CampaignFileError(f"{where}.channel_caps: unknown channels {unknown}")
        quiet = settings.get("quiet_hours") or {}
        quiet_hours = QuietHours(
            start=_clock_time(quiet.get("start", "21:00")),
            end=_clock_time(quiet.get("end", "08:00")),
        )
        return LedgerConfig(
            caps=caps,
            channel_caps=channel_caps,
            quiet_hours=quiet_hours,
            default_timezone=str(settings.get("default_timezone", "UTC")),
            control_group_percent=_percent(
                settings.get("control_group_percent", 5.0), f"{where}.control_group_percent"
            ),
        )
    except ValueError as exc:
        if isinstance(exc, CampaignFileError):
            raise
        raise CampaignFileError(f"{where}: {exc}") from exc


def _clock_time(value: Any) -> str:
    """YAML 1.1 reads an unquoted ``21:00`` as the number 1260 (base 60): undo that."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return f"{value // 60:02d}:{value % 60:02d}"
    return str(value)


def _caps(spec: Any, where: str) -> Caps:
    if not isinstance(spec, Mapping):
        raise CampaignFileError(f"{where}: must be a mapping like {{day: 2, week: 5}}")
    _only(spec, {"day", "week", "__line__"}, where)
    values = {}
    for name in ("day", "week"):
        value = spec.get(name, Caps.__dataclass_fields__[name].default)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise CampaignFileError(f"{where}.{name}: expected a whole number >= 0 or null")
        values[name] = value
    return Caps(**values)


def _campaign(item: Any, source: str) -> Campaign:
    line = _line(item)
    if not isinstance(item, Mapping):
        raise CampaignFileError(f"{source}:{line}: each campaign must be a mapping")
    name = item.get("name")
    where = f"{source}:{line}: campaign {name!r}"
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
        raise CampaignFileError(f"{source}:{line}: `name` must be lower_snake_case (a-z, 0-9, _)")
    _only(
        item,
        {
            "name",
            "trigger",
            "audience",
            "offer",
            "channels",
            "cooldown",
            "once",
            "priority",
            "holdout_percent",
            "enabled",
            "description",
            "__line__",
        },
        where,
    )
    audience = None
    if item.get("audience") not in (None, ""):
        try:
            audience = compile_condition(str(item["audience"]), known_roots=FACT_ROOTS)
        except ConditionError as exc:
            raise CampaignFileError(f"{where}: audience: {exc}") from exc
    return Campaign(
        name=name,
        trigger=_trigger(item.get("trigger"), f"{where}: trigger"),
        audience=audience,
        offer=_offer(item.get("offer") or {}, f"{where}: offer"),
        channels=_channels(item.get("channels") or [], f"{where}: channels"),
        cooldown_ms=parse_duration(item.get("cooldown", 0), where=f"{where}: cooldown"),
        once=_bool(item.get("once", False), f"{where}: once"),
        priority=_int(item.get("priority", 0), f"{where}: priority"),
        holdout_percent=_percent(item.get("holdout_percent", 0.0), f"{where}: holdout_percent"),
        enabled=_bool(item.get("enabled", True), f"{where}: enabled"),
        line=line,
    )


def _trigger(spec: Any, where: str) -> Trigger:
    if not isinstance(spec, Mapping):
        raise CampaignFileError(
            f"{where}: must be a mapping, e.g. {{event: add_to_cart, "
            "delay: 2h, cancel_on: [order_placed]}"
        )
    _only(
        spec,
        {
            "event",
            "consent",
            "segment",
            "birthday",
            "replenishment",
            "catalog",
            "delay",
            "cancel_on",
            "min_affinity",
            "local_hour",
            "interval",
            "__line__",
        },
        where,
    )
    kinds = [
        k
        for k in ("event", "consent", "segment", "birthday", "replenishment", "catalog")
        if k in spec
    ]
    if len(kinds) != 1:
        raise CampaignFileError(
            f"{where}: name exactly one of event, consent, segment, "
            f"birthday, replenishment, catalog (got {kinds or 'none'})"
        )
    kind = kinds[0]
    value = spec[kind]
    cancel_on = tuple(str(e) for e in spec.get("cancel_on") or ())
    bad = [e for e in cancel_on if e not in EVENT_NAMES]
    if bad:
        raise CampaignFileError(f"{where}: cancel_on: unknown events {bad}")
    common: dict[str, Any] = {
        "delay_ms": parse_duration(spec.get("delay", 0), where=f"{where}: delay"),
        "cancel_on": cancel_on,
    }
    if kind == "event":
        if value not in EVENT_NAMES:
            raise CampaignFileError(
                f"{where}: event: {value!r} is not one of {sorted(EVENT_NAMES)}"
            )
        return Trigger("event", event=value, **common)
    if kind == "consent":
        if value not in CHANNELS:
            raise CampaignFileError(f"{where}: consent: expected one of {CHANNELS}")
        return Trigger("consent", channel=value, **common)
    if kind == "segment":
        if not isinstance(value, str) or ":" not in value:
            raise CampaignFileError(
                f"{where}: segment: expected family:name, e.g. "
                "lifecycle:at_risk, rfm:champions or tier:*"
            )
        return Trigger("segment", segment=value, **common)
    if kind == "birthday":
        hour = _int(spec.get("local_hour", 9), f"{where}: local_hour")
        if not 0 <= hour <= 23:
            raise CampaignFileError(f"{where}: local_hour: expected 0..23")
        return Trigger("birthday", local_hour=hour, **common)
    if kind == "replenishment":
        interval = parse_duration(spec.get("interval", "30d"), where=f"{where}: interval")
        return Trigger("replenishment", interval_days=interval / 86_400_000, **common)
    if value not in CATALOG_TRIGGERS:
        raise CampaignFileError(f"{where}: catalog: expected one of {CATALOG_TRIGGERS}")
    min_aff = spec.get("min_affinity", 0.0)
    if not isinstance(min_aff, int | float) or isinstance(min_aff, bool) or min_aff < 0:
        raise CampaignFileError(f"{where}: min_affinity: expected a number >= 0")
    return Trigger("catalog", catalog=value, min_affinity=float(min_aff), **common)


def _offer(spec: Any, where: str) -> OfferSpec:
    if not isinstance(spec, Mapping):
        raise CampaignFileError(f"{where}: must be a mapping")
    _only(
        spec,
        {"kind", "title", "reason", "coupon", "items", "max_items", "expires", "__line__"},
        where,
    )
    kind = spec.get("kind", "notice")
    if kind not in OFFER_KINDS:
        raise CampaignFileError(f"{where}: kind: expected one of {OFFER_KINDS}")
    coupon = spec.get("coupon") or {}
    if kind == "coupon" and not coupon:
        raise CampaignFileError(
            f"{where}: coupon: a coupon offer needs {{value: N}} or {{by_tier: {{...}}}}"
        )
    if not isinstance(coupon, Mapping):
        raise CampaignFileError(f"{where}: coupon: must be a mapping")
    by_tier = {k: float(v) for k, v in (coupon.get("by_tier") or {}).items() if k != "__line__"}
    value = coupon.get("value")
    if kind == "coupon" and value is None and not by_tier:
        raise CampaignFileError(f"{where}: coupon: give `value` or `by_tier`")
    items = spec.get("items")
    if items is not None and items not in ITEM_SOURCES:
        raise CampaignFileError(f"{where}: items: expected one of {ITEM_SOURCES}")
    title = spec.get("title")
    if not isinstance(title, str) or not title.strip():
        raise CampaignFileError(f"{where}: title: required (the offer's headline)")
    return OfferSpec(
        kind=kind,
        title=title,
        reason=str(spec.get("reason", "")),
        coupon_value=None if value is None else float(value),
        coupon_by_tier=by_tier,
        min_spend=float(coupon.get("min_spend", 0.0)),
        items=items,
        max_items=_int(spec.get("max_items", 4), f"{where}: max_items"),
        expires_ms=parse_duration(spec.get("expires", "14d"), where=f"{where}: expires"),
    )


def _channels(spec: Any, where: str) -> tuple[ChannelSpec, ...]:
    if not isinstance(spec, Sequence) or isinstance(spec, str):
        raise CampaignFileError(f"{where}: must be a list of {{channel, template}}")
    out = []
    for item in spec:
        if not isinstance(item, Mapping) or item.get("channel") not in CHANNELS:
            raise CampaignFileError(f"{where}: each entry needs channel: one of {CHANNELS}")
        template = item.get("template")
        if not isinstance(template, str) or not template:
            raise CampaignFileError(f"{where}: {item.get('channel')}: template is required")
        out.append(ChannelSpec(item["channel"], template))
    return tuple(out)


def _only(spec: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise CampaignFileError(
            f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed - {'__line__'})}"
        )


def _line(item: Any) -> int:
    return int(item.get("__line__", 0)) if isinstance(item, Mapping) else 0


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise CampaignFileError(f"{where}: expected true or false")
    return value


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CampaignFileError(f"{where}: expected a whole number")
    return value


def _percent(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 100:
        raise CampaignFileError(f"{where}: expected a percentage 0..100")
    return float(value)
