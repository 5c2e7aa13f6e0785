"""A believable, deterministic shop: customers who browse, buy, cancel and change their minds.

``rapport demo`` steps a ``ShopSimulator`` in real time to feed the input topics, and
``generate_history`` writes long histories for imports, backfills and tests.

Pure: every random draw comes from the simulator's own ``random.Random(seed)`` and time only
moves when the caller passes ``now_ms``. Happenings (the next click of a session, a late
cancellation, a catalogue change, ...) wait in a priority queue ordered by event time and are
played in that order, so the same seed gives the same records whatever the step sizes:
``step(2000)`` yields what ``step(1000)`` then ``step(2000)`` yield together.

The rate knob, ``events_per_second``: new sessions arrive as a Poisson process whose rate is
``events_per_second / RECORDS_PER_SESSION`` (a session yields about that many records: its
clicks, its order if any, and its share of registrations, consent changes, cancellations and
catalogue changes). Which customer shows up is drawn by personal activity (lognormal: a few
heavy shoppers, many light ones). Clicks within a session are spaced so that about a quarter
of the customers are mid-session at any moment: a lively demo rate with 500 customers means
clicks seconds apart, a history of a few thousand events a day means realistic gaps (capped at
``MAX_CLICK_GAP_MS``). A customer who is already mid-session does not start another one, so
at very high rates with few customers the output falls short of the knob.

Feedback events are not simulated: they would need the offer ids the engine makes, which a
shop simulator cannot know.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

DEFAULT_CATEGORIES: tuple[str, ...] = (
    "shoes",
    "outerwear",
    "tops",
    "trousers",
    "bags",
    "beauty",
    "home",
    "sports",
    "kids",
    "electronics",
)

SECOND_MS = 1_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

# Session arrival rate = events_per_second / RECORDS_PER_SESSION (measured with the defaults).
RECORDS_PER_SESSION = 9.4
CLICKS_PER_SESSION = 9.0  # mean of a geometric session length
TARGET_BUSY_SHARE = 0.25  # share of customers mid-session, sets the click spacing
MIN_CLICK_GAP_MS = 20
MAX_CLICK_GAP_MS = 30 * SECOND_MS
REGISTRATION_WINDOW_MS = 60 * SECOND_MS  # every customer record arrives in the first minute
IDLE_PICK_ATTEMPTS = 8

# Checkout chance at the end of a session: base + per cart item, capped. Fuller carts check out
# more often, which keeps carts from growing without bound.
CHECKOUT_BASE = 0.35
CHECKOUT_PER_ITEM = 0.1
CHECKOUT_MAX = 0.85
ORDER_SIZE_WEIGHTS = (0.55, 0.30, 0.15)  # 1, 2 or 3 items from the cart
CANCEL_PROBABILITY = 0.03
REFUND_PROBABILITY = 0.02
CANCEL_DELAY_MS = (2 * 60 * SECOND_MS, 2 * HOUR_MS)
REFUND_DELAY_MS = (6 * HOUR_MS, 3 * DAY_MS)
ADD_WEIGHT = 0.3  # relative to 1.0 for another product view, when a product is on screen
FAVOURITE_SHARE = 0.8  # of category choices
REPEAT_VIEW_PROBABILITY = 0.15  # a product view that revisits something bought before
ANONYMOUS_SESSION_PROBABILITY = 0.03
IDENTIFY_PROBABILITY = 0.25  # per click of an anonymous session; forced at its end
CONSENT_CHANGE_PROBABILITY = 0.01  # per session
CATALOG_CHANGES_PER_SESSION = 0.01
NEW_ARRIVAL_MS = 14 * DAY_MS
PRICE_FACTORS = (0.7, 0.8, 0.9, 1.0, 1.0)  # of the list price, on a price change
RESTOCK_SHARE = 0.7  # of stock changes, when something is sold out

EMAIL_CONSENT_PROBABILITY = 0.7
PHONE_PROBABILITY = 0.4
SMS_CONSENT_PROBABILITY = 0.5  # of customers with a phone
PUSH_TOKEN_PROBABILITY = 0.35
PUSH_CONSENT_PROBABILITY = 0.8  # of customers with a push token

TIMEZONES: tuple[tuple[str, float], ...] = (
    ("Europe/Berlin", 0.35),
    ("Europe/Paris", 0.15),
    ("Europe/London", 0.15),
    ("Europe/Madrid", 0.10),
    ("Europe/Amsterdam", 0.10),
    ("America/New_York", 0.10),
    ("Asia/Tokyo", 0.05),
)
CITIES = ("Berlin", "Hamburg", "Munich", "Cologne", "Paris", "London", "Madrid", "Amsterdam")
OCCUPATIONS = ("student", "employee", "self-employed", "retired", "other")
ADJECTIVES = ("Classic", "Urban", "Cosy", "Light", "Premium", "Everyday", "Vintage", "Smart")
NOUNS: dict[str, tuple[str, ...]] = {
    "shoes": ("Sneaker", "Boot", "Loafer", "Sandal"),
    "outerwear": ("Parka", "Trench Coat", "Rain Jacket", "Blazer"),
    "tops": ("T-Shirt", "Hoodie", "Blouse", "Sweater"),
    "trousers": ("Jeans", "Chinos", "Joggers", "Shorts"),
    "bags": ("Backpack", "Tote", "Wallet", "Weekender"),
    "beauty": ("Serum", "Lip Balm", "Face Cream", "Perfume"),
    "home": ("Candle", "Throw", "Mug", "Cushion"),
    "sports": ("Yoga Mat", "Running Tee", "Water Bottle", "Dumbbell"),
    "kids": ("Romper", "Puzzle", "Plush Toy", "Raincoat"),
    "electronics": ("Headphones", "Charger", "Speaker", "Smartwatch"),
}
MEDIAN_PRICES: dict[str, float] = {
    "shoes": 79.0,
    "outerwear": 129.0,
    "tops": 29.0,
    "trousers": 59.0,
    "bags": 49.0,
    "beauty": 19.0,
    "home": 24.0,
    "sports": 34.0,
    "kids": 22.0,
    "electronics": 89.0,
}


@dataclass(frozen=True)
class SimulatedRecord:
    """One input message as a producer would send it."""

    topic: str  # contract suffix: clicks/orders/customers/catalog/feedback
    key: str  # customer_id, or product_id for catalog
    value: dict[str, object]  # the contract JSON object, with event_id and ts (epoch ms int)


@dataclass(slots=True)
class _Product:
    product_id: str
    category: str
    list_price: float
    price: float  # what it costs today: the list price or a sale price
    in_stock: bool
    name: str
    created_ms: int
    companion: int  # index of a product that is often looked at and bought with this one


@dataclass(slots=True)
class _Shopper:
    customer_id: str
    favourites: tuple[str, ...]
    activity: float
    has_phone: bool
    has_push: bool
    consent: dict[str, bool]
    registered: bool = False
    busy: bool = False
    cart: dict[int, int] = field(default_factory=dict)  # product index -> quantity, add order
    bought: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Session:
    shopper: _Shopper
    session_id: str
    category: str
    anonymous_id: str | None  # set while the visitor has not logged in yet
    product: int | None = None  # the product on screen, if any


Happening = Callable[[int], list[SimulatedRecord]]  # played at its ts, returns its records
ClickAction = Callable[[_Session, int], SimulatedRecord]


class ShopSimulator:
    """A shop with a fixed population of customers, stepped forward in event time.

    Records of ``step(now_ms)`` have ``ts`` in ``(previous now, now_ms]`` and come in ts order.
    Every customer gets a ``customers`` record within the first minute (or just before their
    first click if that is sooner); ``catalog()`` gives the catalogue to send before that.
    """

    def __init__(
        self,
        *,
        seed: int,
        start_ms: int,
        customers: int = 500,
        products: int = 200,
        categories: tuple[str, ...] = DEFAULT_CATEGORIES,
        events_per_second: float = 100.0,
    ) -> None:
        if customers < 1 or products < 1 or not categories or events_per_second <= 0:
            raise ValueError("need customers >= 1, products >= 1, categories, rate > 0")
        self._seed = seed
        self._rng = random.Random(seed)
        self._now = start_ms
        self._queue: list[tuple[int, int, Happening]] = []
        self._sequence = itertools.count()
        self._counters: dict[str, int] = {}
        self._categories = tuple(dict.fromkeys(categories))
        self._medians = {c: MEDIAN_PRICES.get(c) or self._rng.uniform(15, 120) for c in categories}
        self._products: list[_Product] = []
        self._by_category: dict[str, list[int]] = {c: [] for c in self._categories}
        self._popularity: dict[str, list[float]] = {}
        self._stock_shelves(products, start_ms)
        self._shoppers = [self._new_shopper(i + 1) for i in range(customers)]
        self._activity = list(itertools.accumulate(s.activity for s in self._shoppers))
        self._arrival_mean_ms = SECOND_MS * RECORDS_PER_SESSION / events_per_second
        self._click_gap_ms = min(
            MAX_CLICK_GAP_MS,
            max(MIN_CLICK_GAP_MS, SECOND_MS * TARGET_BUSY_SHARE * customers / events_per_second),
        )
        self._schedule_start(start_ms)

    @property
    def now_ms(self) -> int:
        """The simulated time up to which records have been produced."""
        return self._now

    def catalog(self) -> list[SimulatedRecord]:
        """The whole catalogue as it stands now, one record per product, stamped ``now_ms``.

        Each call is a fresh snapshot with fresh event ids (not a redelivery of the last one).
        """
        return [self._catalog_record(i, self._now) for i in range(len(self._products))]

    def step(self, now_ms: int) -> list[SimulatedRecord]:
        """Play every happening in ``(now_ms of the last step, now_ms]``, in event-time order.

        A ``now_ms`` that does not move forward returns nothing: time never runs backwards.
        """
        records: list[SimulatedRecord] = []
        while self._queue and self._queue[0][0] <= now_ms:
            ts, _, happening = heapq.heappop(self._queue)
            records.extend(happening(ts))
        self._now = max(self._now, now_ms)
        return records

    # -- the world ---------------------------------------------------------------------------

    def _schedule_start(self, start_ms: int) -> None:
        """Queue the registrations and the first session and catalogue change."""
        for shopper in self._shoppers:
            at = start_ms + 1 + self._rng.randrange(REGISTRATION_WINDOW_MS)
            self._schedule(at, partial(self._scheduled_registration, shopper))
        self._schedule(start_ms + self._gap(self._arrival_mean_ms), self._arrive)
        catalog_mean = self._arrival_mean_ms / CATALOG_CHANGES_PER_SESSION
        self._schedule(start_ms + self._gap(catalog_mean), self._change_catalog)

    def _schedule(self, ts: int, happening: Happening) -> None:
        heapq.heappush(self._queue, (ts, next(self._sequence), happening))

    def _gap(self, mean_ms: float) -> int:
        """An exponential wait of at least 1 ms, so a happening never lands in the past."""
        return max(1, round(self._rng.expovariate(1.0 / mean_ms)))

    def _record(self, topic: str, key: str, ts: int, fields: dict[str, object]) -> SimulatedRecord:
        """Stamp a contract record with a unique, reproducible event id; drop absent fields."""
        count = self._counters.get(topic, 0) + 1
        self._counters[topic] = count
        value: dict[str, object] = {"event_id": f"{topic[:2]}-{self._seed}-{count:09d}", "ts": ts}
        value.update((k, v) for k, v in fields.items() if v is not None)
        return SimulatedRecord(topic=topic, key=key, value=value)

    def _next_id(self, kind: str) -> str:
        """Session, anonymous and order ids: per-kind counters, prefixed by kind and seed."""
        count = self._counters.get(kind, 0) + 1
        self._counters[kind] = count
        return f"{kind}-{self._seed}-{count:08d}"

    # -- catalogue ---------------------------------------------------------------------------

    def _stock_shelves(self, count: int, start_ms: int) -> None:
        """The opening catalogue: categories in turn, ~10% listed within the last two weeks
        (new arrivals), ~5% sold out, each product with a random companion."""
        for number in range(count):
            if self._rng.random() < 0.1:
                age = self._rng.randrange(NEW_ARRIVAL_MS)
            else:
                age = NEW_ARRIVAL_MS + self._rng.randrange(365 * DAY_MS)
            category = self._categories[number % len(self._categories)]
            index = self._add_product(category, start_ms - age)
            self._products[index].in_stock = self._rng.random() < 0.95
        for product in self._products:
            product.companion = self._rng.randrange(len(self._products))

    def _add_product(self, category: str, now_ms: int) -> int:
        """List a product. Within a category, popularity falls off with listing rank (Zipf-like),
        so a few bestsellers draw most views, as in real shops."""
        index = len(self._products)
        nouns = NOUNS.get(category, (category.title(),))
        list_price = _shop_price(self._medians[category] * self._rng.lognormvariate(0.0, 0.5))
        self._products.append(
            _Product(
                product_id=f"p{index + 1:04d}",
                category=category,
                list_price=list_price,
                price=list_price,
                in_stock=True,
                name=f"{self._rng.choice(ADJECTIVES)} {self._rng.choice(nouns)}",
                created_ms=now_ms,
                companion=index,
            )
        )
        members = self._by_category[category]
        members.append(index)
        weights = (1.0 / (rank + 1) ** 0.8 for rank in range(len(members)))
        self._popularity[category] = list(itertools.accumulate(weights))
        return index

    def _catalog_record(self, index: int, ts: int) -> SimulatedRecord:
        product = self._products[index]
        fields: dict[str, object] = {
            "product_id": product.product_id,
            "category": product.category,
            "price": product.price,
            "in_stock": product.in_stock,
            "name": product.name,
            "new_arrival": ts - product.created_ms < NEW_ARRIVAL_MS,
        }
        return self._record("catalog", product.product_id, ts, fields)

    def _change_catalog(self, ts: int) -> list[SimulatedRecord]:
        """Merchandising: a price change, a stock change, or a new arrival."""
        self._schedule(
            ts + self._gap(self._arrival_mean_ms / CATALOG_CHANGES_PER_SESSION),
            self._change_catalog,
        )
        kind = self._rng.choices(("price", "stock", "new"), (0.5, 0.35, 0.15))[0]
        if kind == "new":
            index = self._add_product(self._rng.choice(self._categories), ts)
            self._products[index].companion = self._rng.randrange(len(self._products))
            return [self._catalog_record(index, ts)]
        index = self._reprice() if kind == "price" else self._restock_or_sell_out()
        return [self._catalog_record(index, ts)]

    def _reprice(self) -> int:
        """A sale off the list price, or back to it: prices move but do not drift."""
        index = self._rng.randrange(len(self._products))
        product = self._products[index]
        product.price = _shop_price(product.list_price * self._rng.choice(PRICE_FACTORS))
        return index

    def _restock_or_sell_out(self) -> int:
        """Mostly restocks of sold-out products, so only a few are sold out at any time."""
        sold_out = [i for i, product in enumerate(self._products) if not product.in_stock]
        if sold_out and self._rng.random() < RESTOCK_SHARE:
            index = self._rng.choice(sold_out)
        else:
            index = self._rng.randrange(len(self._products))
        self._products[index].in_stock = not self._products[index].in_stock
        return index

    def _pick_product(self, category: str) -> int:
        members = self._by_category[category]
        if not members:
            return self._rng.randrange(len(self._products))
        return self._rng.choices(members, cum_weights=self._popularity[category])[0]

    # -- customers ---------------------------------------------------------------------------

    def _new_shopper(self, number: int) -> _Shopper:
        rng = self._rng
        favourites = tuple(
            rng.sample(self._categories, k=min(len(self._categories), 1 + (rng.random() < 0.5)))
        )
        has_phone = rng.random() < PHONE_PROBABILITY
        has_push = rng.random() < PUSH_TOKEN_PROBABILITY
        consent = {"email": rng.random() < EMAIL_CONSENT_PROBABILITY}
        if has_phone:
            consent["sms"] = rng.random() < SMS_CONSENT_PROBABILITY
        if has_push:
            consent["push"] = rng.random() < PUSH_CONSENT_PROBABILITY
        return _Shopper(
            customer_id=f"c{number:05d}",
            favourites=favourites,
            activity=rng.lognormvariate(0.0, 1.0),
            has_phone=has_phone,
            has_push=has_push,
            consent=consent,
        )

    def _scheduled_registration(self, shopper: _Shopper, ts: int) -> list[SimulatedRecord]:
        return [] if shopper.registered else [self._register(shopper, ts)]

    def _register(self, shopper: _Shopper, ts: int) -> SimulatedRecord:
        """The CRM record: contact data, timezone, a few attributes and the initial consent."""
        rng = self._rng
        shopper.registered = True
        zones, weights = zip(*TIMEZONES, strict=True)
        fields: dict[str, object] = {
            "customer_id": shopper.customer_id,
            "email": f"{shopper.customer_id}@example.com",
            "timezone": rng.choices(zones, weights)[0],
            "consent": dict(shopper.consent),
            "attributes": {
                "gender": rng.choice(("f", "m", "d")),
                "age": rng.randint(18, 79),
                "city": rng.choice(CITIES),
                "occupation": rng.choice(OCCUPATIONS),
            },
        }
        if shopper.has_phone:
            fields["phone"] = f"+4915{rng.randrange(10**8):08d}"
        if shopper.has_push:
            fields["push_token"] = f"pt-{self._seed}-{shopper.customer_id}"
        if rng.random() < 0.6:
            fields["birthday"] = f"{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return self._record("customers", shopper.customer_id, ts, fields)

    def _change_consent(self, shopper: _Shopper, ts: int) -> SimulatedRecord:
        """An opt-out or opt-in on one channel the customer can be reached on."""
        channels = ["email"] + ["sms"] * shopper.has_phone + ["push"] * shopper.has_push
        channel = self._rng.choice(channels)
        shopper.consent[channel] = not shopper.consent[channel]
        fields: dict[str, object] = {
            "customer_id": shopper.customer_id,
            "consent": {channel: shopper.consent[channel]},
        }
        return self._record("customers", shopper.customer_id, ts, fields)

    def _pick_idle_shopper(self) -> _Shopper | None:
        """Someone who comes by, weighted by activity; nobody if only busy ones turn up."""
        for _ in range(IDLE_PICK_ATTEMPTS):
            shopper = self._rng.choices(self._shoppers, cum_weights=self._activity)[0]
            if not shopper.busy:
                return shopper
        return None

    # -- sessions ----------------------------------------------------------------------------

    def _arrive(self, ts: int) -> list[SimulatedRecord]:
        """A session starts; the next arrival is queued (Poisson process)."""
        self._schedule(ts + self._gap(self._arrival_mean_ms), self._arrive)
        shopper = self._pick_idle_shopper()
        if shopper is None:
            return []
        records: list[SimulatedRecord] = []
        if not shopper.registered:
            records.append(self._register(shopper, ts))
        if self._rng.random() < CONSENT_CHANGE_PROBABILITY:
            records.append(self._change_consent(shopper, ts))
        anonymous = self._rng.random() < ANONYMOUS_SESSION_PROBABILITY
        session = _Session(
            shopper=shopper,
            session_id=self._next_id("s"),
            category=self._pick_category(shopper),
            anonymous_id=self._next_id("a") if anonymous else None,
        )
        shopper.busy = True
        records.append(self._land(session, ts))
        self._schedule(ts + self._gap(self._click_gap_ms), partial(self._continue, session))
        return records

    def _continue(self, session: _Session, ts: int) -> list[SimulatedRecord]:
        """The next click of a session, or its end (login if still anonymous, maybe checkout)."""
        if self._rng.random() < 1.0 / CLICKS_PER_SESSION:
            return self._end(session, ts)
        self._schedule(ts + self._gap(self._click_gap_ms), partial(self._continue, session))
        if session.anonymous_id is not None and self._rng.random() < IDENTIFY_PROBABILITY:
            return [self._identify(session, ts)]
        return [self._choose_action(session)(session, ts)]

    def _end(self, session: _Session, ts: int) -> list[SimulatedRecord]:
        shopper = session.shopper
        shopper.busy = False
        records: list[SimulatedRecord] = []
        if session.anonymous_id is not None:
            records.append(self._identify(session, ts))
        checkout = min(CHECKOUT_MAX, CHECKOUT_BASE + CHECKOUT_PER_ITEM * len(shopper.cart))
        if shopper.cart and self._rng.random() < checkout:
            records.append(self._place_order(shopper, ts))
        return records

    def _choose_action(self, session: _Session) -> ClickAction:
        """What the visitor does next, given what is on screen and in the cart."""
        options: list[tuple[ClickAction, float]] = [
            (self._view, 1.0),
            (self._page_view, 0.12),
            (self._search, 0.06),
        ]
        if session.product is not None:
            in_stock = self._products[session.product].in_stock
            options += [
                (self._add_to_cart, ADD_WEIGHT * in_stock),
                (self._wishlist, 0.04),
                (self._view_companion, 0.1),
            ]
        if session.shopper.cart:
            options.append((self._remove_from_cart, 0.015))
        actions = [action for action, _ in options]
        return self._rng.choices(actions, [weight for _, weight in options])[0]

    def _pick_category(self, shopper: _Shopper) -> str:
        if self._rng.random() < FAVOURITE_SHARE:
            return self._rng.choice(shopper.favourites)
        return self._rng.choice(self._categories)

    def _click(self, session: _Session, ts: int, kind: str, **fields: object) -> SimulatedRecord:
        """A click by whoever the visitor is known as right now (anonymous id or customer)."""
        visitor = session.anonymous_id or session.shopper.customer_id
        value: dict[str, object] = {
            "customer_id": visitor,
            "type": kind,
            "anonymous_id": session.anonymous_id,
            **fields,
            "session_id": session.session_id,
        }
        return self._record("clicks", visitor, ts, value)

    def _product_fields(self, index: int) -> dict[str, object]:
        product = self._products[index]
        return {
            "product_id": product.product_id,
            "category": product.category,
            "price": product.price,
        }

    def _land(self, session: _Session, ts: int) -> SimulatedRecord:
        """Sessions open on a category page or with a search."""
        if self._rng.random() < 0.7:
            return self._page_view(session, ts)
        return self._search(session, ts)

    def _page_view(self, session: _Session, ts: int) -> SimulatedRecord:
        session.category = self._pick_category(session.shopper)
        session.product = None
        return self._click(session, ts, "page_view", category=session.category)

    def _search(self, session: _Session, ts: int) -> SimulatedRecord:
        session.category = self._pick_category(session.shopper)
        session.product = None
        noun = self._rng.choice(NOUNS.get(session.category, (session.category,)))
        query = (
            noun.lower()
            if self._rng.random() < 0.6
            else f"{self._rng.choice(ADJECTIVES).lower()} {noun.lower()}"
        )
        return self._click(session, ts, "search", category=session.category, query=query)

    def _view(self, session: _Session, ts: int) -> SimulatedRecord:
        """Mostly the current category's popular products; sometimes a past purchase."""
        bought = session.shopper.bought
        if bought and self._rng.random() < REPEAT_VIEW_PROBABILITY:
            index = self._rng.choice(bought)
        else:
            index = self._pick_product(session.category)
        return self._show(session, ts, index)

    def _view_companion(self, session: _Session, ts: int) -> SimulatedRecord:
        assert session.product is not None
        return self._show(session, ts, self._products[session.product].companion)

    def _show(self, session: _Session, ts: int, index: int) -> SimulatedRecord:
        session.product = index
        return self._click(session, ts, "product_view", **self._product_fields(index))

    def _add_to_cart(self, session: _Session, ts: int) -> SimulatedRecord:
        assert session.product is not None
        index, session.product = session.product, None
        quantity = self._rng.choices((1, 2, 3), (0.87, 0.1, 0.03))[0]
        cart = session.shopper.cart
        cart[index] = cart.pop(index, 0) + quantity
        return self._click(
            session, ts, "add_to_cart", **self._product_fields(index), quantity=quantity
        )

    def _wishlist(self, session: _Session, ts: int) -> SimulatedRecord:
        assert session.product is not None
        index, session.product = session.product, None
        return self._click(session, ts, "wishlist_add", **self._product_fields(index))

    def _remove_from_cart(self, session: _Session, ts: int) -> SimulatedRecord:
        cart = session.shopper.cart
        index = self._rng.choice(list(cart))
        quantity = cart.pop(index)
        return self._click(
            session, ts, "remove_from_cart", **self._product_fields(index), quantity=quantity
        )

    def _identify(self, session: _Session, ts: int) -> SimulatedRecord:
        """The anonymous visitor logs in: from now on the session is the customer's."""
        anonymous_id, session.anonymous_id = session.anonymous_id, None
        return self._click(session, ts, "identify", anonymous_id=anonymous_id)

    # -- orders ------------------------------------------------------------------------------

    def _place_order(self, shopper: _Shopper, ts: int) -> SimulatedRecord:
        """Checkout of the 1-3 most recently added cart items at today's prices."""
        size = self._rng.choices((1, 2, 3), ORDER_SIZE_WEIGHTS)[0]
        lines = [(index, shopper.cart.pop(index)) for index in list(shopper.cart)[-size:]]
        shopper.bought.extend(index for index, _ in lines)
        order_id = self._next_id("o")
        total = round(sum(quantity * self._products[i].price for i, quantity in lines), 2)
        items = [self._order_item(index, quantity) for index, quantity in lines]
        fields: dict[str, object] = {
            "customer_id": shopper.customer_id,
            "order_id": order_id,
            "status": "placed",
            "total": total,
            "currency": "EUR",
            "items": items,
        }
        self._schedule_reversal(shopper.customer_id, order_id, ts)
        return self._record("orders", shopper.customer_id, ts, fields)

    def _order_item(self, index: int, quantity: int) -> dict[str, object]:
        product = self._products[index]
        return {
            "product_id": product.product_id,
            "category": product.category,
            "quantity": quantity,
            "unit_price": product.price,
        }

    def _schedule_reversal(self, customer_id: str, order_id: str, ts: int) -> None:
        """A few orders are cancelled within hours, a few more refunded within days."""
        draw = self._rng.random()
        if draw < CANCEL_PROBABILITY:
            status, (low, high) = "cancelled", CANCEL_DELAY_MS
        elif draw < CANCEL_PROBABILITY + REFUND_PROBABILITY:
            status, (low, high) = "refunded", REFUND_DELAY_MS
        else:
            return
        at = ts + self._rng.randint(low, high)
        self._schedule(at, partial(self._reverse, customer_id, order_id, status))

    def _reverse(
        self, customer_id: str, order_id: str, status: str, ts: int
    ) -> list[SimulatedRecord]:
        fields: dict[str, object] = {
            "customer_id": customer_id,
            "order_id": order_id,
            "status": status,
        }
        return [self._record("orders", customer_id, ts, fields)]


def _shop_price(amount: float) -> float:
    """Shop-style prices ending in .99, never below 0.99."""
    return max(0.99, round(amount) - 0.01)


def generate_history(
    *, seed: int, start_ms: int, days: int, customers: int, products: int, events_per_day: int
) -> Iterator[SimulatedRecord]:
    """A long history for imports, backfills and tests: the catalogue first, then ts order.

    Catalogue records are stamped ``start_ms``; everything else lies in
    ``(start_ms, start_ms + days]``. Lazy: an hour of simulated time is held at a time.
    """
    simulator = ShopSimulator(
        seed=seed,
        start_ms=start_ms,
        customers=customers,
        products=products,
        events_per_second=events_per_day / (DAY_MS / SECOND_MS),
    )
    yield from simulator.catalog()
    end_ms = start_ms + days * DAY_MS
    now_ms = start_ms
    while now_ms < end_ms:
        now_ms = min(now_ms + HOUR_MS, end_ms)
        yield from simulator.step(now_ms)
