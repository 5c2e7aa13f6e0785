"""The soak's checks: what the engine did against what the independent reference expects.

Each check is a function ``(Expected, Observed) -> list of problems`` (readable lines naming
the customer and the field, empty when it passes); ``run_checks`` runs them all and keeps
every problem, so a report can give counts and a few examples of each.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.integration import independent, profile_checks
from tests.integration.independent import Boundary, Customer, Reference, Refused

#: Profile field families compared with the reference (``tests/integration/profile_checks``).
PROFILE_CHECKS = (
    "found",
    "identity_merge",
    "seen",
    "orders",
    "cart",
    "consent",
    "lifecycle",
    "tier",
)
#: A profile keeps its 50 most recently viewed products (README, models/profile.py
#: MAX_VIEWED): view counts are exact only for customers who viewed no more than that.
VIEWED_KEPT = 50
TIMER_STAGES = ("lifecycle:at_risk", "lifecycle:lapsed")
STORED_FAMILIES = ("lifecycle:", "tier:")


@dataclass
class Expected:
    """The reference over every record delivered so far."""

    reference: Reference
    refused: list[Refused]
    topic_prefix: str
    strict_republish: bool  # no fault: not even an identical record may be published twice

    @property
    def clock(self) -> int:
        assert self.reference.clock is not None, "no event accepted"
        return self.reference.clock


@dataclass
class Observed:
    """What the engine shows once a phase has drained."""

    answers: dict[str, tuple[int, Any]]  # GET /customers/{id}?as_of=<clock>
    watermark: int | None  # GET /health
    segments: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    deadletters: list[dict[str, Any]]
    timers_due: int  # due entries at or before the engine clock, still unclaimed
    timers_leased: int
    timer_index: dict[str, int] = field(default_factory=dict)  # customer -> next timer, ms
    counted: dict[tuple[str, str], float] | None = None  # None: a worker restarted


@dataclass
class Result:
    name: str
    problems: list[str] = field(default_factory=list)
    skipped: bool = False  # the check does not apply to this run (the report says SKIP)

    @property
    def ok(self) -> bool:
        return not self.problems


#: Problems found, or None when the check does not apply (e.g. nothing to compare).
Check = Callable[[Expected, Observed], list[str] | None]


# -- the profiles ------------------------------------------------------------------------------


def profile_check(name: str) -> Check:
    def run(exp: Expected, obs: Observed) -> list[str]:
        cmp = profile_checks.Comparison(exp.reference, exp.clock, obs.answers, {})
        return profile_checks.CHECKS[name](cmp)

    run.__name__ = f"check_{name}"
    return run


def check_top_viewed(exp: Expected, obs: Observed) -> list[str]:
    """Exact view counts, best first, for customers within the documented bound."""
    kept = {cid: c for cid, c in exp.reference.customers.items() if len(c.views) <= VIEWED_KEPT}
    bounded = dataclasses.replace(exp.reference, customers=kept)
    cmp = profile_checks.Comparison(bounded, exp.clock, obs.answers, {})
    return profile_checks.check_top_viewed(cmp)


def check_clock(exp: Expected, obs: Observed) -> list[str]:
    """The engine clock is the largest event time accepted (refused records never move it)."""
    if obs.watermark == exp.clock:
        return []
    got = independent.rfc3339(obs.watermark) if obs.watermark else None
    return [
        f"engine clock {obs.watermark} ({got}), want {exp.clock} ({independent.rfc3339(exp.clock)})"
    ]


def check_stored_segments(exp: Expected, obs: Observed) -> list[str]:
    """The stored lifecycle and tier memberships are those at the engine clock: every
    lifecycle boundary up to it was reached (by a timer when no event came)."""
    out = []
    for cid, customer in exp.reference.customers.items():
        status, body = obs.answers[cid]
        if status != 200:
            continue
        got = sorted(s for s in body.get("segments") or [] if s.startswith(STORED_FAMILIES))
        want = sorted(expected_memberships(customer, exp.clock))
        if got != want:
            timer = independent.rfc3339(obs.timer_index[cid]) if cid in obs.timer_index else None
            out.append(
                f"{cid}.segments: got {got}, want {want} ({describe(customer, exp)}; "
                f"next timer in the index: {timer})"
            )
    return out


def expected_memberships(customer: Customer, at: int) -> set[str]:
    tier = customer.tier()
    return {f"lifecycle:{customer.lifecycle(at)}", *([f"tier:{tier}"] if tier else [])}


def describe(customer: Customer, exp: Expected) -> str:
    placed = sorted(independent.rfc3339(ts) or "" for _, ts in customer.counted_orders().values())
    return f"orders at {placed}, clock {independent.rfc3339(exp.clock)}"


# -- the segments topic ------------------------------------------------------------------------


@dataclass
class Folded:
    """Each customer's segment changes folded in topic order."""

    changes: dict[str, list[dict[str, Any]]]  # without republished copies
    inside: dict[str, set[str]]  # memberships at the end
    problems: list[str]


def fold_segments(records: Iterable[dict[str, Any]]) -> Folded:
    """Enter/exit per customer and segment must alternate. A change that does not (enters
    a segment the customer is in, or leaves one they are not in) but is identical to one
    seen before (same segment, change and ts) is a republication after a crash (the outbox
    is at-least-once: a crash between publishing and settling sends the customer's whole
    outbox again, same content) and is skipped; any other repeat is a problem (a doubled
    timer, a lost or re-applied state)."""
    out = Folded({}, {}, [])
    seen: set[tuple[str, str, str, str]] = set()
    for r in records:
        cid, segment, change = r["customer_id"], r["segment"], r["change"]
        inside = out.inside.setdefault(cid, set())
        key = (cid, segment, change, r["ts"])
        if (change == "enter") == (segment in inside):
            if key not in seen:
                verb = "entered" if change == "enter" else "left"
                out.problems.append(f"{cid}: {verb} {segment} at {r['ts']} twice in a row")
            continue
        seen.add(key)
        (inside.add if change == "enter" else inside.discard)(segment)
        out.changes.setdefault(cid, []).append(r)
    return out


def check_segments_consistent(exp: Expected, obs: Observed) -> list[str]:
    """Folding each customer's segment changes never enters a segment twice or leaves one it
    is not in, and ends in the memberships the profile stores (lifecycle and tier)."""
    folded = fold_segments(obs.segments)
    out = list(folded.problems)
    for cid, inside in folded.inside.items():
        status, body = obs.answers.get(cid, (None, None))
        if status == 200 and cid in exp.reference.customers:
            stored = {s for s in body.get("segments") or [] if s.startswith(STORED_FAMILIES)}
            ended = {s for s in inside if s.startswith(STORED_FAMILIES)}
            if stored != ended:
                out.append(
                    f"{cid}: segments topic ends in {sorted(ended)}, profile {sorted(stored)}"
                )
    return out


def entries(obs: Observed) -> dict[tuple[str, str], list[int]]:
    """(customer, at_risk|lapsed) -> event times of its distinct entries."""
    out: dict[tuple[str, str], list[int]] = {}
    for cid, changes in fold_segments(obs.segments).changes.items():
        for r in changes:
            if r["change"] == "enter" and r["segment"] in TIMER_STAGES:
                stamps = out.setdefault((cid, r["segment"]), [])
                if (ts := independent.to_ms(r["ts"])) not in stamps:
                    stamps.append(ts)
    return out


def expected_boundaries(exp: Expected) -> list[Boundary]:
    return [
        b
        for customer in exp.reference.customers.values()
        for b in independent.boundaries(customer, until=exp.clock)
    ]


def check_timers_exact(exp: Expected, obs: Observed) -> list[str]:
    """Every at_risk/lapsed boundary up to the engine clock was entered at exactly last order
    + 90/180 days (contract section 4), whether or not another event came."""
    seen = entries(obs)
    out = []
    for b in expected_boundaries(exp):
        if not b.timer:
            continue
        got = seen.get((b.customer_id, b.segment), [])
        if b.ts in got:
            continue
        later = sorted(ts for ts in got if ts > b.ts)
        customer = exp.reference.customers[b.customer_id]
        out.append(
            f"{b.customer_id}: {b.segment} due {independent.rfc3339(b.ts)}: "
            + late_entry(customer, b, later[0] if later else None)
        )
    return out


def late_entry(customer: Customer, boundary: Boundary, entered: int | None) -> str:
    """How a missed boundary was reached instead: by the customer's next event (which the
    engine applied before the timer fired), or not at all."""
    after = next((ts for ts in customer.stamps if ts > boundary.ts), None)
    if entered is None:
        return "never entered"
    how = f"entered at {independent.rfc3339(entered)} instead"
    if after == entered:
        return f"{how}, the time of the customer's next event (it overtook the timer)"
    return f"{how}; the customer's next event is at {independent.rfc3339(after)}"


def check_timers_explained(exp: Expected, obs: Observed) -> list[str]:
    """Every at_risk/lapsed entry falls between a boundary the reference knows and the
    customer's next counted order (no spurious or doubled lifecycle timer)."""
    windows: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for b in expected_boundaries(exp):
        customer = exp.reference.customers[b.customer_id]
        placed = sorted(ts for _, ts in customer.counted_orders().values())
        until = next((ts for ts in placed if ts > b.ts), exp.clock)
        windows.setdefault((b.customer_id, b.segment), []).append((b.ts, until))
    out = []
    for (cid, segment), stamps in entries(obs).items():
        for ts in stamps:
            if not any(lo <= ts <= hi for lo, hi in windows.get((cid, segment), [])):
                out.append(f"{cid}: entered {segment} at {independent.rfc3339(ts)}, unexplained")
    return out


def check_timers_settled(exp: Expected, obs: Observed) -> list[str]:
    """Once drained, no timer due by the engine clock is left unclaimed or leased."""
    out = []
    if obs.timers_due:
        out.append(f"{obs.timers_due} timers due by the engine clock never fired")
    if obs.timers_leased:
        out.append(f"{obs.timers_leased} timer leases left behind")
    return out


# -- messages and deadletters ------------------------------------------------------------------


def check_messages_consent(exp: Expected, obs: Observed) -> list[str]:
    """Every message's customer had consent for its channel at its send time (event time:
    the latest consent fact at or before ``send_at``; a tie keeps the revocation)."""
    out = []
    for m in {m["message_id"]: m for m in obs.messages}.values():
        cid = independent.resolve(exp.reference.merged, m["customer_id"])
        customer = exp.reference.customers.get(cid)
        at = independent.to_ms(m["send_at"])
        if customer is None or not customer.consent_at(m["channel"], at):
            log = customer.consent_log.get(m["channel"]) if customer else None
            out.append(
                f"{cid}: {m['campaign']} by {m['channel']} at {m['send_at']} without consent "
                f"(consent facts {log})"
            )
    return out


def check_message_ids(exp: Expected, obs: Observed) -> list[str]:
    """A message id names one message: copies of it are identical (a republication after a
    crash), and without faults there are no copies at all."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for m in obs.messages:
        by_id.setdefault(m["message_id"], []).append(m)
    out = []
    for mid, copies in by_id.items():
        if any(c != copies[0] for c in copies[1:]):
            out.append(f"{mid}: {len(copies)} different messages share this id: {copies[:2]}")
        elif len(copies) > 1 and exp.strict_republish:
            out.append(f"{mid}: published {len(copies)} times with no fault")
    return out


def check_deadletter(exp: Expected, obs: Observed) -> list[str]:
    """Every refused record is in deadletter (same topic, same payload) and nothing else is."""
    found = Counter((d["source_topic"], d["payload"]) for d in obs.deadletters)
    wanted = Counter(
        (exp.topic_prefix + r.topic, r.payload.decode("utf-8", "replace")) for r in exp.refused
    )
    out = [
        f"refused ({r.reason}) but not in deadletter: {r.topic} {r.payload[:120]!r}"
        for r in exp.refused
        if found[(exp.topic_prefix + r.topic, r.payload.decode("utf-8", "replace"))] == 0
    ]
    for (topic, payload), n in found.items():
        if (topic, payload) not in wanted:
            out.append(f"deadlettered {n}x but valid: {topic} {payload[:160]}")
    return out


def check_applied_counts(exp: Expected, obs: Observed) -> list[str] | None:
    """``events_applied`` of each profile (records applied to it, never a redelivery) is
    the number of distinct events the reference applied: a record applied twice shows.
    Records of a merged anonymous id count where they were applied: under the anonymous id
    before the hand-over, here after it (forwarded), so a customer who absorbed one may
    count between their own events and their own plus the anonymous ones."""
    out = []
    exposed = False
    for cid, customer in exp.reference.customers.items():
        status, body = obs.answers[cid]
        if status != 200 or body.get("events_applied") is None:
            continue
        exposed = True
        got, own = body["events_applied"], customer.events - customer.borrowed
        if not own <= got <= own + customer.borrowed:
            want = own if not customer.borrowed else f"{own}..{own + customer.borrowed}"
            out.append(f"{cid}.events_applied: got {got}, want {want}")
    return out if exposed else None


def check_event_counts(exp: Expected, obs: Observed) -> list[str] | None:
    """``rapport_events_total`` of the contract topics against the reference (one worker that
    never restarted): refused = rejected, redeliveries = duplicate, accepted >= distinct
    (records of a merged anonymous id are forwarded once more, and counted there too)."""
    if obs.counted is None:
        return None
    count = Counter()
    for (topic, outcome), value in obs.counted.items():
        if topic in independent.CUSTOMER_TOPICS:
            count[outcome] += int(value)
    out = []
    if count["rejected"] != len(exp.refused):
        out.append(f"rejected {count['rejected']}, want {len(exp.refused)}")
    if count["duplicate"] != exp.reference.duplicates:
        out.append(f"duplicate {count['duplicate']}, want {exp.reference.duplicates}")
    if count["accepted"] < exp.reference.accepted:
        out.append(f"accepted {count['accepted']}, want at least {exp.reference.accepted}")
    return out


CHECKS: dict[str, Check] = {
    **{name: profile_check(name) for name in PROFILE_CHECKS},
    "top_viewed": check_top_viewed,
    "clock": check_clock,
    "stored_segments": check_stored_segments,
    "segments_consistent": check_segments_consistent,
    "timers_exact": check_timers_exact,
    "timers_explained": check_timers_explained,
    "timers_settled": check_timers_settled,
    "message_consent": check_messages_consent,
    "message_ids": check_message_ids,
    "deadletter": check_deadletter,
    "applied_counts": check_applied_counts,
    "event_counts": check_event_counts,
}


def run_checks(exp: Expected, obs: Observed) -> list[Result]:
    results = []
    for name, check in CHECKS.items():
        problems = check(exp, obs)
        results.append(Result(name, problems or [], skipped=problems is None))
    return results
