"""Key names: every key of one customer (product, campaign) hashes to one Redis Cluster slot.

The tag is computed here as Redis computes it (``keyHashSlot`` in cluster.c): the
text between the first ``{`` and the first ``}`` after it, if that is not empty;
otherwise the whole key name is hashed.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream import keys

#: Ids of 1..128 characters, any code point Redis can store, braces and ``%`` favoured.
ids = st.text(
    alphabet=st.one_of(st.sampled_from("{}%:/ 7B"), st.characters(codec="utf-8")),
    min_size=1,
    max_size=128,
)
prefixes = st.sampled_from(["rapport:", "test:ab12cd34:", ""])
suffixes = st.sampled_from([":state", ":outbox", "", ":x}y", ":{z}"])


def redis_tag(key: str) -> str:
    """What Redis hashes for ``key``: its tag, or the whole name when there is none."""
    start = key.find("{")
    if start == -1:
        return key
    end = key.find("}", start + 1)
    if end == -1 or end == start + 1:
        return key
    return key[start + 1 : end]


def customer_keys(prefix: str, customer_id: str, suffix: str) -> list[str]:
    """Every key builder that names a customer in its tag, plus one built like them
    with another suffix (a key family added later)."""
    return [
        keys.customer_state(prefix, customer_id),
        f"{prefix}{keys.tagged(customer_id)}{suffix}",
    ]


@given(prefix=prefixes, customer_id=ids, suffix=suffixes)
def test_every_key_of_a_customer_hashes_the_same_tag(
    prefix: str, customer_id: str, suffix: str
) -> None:
    tags = {redis_tag(key) for key in customer_keys(prefix, customer_id, suffix)}

    assert len(tags) == 1
    (tag,) = tags
    assert tag and "{" not in tag and "}" not in tag  # a real tag, not the whole key name


@given(prefix=prefixes, a=ids, b=ids)
def test_two_customers_never_share_a_key(prefix: str, a: str, b: str) -> None:
    assert (keys.customer_state(prefix, a) == keys.customer_state(prefix, b)) == (a == b)


@given(a=ids, b=ids)
def test_two_products_never_share_a_key(a: str, b: str) -> None:
    for build in (keys.product, keys.watchers):
        assert (build("p:", a) == build("p:", b)) == (a == b)


def test_escaped_ids_cannot_meet_ordinary_ones() -> None:
    """``a{`` is escaped to ``a%7B``; the customer literally called ``a%7B`` keeps its key."""
    assert keys.customer_state("r:", "a{") != keys.customer_state("r:", "a%7B")
    assert keys.customer_state("r:", "}") != keys.customer_state("r:", "%7D")


@given(prefix=prefixes, customer_id=ids.filter(lambda i: "{" not in i and "}" not in i))
def test_ordinary_ids_keep_their_key_names(prefix: str, customer_id: str) -> None:
    """Ids without braces (``%`` included) are stored where they always were."""
    assert keys.customer_state(prefix, customer_id) == f"{prefix}{{{customer_id}}}:state"
    assert keys.product(prefix, customer_id) == f"{prefix}product:{{{customer_id}}}"
    assert keys.watchers(prefix, customer_id) == f"{prefix}{{watch:{customer_id}}}"


@given(product_id=ids)
def test_product_keys_have_a_tag_of_their_own(product_id: str) -> None:
    for key in (keys.product("r:", product_id), keys.watchers("r:", product_id)):
        tag = redis_tag(key)
        assert tag and tag != key and "}" not in tag


@given(campaign=ids)
def test_every_key_of_a_campaign_hashes_the_same_tag(campaign: str) -> None:
    built = [
        build("r:", campaign, group, kind)
        for build in (keys.campaign_stat_key, keys.campaign_revenue_key)
        for group in ("treatment", "holdout")
        for kind in ("exposed", "converted")
    ]

    assert len({redis_tag(key) for key in built}) == 1
    assert redis_tag(built[0]) != built[0]
