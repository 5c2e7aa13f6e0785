"""Every Redis key name is built here, and nowhere else.

A customer's keys carry the ``{customer_id}`` hash tag, so in a Redis Cluster
all of them live in one slot and one script can touch them atomically.
Population-level indexes share the ``{rfm}`` or ``{timers}`` tag. An id inside a
tag goes through ``tagged``, which escapes the braces an id may hold.
Retention of each family is in README.md ("Redis keys and retention").
"""

from __future__ import annotations

import hashlib

#: Escaped inside a hash tag: a brace would end (or empty) the tag; ``%`` is the escape.
_TAG_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})


def tagged(name: str) -> str:
    """``{name}``: the hash tag Redis Cluster hashes, so every key built on it shares a slot.

    Redis hashes what lies between the first ``{`` and the first ``}`` after it, so a
    brace inside ``name`` would cut the tag short (``{a}b}`` hashes ``a``) or empty it
    (``{}x}`` hashes the whole key name: two keys of that customer in two slots). A name
    holding a brace is therefore percent-escaped (``%``, ``{``, ``}``) and marked by a
    ``%`` after its closing brace. Every other name is left as it is, so the keys of
    existing customers do not move, and no escaped name can be mistaken for one: an
    ordinary tag is never followed by ``%``.
    """
    if "{" not in name and "}" not in name:
        return f"{{{name}}}"
    return f"{{{name.translate(_TAG_ESCAPES)}}}%"


def customer_state(prefix: str, customer_id: str) -> str:
    return f"{prefix}{tagged(customer_id)}:state"


def erasure_fence(prefix: str, customer_id: str) -> str:
    """Named by a digest, so the fence left after an erasure does not spell the id."""
    digest = hashlib.sha256(customer_id.encode()).hexdigest()[:32]
    return f"{prefix}fence:{digest}"


def product(prefix: str, product_id: str) -> str:
    return f"{prefix}product:{tagged(product_id)}"


def clock(prefix: str) -> str:
    return f"{prefix}clock"


def lease(prefix: str, job: str) -> str:
    """Held by the one worker that runs a periodic population job this period."""
    return f"{prefix}lease:{job}"


def rfm_index(prefix: str, dimension: str) -> str:
    """``r``: last order time, ``f``: orders, ``m``: revenue, by customer id."""
    return f"{prefix}{{rfm}}:{dimension}"


def rfm_segments(prefix: str) -> str:
    return f"{prefix}{{rfm}}:segment"


def timers_due(prefix: str) -> str:
    return f"{prefix}{{timers}}:due"


def timers_leased(prefix: str) -> str:
    return f"{prefix}{{timers}}:leased"


def affinity_index(prefix: str, category: str) -> str:
    """Customers by time-invariant affinity rank for a category (``models.catalog``)."""
    return f"{prefix}{{aff}}:{category}"


def watchers(prefix: str, product_id: str) -> str:
    """Customers who viewed or wishlisted a product, by when they last did."""
    return f"{prefix}{tagged(f'watch:{product_id}')}"


def clv_transactions(prefix: str) -> str:
    """Hash: customer -> their live orders as [[time, value], ...] (input of the CLV fit)."""
    return f"{prefix}{{clv}}:transactions"


def assoc_items_key(prefix: str) -> str:
    return f"{prefix}{{assoc}}:items"


def assoc_pairs_key(prefix: str, product_id: str) -> str:
    return f"{prefix}{{assoc}}:pairs:{product_id}"


def assoc_baskets_key(prefix: str) -> str:
    return f"{prefix}{{assoc}}:baskets"


def assoc_marker_key(prefix: str, token: str) -> str:
    return f"{prefix}{{assoc}}:applied:{token}"


def clv_model_key(prefix: str) -> str:
    return f"{prefix}models:clv"


def campaign_stat_key(prefix: str, campaign: str, group: str, kind: str) -> str:
    return f"{prefix}{tagged(f'camp:{campaign}')}:{group}:{kind}"


def campaign_revenue_key(prefix: str, campaign: str, group: str, kind: str) -> str:
    return f"{campaign_stat_key(prefix, campaign, group, kind)}:revenue"


def log_position(prefix: str, topic: str, partition: int) -> str:
    """``<epoch>:<highest offset applied>`` of one source partition (``stream.offsets``)."""
    return f"{prefix}log:{topic}/{partition}"
