"""A multi-month shop history for the soak, deterministic by seed, with the shapes that hurt.

Per customer: a registration with contact data and consent, browsing sessions (page and
product views, carts, removals), orders (wholesale customers order baskets of up to 150
lines), cancellations and refunds, consent flips (``customers``) and unsubscribes
(``feedback``), and for some an anonymous session first that a later ``identify`` merges.
Shop-wide: a few quiet days (no event at all: the engine clock jumps a day) each right after
a sale evening, so that the carts and orders of the sale make their delayed campaigns
(cart abandonment after 2 h, cross-sell after a day) fall due together when the clock jumps.

Then the delivery: records in event-time order, except that about half of the reversals
(cancellations, refunds) are delivered before their order, 5% of the records are sent a
second time later on (the same bytes, within the customer's next events, i.e. inside the
engine's documented id window), 0.1% are malformed and a few are stamped in the year 2100.

Event time ends before ``end_ms`` (default 2026-11-01, in the past: the engine rejects
records far ahead of wall time). Nothing here imports the engine's models.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

DEFAULT_END_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z
FAR_FUTURE_MS = 4_115_491_200_000  # 2100-06-01T00:00:00Z
DAYS = 300  # about ten months
CATEGORIES = ("shoes", "outerwear", "tops", "trousers", "bags", "beauty", "home", "sports")
CHANNELS = ("email", "sms", "push")

RECORDS_PER_SESSION = 6.5  # measured mean of ``_session`` output with the shares below
REDELIVERED_SHARE = 0.05
NEARBY_REDELIVERY_SHARE = 0.4  # of redeliveries: within the next 30 records on the wire
NEARBY_WINDOW = 30
CUSTOMER_REDELIVERY_WINDOW = 20  # else: after one of the customer's next 20 records
MALFORMED_SHARE = 0.001
MOVED_REVERSAL_SHARE = 0.5  # of reversals: delivered before their order
MOVE_BACK = 200  # a moved reversal lands up to this many records before its order
WHOLESALE_SHARE = 0.02  # every 50th customer orders wholesale baskets
MAX_BASKET_LINES = 150
BASKET_MEDIAN_LINES = 18
ANONYMOUS_SHARE = 0.10
LATE_ANONYMOUS_CLICK = 0.3  # of anonymous ids: one more click after the identify
CONSENT_FLIP_SHARE = 0.25
UNSUBSCRIBE_SHARE = 0.08
SALE_SHARE = 0.2  # of customers active at a sale: one sale session before the quiet day
RFC3339_SHARE = 0.1  # of records: ts as an RFC 3339 string instead of epoch ms
CANCEL_SHARE, REFUND_SHARE = 0.03, 0.02


@dataclass(frozen=True, slots=True)
class Record:
    """One record as sent: topic suffix, key and the exact bytes (a redelivery reuses them).

    ``kind``: ``event`` (first delivery), ``redelivery``, ``malformed`` or ``far_future``.
    """

    topic: str
    key: str
    payload: bytes
    kind: str = "event"
    moved: bool = False  # a reversal delivered before its order


@dataclass(frozen=True, slots=True)
class Shape:
    """What to generate: the knobs of ``bench/soak.py``."""

    customers: int
    seed: int
    records_per_customer: float = 50.0  # on the wire, redeliveries included
    end_ms: int = DEFAULT_END_MS
    days: int = DAYS
    quiet_days: int = 6
    far_future: int = 10

    @property
    def products(self) -> int:
        return max(200, self.customers // 10)


@dataclass
class History:
    shape: Shape
    records: list[Record]
    quiet_days: list[int] = field(default_factory=list)  # start of each jump, ms

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for record in self.records:
            out[record.kind] = out.get(record.kind, 0) + 1
        out["moved_reversals"] = sum(r.moved for r in self.records)
        out["wholesale_lines_max"] = max(
            (
                len(orjson.loads(r.payload).get("items") or [])
                for r in self.records
                if r.topic == "orders" and r.kind == "event"
            ),
            default=0,
        )
        return out

    def phases(self, count: int) -> list[list[Record]]:
        """The delivery cut into ``count`` contiguous parts (faults strike within each)."""
        size = math.ceil(len(self.records) / count)
        return [self.records[i : i + size] for i in range(0, len(self.records), size)]


@dataclass(order=True)
class _Event:
    ts: int
    seq: int
    topic: str = field(compare=False)
    value: dict[str, Any] = field(compare=False)


class _Timeline:
    """Virtual time without the quiet days, mapped onto real event time around them."""

    def __init__(self, start_ms: int, days: int, quiet: int) -> None:
        self.start = start_ms
        self.span = (days - quiet) * DAY_MS
        step = self.span // (quiet + 1)
        self.jumps = [step * (i + 1) for i in range(quiet)]  # virtual offsets of the gaps
        self.end = start_ms + days * DAY_MS

    def real(self, virtual: int) -> int:
        """Every gap the instant has passed adds one whole day of silence."""
        return self.start + virtual + bisect.bisect_right(self.jumps, virtual) * DAY_MS

    def gap_starts(self) -> list[int]:
        return [self.start + jump + i * DAY_MS for i, jump in enumerate(self.jumps)]


class _Shop:
    """Products with a category and a fixed price."""

    def __init__(self, rng: random.Random, products: int) -> None:
        self.ids = [f"p{n:05d}" for n in range(products)]
        self.category = {p: CATEGORIES[n % len(CATEGORIES)] for n, p in enumerate(self.ids)}
        self.price = {p: round(rng.uniform(3, 200), 2) for p in self.ids}
        self.by_category: dict[str, list[str]] = {}
        for p in self.ids:
            self.by_category.setdefault(self.category[p], []).append(p)


class _Customer:
    """Draws one customer's events; ``seq`` keeps every id unique and ordering stable."""

    def __init__(self, rng: random.Random, shop: _Shop, number: int, clock: _Timeline) -> None:
        self.rng, self.shop, self.clock = rng, shop, clock
        self.cid = f"c{number:06d}"
        self.events: list[_Event] = []
        self.seq = 0
        self.orders = 0
        self.wholesale = number % round(1 / WHOLESALE_SHARE) == 7  # every 50th customer
        self.favourite = rng.choice(CATEGORIES)

    def add(
        self, virtual: int, topic: str, value: dict[str, Any], owner: str | None = None
    ) -> None:
        """One event at virtual time ``virtual`` (mapped around the quiet days)."""
        ts = self.clock.real(virtual)
        self.seq += 1
        who = owner or self.cid
        body = {"event_id": f"{who}-e{self.seq}", "ts": ts, "customer_id": who, **value}
        self.events.append(_Event(ts, self.seq, topic, body))

    def product(self) -> str:
        category = self.favourite if self.rng.random() < 0.7 else self.rng.choice(CATEGORIES)
        return self.rng.choice(self.shop.by_category[category])

    def register(self, at: int) -> None:
        rng = self.rng
        value: dict[str, Any] = {
            "email": f"{self.cid}@example.com",
            "timezone": rng.choice(["Europe/Berlin", "Europe/London", "America/New_York"]),
        }
        consent = {"email": rng.random() < 0.7}
        if rng.random() < 0.4:
            value["phone"] = f"+4917{rng.randrange(10**7, 10**8)}"
            consent["sms"] = rng.random() < 0.5
        if rng.random() < 0.3:
            value["push_token"] = f"tok-{self.cid}"
            consent["push"] = rng.random() < 0.8
        value["consent"] = consent
        self.add(at, "customers", value)

    def flip_consent(self, at: int) -> None:
        channel = self.rng.choice(CHANNELS)
        self.add(at, "customers", {"consent": {channel: self.rng.random() < 0.5}})

    def unsubscribe(self, at: int) -> None:
        value: dict[str, Any] = {"action": "unsubscribed", "offer_id": f"offer-{self.cid}"}
        if self.rng.random() < 0.6:
            value["channel"] = self.rng.choice(CHANNELS)
        self.add(at, "feedback", value)

    def session(self, at: int, *, sale: bool = False) -> int:
        """Clicks seconds to minutes apart; maybe an order; returns the next free instant."""
        rng, t = self.rng, at
        session_id = f"s-{self.cid}-{self.seq}"

        def click(kind: str, **extra: Any) -> None:
            nonlocal t
            self.add(t, "clicks", {"type": kind, "session_id": session_id, **extra})
            t += rng.randint(15, 180) * SECOND_MS

        click("page_view")
        viewed = [self.product() for _ in range(rng.randint(1, 5))]
        for pid in viewed:
            click(
                "product_view",
                product_id=pid,
                category=self.shop.category[pid],
                price=self.shop.price[pid],
            )
        cart: dict[str, int] = {}
        for pid in viewed[: 2 if sale else 1]:
            if sale or rng.random() < 0.5:
                qty = rng.randint(1, 3)
                cart[pid] = cart.get(pid, 0) + qty
                click(
                    "add_to_cart",
                    product_id=pid,
                    category=self.shop.category[pid],
                    quantity=qty,
                    price=self.shop.price[pid],
                )
        if cart and rng.random() < 0.15:
            pid = next(iter(cart))
            click("remove_from_cart", product_id=pid, quantity=1)
            cart[pid] -= 1
            if cart[pid] <= 0:
                del cart[pid]
        if self.wholesale:
            self.order(t, self.basket())
        elif cart and rng.random() < (0.5 if sale else 0.3):
            self.order(t, cart)
        return t + HOUR_MS

    def basket(self) -> dict[str, int]:
        """Wholesale lines: median 18, a long tail, capped at 150 (and 150 exactly now and
        then), as in real invoices of a wholesaler."""
        tail = round(self.rng.lognormvariate(math.log(BASKET_MEDIAN_LINES), 0.8))
        full = self.orders == 0 or self.rng.random() < 0.03  # a wholesaler's first: 150
        lines = MAX_BASKET_LINES if full else max(2, min(MAX_BASKET_LINES, tail))
        return {pid: self.rng.randint(1, 48) for pid in self.rng.sample(self.shop.ids, lines)}

    def order(self, at: int, lines: dict[str, int]) -> None:
        rng = self.rng
        self.orders += 1
        order_id = f"o-{self.cid}-{self.orders}"
        items = [
            {
                "product_id": pid,
                "category": self.shop.category[pid],
                "quantity": qty,
                "unit_price": self.shop.price[pid],
            }
            for pid, qty in lines.items()
        ]
        total = round(sum(qty * self.shop.price[pid] for pid, qty in lines.items()), 2)
        self.add(at, "orders", {"order_id": order_id, "total": total, "items": items})
        draw = rng.random()
        if draw < CANCEL_SHARE:
            delay = rng.randint(2 * MINUTE_MS, 2 * HOUR_MS)
            self.add(at + delay, "orders", {"order_id": order_id, "status": "cancelled"})
        elif draw < CANCEL_SHARE + REFUND_SHARE:
            delay = rng.randint(6 * HOUR_MS, 3 * DAY_MS)
            self.add(at + delay, "orders", {"order_id": order_id, "status": "refunded"})

    def anonymous_visit(self, at: int, number: int) -> tuple[str, int]:
        """An anonymous session an hour or more before ``at``; returns (anonymous id, end)."""
        anon = f"a{number:06d}"
        t = max(0, at - self.rng.randint(1, 48) * HOUR_MS)
        for kind in ("page_view", "product_view", "product_view", "add_to_cart"):
            pid = self.product()
            extra: dict[str, Any] = {"type": kind}
            if kind != "page_view":
                extra |= {"product_id": pid, "category": self.shop.category[pid]}
            self.add(t, "clicks", extra, anon)
            t += self.rng.randint(20, 300) * SECOND_MS
        return anon, t


def generate(shape: Shape) -> History:
    """The whole history, delivered: see the module docstring."""
    rng = random.Random(shape.seed)
    shop = _Shop(rng, shape.products)
    start = shape.end_ms - shape.days * DAY_MS
    clock = _Timeline(start, shape.days, shape.quiet_days)
    base = shape.records_per_customer / (1 + REDELIVERED_SHARE + MALFORMED_SHARE)
    events: list[_Event] = []
    for number in range(shape.customers):
        events.extend(_one_customer(rng, shop, clock, number, base))
    events.sort()
    records = _deliver(rng, events, shape)
    return History(shape=shape, records=records, quiet_days=clock.gap_starts())


def _one_customer(
    rng: random.Random, shop: _Shop, clock: _Timeline, number: int, mean_records: float
) -> list[_Event]:
    me = _Customer(rng, shop, number, clock)
    target = max(4, round(mean_records * rng.lognormvariate(-0.18, 0.6)))
    first = rng.randrange(0, int(clock.span * 0.6))
    churn = first + rng.randrange(20 * DAY_MS, int(clock.span * 1.4))
    last = min(churn, clock.span - HOUR_MS)
    me.register(first)
    sessions = math.ceil(2 * target / RECORDS_PER_SESSION)  # more than needed: stop at target
    times = sorted(
        rng.randrange(first + MINUTE_MS, max(first + 2 * MINUTE_MS, last)) for _ in range(sessions)
    )
    likely = max(1, sessions // 2)  # about as many sessions as the target needs
    anonymous_at = rng.randrange(likely) if rng.random() < ANONYMOUS_SHARE else None
    flip_at = rng.randrange(likely) if rng.random() < CONSENT_FLIP_SHARE else None
    unsubscribe_at = rng.randrange(likely) if rng.random() < UNSUBSCRIBE_SHARE else None
    for jump in clock.jumps:  # the sale evening before each quiet day
        if first < jump - 6 * HOUR_MS and jump < churn and rng.random() < SALE_SHARE:
            times.append(-(jump - rng.randrange(MINUTE_MS, 5 * HOUR_MS)))  # negative: a sale
    times.sort(key=abs)
    busy_until = 0
    for index, moment in enumerate(times):
        if len(me.events) + RECORDS_PER_SESSION / 2 >= target and moment >= 0:
            break
        at = max(abs(moment), busy_until)
        if index == anonymous_at and moment >= 0:
            anon, _ = me.anonymous_visit(at, number)
            me.add(at, "clicks", {"type": "identify", "anonymous_id": anon})
            if rng.random() < LATE_ANONYMOUS_CLICK:
                me.add(at + 10 * MINUTE_MS, "clicks", {"type": "page_view"}, anon)
        busy_until = me.session(at, sale=moment < 0)
        if index == flip_at:
            me.flip_consent(busy_until)
        if index == unsubscribe_at:
            me.unsubscribe(busy_until + MINUTE_MS)
    return [e for e in me.events if e.ts < clock.end]  # a late refund may fall after the end


def _deliver(rng: random.Random, events: list[_Event], shape: Shape) -> list[Record]:
    """Wire order: positions as floats, then sorted (see the module docstring)."""
    slots: list[tuple[float, Record]] = []
    position_of_order: dict[str, int] = {}
    for i, e in enumerate(events):
        if e.topic == "orders" and "total" in e.value:
            position_of_order[e.value["order_id"]] = i
    records = [Record(e.topic, e.value["customer_id"], _encode(rng, e.value)) for e in events]
    for i, (event, record) in enumerate(zip(events, records, strict=True)):
        status = event.value.get("status")
        if status and rng.random() < MOVED_REVERSAL_SHARE:
            placed_at = position_of_order[event.value["order_id"]]
            moved = Record(record.topic, record.key, record.payload, moved=True)
            slots.append((rng.randint(max(0, placed_at - MOVE_BACK), placed_at) - 0.5, moved))
        else:
            slots.append((float(i), record))
    slots.extend(_redeliveries(rng, records))
    total = len(slots)
    for number in range(round(MALFORMED_SHARE * total)):
        key = rng.choice(records).key
        slots.append((rng.uniform(0, total), Record(*_malformed(number, key), kind="malformed")))
    for number in range(shape.far_future):
        key = rng.choice(records).key
        value = {
            "event_id": f"future-{number}",
            "ts": FAR_FUTURE_MS + number,
            "customer_id": key,
            "type": "page_view",
        }
        slots.append(
            (rng.uniform(0, total), Record("clicks", key, orjson.dumps(value), kind="far_future"))
        )
    slots.sort(key=lambda slot: slot[0])
    return [record for _, record in slots]


def _redeliveries(rng: random.Random, records: list[Record]) -> Iterator[tuple[float, Record]]:
    """The same bytes and key again, nearby on the wire or after a few of the customer's
    next records (the engine's id window is the customer's last 64 events)."""
    by_key: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        by_key.setdefault(record.key, []).append(i)
    chosen = rng.sample(range(len(records)), round(REDELIVERED_SHARE * len(records)))
    for index in chosen:
        original = records[index]
        if rng.random() < NEARBY_REDELIVERY_SHARE:
            later = min(len(records), index + rng.randint(1, NEARBY_WINDOW))
        else:
            own = by_key[original.key]
            after = own[bisect.bisect_right(own, index) :][:CUSTOMER_REDELIVERY_WINDOW]
            later = rng.choice(after) + 1 if after else len(records)
        copy = Record(original.topic, original.key, original.payload, kind="redelivery")
        yield later - 0.5 + rng.random() * 0.4, copy


def _encode(rng: random.Random, value: dict[str, Any]) -> bytes:
    """JSON; some instants as RFC 3339 text (whole milliseconds, ``Z``)."""
    if rng.random() < RFC3339_SHARE:
        value = {**value, "ts": rfc3339(value["ts"])}
    return orjson.dumps(value)


def rfc3339(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis:03d}Z"


def _malformed(number: int, key: str) -> tuple[str, str, bytes]:
    """Records the contract refuses, each unique (so its deadletter entry can be found)."""
    eid = f"bad-{number}"
    base = {"event_id": eid, "ts": DEFAULT_END_MS - DAY_MS, "customer_id": key}
    kinds: list[tuple[str, bytes]] = [
        ("clicks", f'{{"event_id": "{eid}", "customer_id": "{key}", "ts": '.encode()),
        ("orders", orjson.dumps([eid, key])),
        ("orders", orjson.dumps({**base, "order_id": f"o-{eid}", "total": -5})),
        ("clicks", orjson.dumps({**base, "type": "teleport"})),
        ("clicks", orjson.dumps({**base, "type": "product_view"})),
        ("customers", orjson.dumps({**base, "ts": f"yesterday {number}"})),
        ("clicks", orjson.dumps({**base, "event_id": "", "type": "page_view", "note": eid})),
        (
            "clicks",
            orjson.dumps({**base, "type": "add_to_cart", "product_id": "p1", "quantity": 0}),
        ),
        ("feedback", orjson.dumps({**base, "action": "teleported"})),
    ]
    topic, payload = kinds[number % len(kinds)]
    return topic, key, payload


def follow_up(history: History, customers: int) -> list[Record]:
    """Fresh records after the history (new ids, new orders): what a shop sends after the
    broker lost its topics, at offsets that start again from 0."""
    out = []
    start = history.shape.end_ms + HOUR_MS
    for number in range(min(customers, history.shape.customers)):
        cid, ts = f"c{number:06d}", start + number * SECOND_MS
        order = {
            "event_id": f"{cid}-after-order",
            "ts": ts,
            "customer_id": cid,
            "order_id": f"o-{cid}-after",
            "total": 10.0 + number % 90,
            "items": [{"product_id": "p00000", "category": CATEGORIES[0], "quantity": 1}],
        }
        view = {
            "event_id": f"{cid}-after-view",
            "ts": ts - MINUTE_MS,
            "customer_id": cid,
            "type": "page_view",
        }
        out += [
            Record("clicks", cid, orjson.dumps(view)),
            Record("orders", cid, orjson.dumps(order)),
        ]
    return out
