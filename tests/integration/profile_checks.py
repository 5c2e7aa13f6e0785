"""Profiles as the HTTP API answers them, compared with the independent reference.

One named check per field family, each returning readable mismatches
(``"<customer>.<field>: got ..., want ..."``): the replay tests and the soak
(``bench/soak``) run the same checks over their own histories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.integration import independent

TOP_N = 10  # length of top_viewed (engine default; the contract names no length)


@dataclass
class Comparison:
    reference: independent.Reference
    as_of: int
    answers: dict[str, tuple[int, Any]]  # customer id -> (HTTP status, body)
    rfm: dict[str, tuple[int, int, int]]

    def expected(self) -> Iterator[tuple[str, independent.Customer, dict[str, Any]]]:
        for cid, customer in self.reference.customers.items():
            status, body = self.answers[cid]
            if status == 200:
                yield cid, customer, body


Mismatch = str
Check = Callable[[Comparison], list[Mismatch]]


def check_found(cmp: Comparison) -> list[Mismatch]:
    """Every customer of the reference has a profile."""
    return [
        f"{cid}: HTTP {cmp.answers[cid][0]}"
        for cid in cmp.reference.customers
        if cmp.answers[cid][0] != 200
    ]


def check_identity_merge(cmp: Comparison) -> list[Mismatch]:
    """An identified anonymous id has no profile of its own any more: 404, naming where it
    went (``merged_into``)."""
    out = []
    for anon, known in cmp.reference.merged.items():
        status, body = cmp.answers[anon]
        into = body.get("merged_into") if isinstance(body, dict) else None
        if status != 404 or into != known:
            out.append(f"{anon} (merged into {known}): HTTP {status} merged_into={into!r}")
    return out


def _fields(cmp: Comparison, names: tuple[str, ...]) -> list[Mismatch]:
    out = []
    for cid, customer, body in cmp.expected():
        want = independent.expected_view(customer, cmp.as_of)
        for name in names:
            if body.get(name) != want[name]:
                out.append(f"{cid}.{name}: got {body.get(name)!r}, want {want[name]!r}")
    return out


def check_seen(cmp: Comparison) -> list[Mismatch]:
    return _fields(cmp, ("customer_id", "first_seen", "last_seen"))


def check_orders(cmp: Comparison) -> list[Mismatch]:
    return _fields(cmp, ("orders", "revenue", "avg_order_value", "last_order_at"))


def check_cart(cmp: Comparison) -> list[Mismatch]:
    """Cart lines as a product -> quantity map (the contract gives no line order)."""
    out = []
    for cid, customer, body in cmp.expected():
        got = {line["product_id"]: line["quantity"] for line in body["cart"]}
        if len(got) != len(body["cart"]) or got != customer.cart:
            out.append(f"{cid}.cart: got {body['cart']!r}, want {customer.cart!r}")
    return out


def check_top_viewed(cmp: Comparison) -> list[Mismatch]:
    """Each listed count is exact, the list is a top-by-count (ties in any order), best first,
    and as long as TOP_N allows."""
    out = []
    for cid, customer, body in cmp.expected():
        views, listed = customer.views, body["top_viewed"]
        problems = []
        pids = [item["product_id"] for item in listed]
        if len(set(pids)) != len(pids):
            problems.append("repeated product")
        wrong = {
            item["product_id"]: (item["views"], views.get(item["product_id"], 0))
            for item in listed
            if views.get(item["product_id"], 0) != item["views"]
        }
        if wrong:
            problems.append(f"counts (got, want) {wrong}")
        if len(listed) != min(TOP_N, len(views)):
            problems.append(f"{len(listed)} items, want {min(TOP_N, len(views))}")
        counts = [item["views"] for item in listed]
        if counts != sorted(counts, reverse=True):
            problems.append("not best first")
        if listed:
            floor = min(counts)
            better = {p: n for p, n in views.items() if p not in set(pids) and n > floor}
            if better:
                problems.append(f"left out products with more views {better}")
        if problems:
            out.append(f"{cid}.top_viewed: {'; '.join(problems)}: got {listed!r}")
    return out


def check_consent(cmp: Comparison) -> list[Mismatch]:
    return _fields(cmp, ("consent",))


def check_lifecycle(cmp: Comparison) -> list[Mismatch]:
    return _fields(cmp, ("lifecycle",))


def check_tier(cmp: Comparison) -> list[Mismatch]:
    return _fields(cmp, ("tier",))


def _rfm(cmp: Comparison, part: str, index: int) -> list[Mismatch]:
    out = []
    for cid, customer, body in cmp.expected():
        want = cmp.rfm[cid][index] if cid in cmp.rfm else None
        rfm = body.get("rfm")
        got = rfm.get(part) if isinstance(rfm, dict) else None
        if got != want:
            detail = (
                f"orders={customer.orders} revenue={customer.revenue} "
                f"recency_days={customer.recency_days(cmp.as_of)}"
            )
            out.append(f"{cid}.rfm.{part}: got {got!r}, want {want!r} ({detail})")
    return out


def check_rfm_r(cmp: Comparison) -> list[Mismatch]:
    return _rfm(cmp, "r", 0)


def check_rfm_f(cmp: Comparison) -> list[Mismatch]:
    return _rfm(cmp, "f", 1)


def check_rfm_m(cmp: Comparison) -> list[Mismatch]:
    return _rfm(cmp, "m", 2)


def check_rfm_code(cmp: Comparison) -> list[Mismatch]:
    """``code`` as the three digits r, f, m (the contract names the field, not its form)."""
    out = []
    for cid, _, body in cmp.expected():
        rfm = body.get("rfm")
        if cid not in cmp.rfm:
            continue
        want = "".join(str(s) for s in cmp.rfm[cid])
        got = rfm.get("code") if isinstance(rfm, dict) else None
        if str(got) != want:
            out.append(f"{cid}.rfm.code: got {got!r}, want {want!r}")
    return out


CHECKS: dict[str, Check] = {
    "found": check_found,
    "identity_merge": check_identity_merge,
    "seen": check_seen,
    "orders": check_orders,
    "cart": check_cart,
    "top_viewed": check_top_viewed,
    "consent": check_consent,
    "lifecycle": check_lifecycle,
    "tier": check_tier,
    "rfm_r": check_rfm_r,
    "rfm_f": check_rfm_f,
    "rfm_m": check_rfm_m,
    "rfm_code": check_rfm_code,
}
