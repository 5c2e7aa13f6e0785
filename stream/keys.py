"""Every Redis key name is built here, and nowhere else.

A customer's keys carry the ``{customer_id}`` hash tag, so in a Redis Cluster
all of them live in one slot and one script can touch them atomically.

* ``<p>{<cid>}:state``: hash of ``v`` (version) and ``s`` (state); expires
  ``RAPPORT_RETENTION_DAYS`` after the customer's last write.
* ``<p>product:{<pid>}``: hash; expires ``RAPPORT_RETENTION_DAYS`` after the
  product's last catalog update.
* ``<p>clock``: string (ms); no expiry: one small key, and the engine clock
  must survive idle periods.
"""

from __future__ import annotations


def customer_state(prefix: str, customer_id: str) -> str:
    return f"{prefix}{{{customer_id}}}:state"


def product(prefix: str, product_id: str) -> str:
    return f"{prefix}product:{{{product_id}}}"


def clock(prefix: str) -> str:
    return f"{prefix}clock"
