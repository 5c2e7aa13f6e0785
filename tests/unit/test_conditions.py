"""Audience conditions: the safe expression language, its semantics and its refusals."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from models.conditions import (
    MAX_DEPTH,
    MAX_LENGTH,
    Condition,
    ConditionError,
    compile_condition,
)

BIG = 10**400  # too large for a float

FACTS: dict[str, object] = {
    "orders": 3,
    "revenue": 250.0,
    "days_since_last_order": 45,
    "lifecycle": "at_risk",
    "segments": frozenset({"rfm:champions", "tier:gold"}),
    "tags": ["vip", "newsletter"],
    "consent": {"email": True, "sms": False},
    "affinity": {"shoes": 0.7, "bags": 0.2},
    "attributes": {"city": "Berlin", "zip": None, "nested": {"deep": {"value": 7}}},
    "trigger": {"price": 80, "previous_price": 100},
    "cart_value": 0,
    "name": "Ada",
    "zero": 0,
    "nothing": None,
    "flag": True,
    "pair": (1, 2),
}


class Exploding(Mapping[str, object]):
    """A mapping whose reads fail: a path through it must give None, not raise."""

    def __getitem__(self, key: str) -> object:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return "Exploding()"


class Hostile:
    """A fact value whose every hook raises."""

    price = 1  # an attribute, which a path must never read

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq")

    def __bool__(self) -> bool:
        raise RuntimeError("bool")

    def __hash__(self) -> int:
        raise RuntimeError("hash")

    def __lt__(self, other: object) -> bool:
        raise RuntimeError("lt")

    def __repr__(self) -> str:
        return "Hostile()"


EVALUATIONS: list[tuple[str, Mapping[str, object], bool]] = [
    # the brief's examples
    ('orders >= 2 and lifecycle in ["at_risk", "lapsed"] and not consent.sms', FACTS, True),
    ('orders >= 2 and lifecycle in ["active"] and not consent.sms', FACTS, False),
    ('affinity.shoes > 0.5 or "rfm:champions" in segments', FACTS, True),
    ('affinity.bags > 0.5 or "rfm:hibernating" in segments', FACTS, False),
    ("days_since_last_order >= 30 and revenue < 1000", FACTS, True),
    ("trigger.price < trigger.previous_price * 0.9", FACTS, True),
    ("trigger.price < trigger.previous_price * 0.8", FACTS, False),
    ('attributes.city == "Berlin"', FACTS, True),
    ("cart_value >= 20", FACTS, False),
    # every comparison operator, both outcomes
    ("orders == 3", FACTS, True),
    ("orders == 4", FACTS, False),
    ("orders != 4", FACTS, True),
    ("orders != 3", FACTS, False),
    ("orders < 4", FACTS, True),
    ("orders < 3", FACTS, False),
    ("orders <= 3", FACTS, True),
    ("orders <= 2", FACTS, False),
    ("orders > 2", FACTS, True),
    ("orders > 3", FACTS, False),
    ("orders >= 3", FACTS, True),
    ("orders >= 4", FACTS, False),
    ("orders == 3.0", FACTS, True),
    ('name < "Bob"', FACTS, True),
    ('name >= "Bob"', FACTS, False),
    # chained comparisons
    ("1 <= orders < 5", FACTS, True),
    ("1 <= orders < 3", FACTS, False),
    ("0 < cart_value <= 10", FACTS, False),
    ("1 < 2 < orders < revenue", FACTS, True),
    ("5 > 2 < orders", FACTS, True),
    ("5 > 2 > orders", FACTS, False),
    ("1 < nothing < 5", FACTS, False),
    # boolean operators, short-circuit and truthiness
    ("orders > 1 and revenue > 100", FACTS, True),
    ("orders > 1 and revenue > 1000", FACTS, False),
    ("orders > 5 or revenue > 100", FACTS, True),
    ("orders > 5 or revenue > 1000", FACTS, False),
    ("not orders > 5", FACTS, True),
    ("not not orders", FACTS, True),
    ("consent.email", FACTS, True),
    ("consent.sms", FACTS, False),
    ("not consent.sms", FACTS, True),
    ("not consent.push", FACTS, True),
    ("cart_value", FACTS, False),
    ("tags", FACTS, True),
    ("name", FACTS, True),
    ("missing", FACTS, False),
    ("nothing", FACTS, False),
    ("(orders > 1 or missing) and (flag or missing)", FACTS, True),
    ("orders > 1 and (missing or nothing)", FACTS, False),
    ("false or orders and true", FACTS, True),
    # aliases and Python spellings of the constants
    ("true", {}, True),
    ("false", {}, False),
    ("null", {}, False),
    ("True and not False and not None", {}, True),
    ("flag == true", FACTS, True),
    ("flag == false", FACTS, False),
    ("consent.sms == false", FACTS, True),
    ("[true, false, null] == [True, False, None]", {}, True),
    # None semantics: missing / None compare false, except against the literal null
    ("missing == 1", FACTS, False),
    ("missing != 1", FACTS, False),
    ("missing < 1", FACTS, False),
    ("missing >= 1", FACTS, False),
    ('attributes.country != "DE"', FACTS, False),
    ("missing == null", FACTS, True),
    ("null == missing", FACTS, True),
    ("missing != null", FACTS, False),
    ("nothing == null", FACTS, True),
    ("attributes.zip == null", FACTS, True),
    ("attributes.zip.code == null", FACTS, True),
    ("orders == null", FACTS, False),
    ("orders != null", FACTS, True),
    ("null != orders", FACTS, True),
    ("cart_value != null", FACTS, True),
    ("consent.sms != null", FACTS, True),
    ("null == null", {}, True),
    ("null != null", {}, False),
    ("missing == other_missing", FACTS, False),
    ("missing != other_missing", FACTS, False),
    ("orders < null", FACTS, False),
    ("null in [null]", {}, False),
    ("missing in [1, 2]", FACTS, False),
    ("missing not in [1, 2]", FACTS, False),
    ("1 in missing", FACTS, False),
    ("1 not in missing", FACTS, False),
    ("missing + 1 == null", FACTS, True),  # arithmetic with None is None
    ("missing == nothing", FACTS, False),  # the exception is the literal null only
    # paths
    ("attributes.nested.deep.value == 7", FACTS, True),
    ("attributes.nested.deep.value.more == null", FACTS, True),
    ("name.first == null", FACTS, True),  # through a string: None
    ("tags.vip == null", FACTS, True),  # through a list: None
    ("price.amount > 1", {"price": Hostile()}, False),  # never getattr on facts
    ("box.price == 1", {"box": Hostile()}, False),
    ("broken.key == null", {"broken": Exploding()}, True),
    ("broken.key", {"broken": Exploding()}, False),
    # ordering between incompatible types is false, never an error
    ('orders < "5"', FACTS, False),
    ('orders >= "5"', FACTS, False),
    ("name > 1", FACTS, False),
    ("tags < [1]", FACTS, False),
    ("flag > 0", FACTS, False),  # bools are not numbers for ordering
    ("consent < consent", FACTS, False),
    ('orders == "3"', FACTS, False),
    ('orders != "3"', FACTS, True),
    # membership: list, tuple, set, frozenset, string, mapping
    ('lifecycle in ["at_risk", "lapsed"]', FACTS, True),
    ('lifecycle in ("at_risk", "lapsed")', FACTS, True),
    ('lifecycle not in ["at_risk", "lapsed"]', FACTS, False),
    ('"vip" in tags', FACTS, True),
    ('"gold" in tags', FACTS, False),
    ('"gold" not in tags', FACTS, True),
    ('"tier:gold" in segments', FACTS, True),
    ('"tier:gold" in sets', {"sets": {"tier:gold"}}, True),
    ('"tier:silver" not in sets', {"sets": {"tier:gold"}}, True),
    ("2 in pair", FACTS, True),
    ('"Berl" in attributes.city', FACTS, True),
    ('"Paris" in attributes.city', FACTS, False),
    ('"Paris" not in attributes.city', FACTS, True),
    ("1 in name", FACTS, False),  # a number is never in a string
    ("1 not in name", FACTS, False),
    ('"sms" in consent', FACTS, True),  # mapping: key membership
    ('"push" in consent', FACTS, False),
    ('"push" not in consent', FACTS, True),
    ("false in consent", FACTS, False),  # keys, not values
    ("1 in orders", FACTS, False),  # not a container
    ("1 not in orders", FACTS, False),
    ("[1, 2] in segments", FACTS, False),
    ("[1, 2] in nested", {"nested": [[1, 2], [3]]}, True),
    ("[1, 2] in keyed", {"keyed": {(1, 2): "x"}}, True),
    ("orders in [1, 2, 3]", FACTS, True),
    ("orders in [1.0, -3]", FACTS, False),
    ("-3 in [1.0, -3]", {}, True),
    ("pair == [1, 2]", FACTS, True),
    ('tags == ("vip", "newsletter")', FACTS, True),
    ('tags != ["vip"]', FACTS, True),
    # arithmetic
    ("orders + 1 == 4", FACTS, True),
    ("orders - 1 == 2", FACTS, True),
    ("orders * 2 == 6", FACTS, True),
    ("orders / 2 == 1.5", FACTS, True),
    ("revenue / orders > 80", FACTS, True),
    ("1 + 2 * 3 == 7", {}, True),
    ("(1 + 2) * 3 == 9", {}, True),
    ("-orders == -3", FACTS, True),
    ("-(orders - 5) == 2", FACTS, True),
    ("- -orders == 3", FACTS, True),
    ("orders - -1 == 4", FACTS, True),
    ("orders / zero == null", FACTS, True),  # division by zero is None
    ("orders / zero > 0", FACTS, False),
    ("orders / zero <= 0", FACTS, False),
    ("orders / 0 != 1", FACTS, False),
    ("not orders / 0", FACTS, True),
    ("missing + 1 > 0", FACTS, False),
    ("missing * 0 < 1", FACTS, False),
    ('name + "x" == "Adax"', FACTS, False),  # strings are not numbers
    ("flag + 1 == 2", FACTS, False),  # neither are bools
    ("-name == null", FACTS, True),
    ("-name != 1", FACTS, False),
    ("-flag < 0", FACTS, False),
    ("orders * 2", FACTS, True),
    ("orders - 3", FACTS, False),
    ("big / 1 > 0", {"big": BIG}, False),  # overflow to float: None
    ("big + 0.5 > 0", {"big": BIG}, False),
    ("big * 2 > big", {"big": BIG}, True),  # ints stay exact
    ("x * 1e308 * 10 > 1e308", {"x": 10.0}, True),  # float overflow is inf, not an error
    # hostile values: false, never an error
    ("h == 1", {"h": Hostile()}, False),
    ("h != 1", {"h": Hostile()}, False),
    ("h", {"h": Hostile()}, False),
    ("not h", {"h": Hostile()}, True),
    ("h in [1]", {"h": Hostile()}, False),
    ("h in segments", {"h": Hostile(), "segments": {1}}, False),
    ("h not in segments", {"h": Hostile(), "segments": {1}}, False),
    ("1 in hs", {"hs": [Hostile()]}, False),
]


@pytest.mark.parametrize(("text", "facts", "expected"), EVALUATIONS)
def test_evaluate(text: str, facts: Mapping[str, object], expected: bool) -> None:
    result = compile_condition(text).evaluate(facts)
    assert result is expected


REJECTED: list[tuple[str, str]] = [
    ('__import__("os")', "function calls"),
    ("orders.__class__", "'_'"),
    ("_private", "'_'"),
    ("a._b.c", "'_'"),
    ('open("x")', "function calls"),
    ("len(tags) > 1", "function calls"),
    ("orders.bit_length()", "function calls"),
    ("[x for x in y]", "comprehensions"),
    ("{x for x in y}", "comprehensions"),
    ("{x: 1 for x in y}", "comprehensions"),
    ("any(x for x in y)", "function calls"),
    ("a[0]", "indexing"),
    ('attributes["city"] == "Berlin"', "indexing"),
    ("a[1:2]", "indexing"),
    ("lambda: 1", "lambda"),
    ('f"{a}"', "f-strings"),
    ('f"plain"', "f-strings"),
    ("a := 1", ":="),
    ("orders > 1 and (a := 1)", ":="),
    ("1 if a else 2", "conditional"),
    ('{"a": 1}', "mapping literals"),
    ("{1, 2}", "set literals"),
    ("[a, b]", "constants"),
    ("x in [1, [2]]", "constants"),
    ("x in [1 + 1]", "constants"),
    ("[*a]", "constants"),
    ("x is None", "'is'"),
    ("x is not null", "'is not'"),
    ("orders // 2", "'//'"),
    ("orders % 2", "'%'"),
    ("2 ** 100000", "'**'"),
    ("a | b", "'|'"),
    ("a & b", "'&'"),
    ("a ^ b", "'^'"),
    ("a << 2", "'<<'"),
    ("~a", "'~'"),
    ("+a", "'unary +'"),
    ("a @ b", "'@'"),
    ('b"bytes"', "bytes"),
    ("1j", "complex"),
    ("...", "Ellipsis"),
    ("true.x", "constant"),
    ('"abc".upper', "attributes are only allowed on field paths"),
    ("(a + b).c", "attributes are only allowed on field paths"),
    ("orders >", "invalid syntax"),
    ("orders > 1 and", "invalid syntax"),
    ("(orders > 1", "invalid syntax"),
    ("orders > 1)", "invalid syntax"),
    ("a ) or ( b", "invalid syntax"),
    ("orders = 1", "invalid syntax"),
    ("import os", "invalid syntax"),
    ("orders > 1; x", "invalid syntax"),
    ("a\x00", "null bytes"),
    ("", "empty"),
    ("   ", "empty"),
    ("x" * (MAX_LENGTH + 1), "longer than"),
    ("not " * MAX_DEPTH + "a", "nested"),
    ("-" * 300 + "1", "nested"),
    ("1" + " + 1" * MAX_DEPTH, "nested"),
    ("(" * 250 + "a" + ")" * 250, "invalid syntax"),
]


@pytest.mark.parametrize(("text", "fragment"), REJECTED)
def test_rejected(text: str, fragment: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)
    assert fragment in caught.value.message
    assert caught.value.column >= 1
    assert f"column {caught.value.column}" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ('open("x")', 1),
        ('orders > 1 and open("x")', 16),
        ("  orders.__class__", 3),
        ("orders > 1 and a[0]", 16),
        ('"é" == a[0]', 8),  # characters, not UTF-8 bytes
        ("orders > 1 and a := 1", 18),
        ("orders >", 9),  # the end of the text
        ("orders > 1 and  ", 15),
        ("orders > > 1", 10),
        ("x" * (MAX_LENGTH + 1), MAX_LENGTH + 1),
    ],
)
def test_error_column(text: str, column: int) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)
    assert caught.value.column == column
    assert caught.value.line == 1


def test_error_line_and_column_in_multiline_text() -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition("(orders > 1\n and lifecycle.__dict__)")
    assert (caught.value.line, caught.value.column) == (2, 6)
    assert str(caught.value).endswith("(line 2, column 6)")


def test_limits_are_inclusive() -> None:
    deepest = compile_condition("not " * (MAX_DEPTH - 1) + "a")  # the path is level MAX_DEPTH
    assert deepest.fields == {"a"}
    long_text = "a == " + '"' + "x" * (MAX_LENGTH - 7) + '"'
    assert len(long_text) == MAX_LENGTH
    assert compile_condition(long_text).evaluate({"a": "x" * (MAX_LENGTH - 7)})
    dotted = ".".join(["a"] * 100)  # a long path is one level, not a hundred
    assert compile_condition(dotted).fields == {dotted}


ROOTS = frozenset({"orders", "revenue", "lifecycle", "consent", "trigger", "true", "false"})


@pytest.mark.parametrize(
    ("text", "unknown", "column"),
    [
        ("ordrs > 1", "ordrs", 1),
        ("orders > 1 and lifecyle == 'x'", "lifecyle", 16),
        ("consent.sms or sms.consent", "sms", 16),
        ("revenue / orders > price", "price", 20),
    ],
)
def test_unknown_root(text: str, unknown: str, column: int) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(text, known_roots=ROOTS)
    assert caught.value.message.startswith(f"unknown field {unknown!r}")
    assert "known: consent, lifecycle, orders, revenue, trigger" in caught.value.message
    assert caught.value.column == column


def test_unknown_root_suggests_the_closest_name() -> None:
    with pytest.raises(ConditionError, match=r"did you mean 'orders'\?"):
        compile_condition("ordrs > 1", known_roots=ROOTS)


def test_known_roots_accept_paths_and_ignore_constants() -> None:
    condition = compile_condition(
        "orders > 1 and consent.sms.granted and x == null", known_roots=ROOTS | {"x"}
    )
    assert condition.fields == {"orders", "consent.sms.granted", "x"}
    compile_condition("true and not false and null == null", known_roots=frozenset())


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("true", set()),
        ('"a" in ["a"]', set()),
        ("orders >= 2 and not consent.sms", {"orders", "consent.sms"}),
        (
            "trigger.price < trigger.previous_price * 0.9",
            {"trigger.price", "trigger.previous_price"},
        ),
        ("a.b.c == a.b or a", {"a.b.c", "a.b", "a"}),
        ("-x + y / z in w", {"x", "y", "z", "w"}),
    ],
)
def test_fields(text: str, fields: set[str]) -> None:
    assert compile_condition(text).fields == frozenset(fields)


def test_condition_keeps_its_text_and_is_a_frozen_value() -> None:
    text = '  orders >= 2 and lifecycle in ["at_risk"]  '
    condition = compile_condition(text)
    assert str(condition) == text
    assert condition.text == text
    assert condition == compile_condition(text)
    assert hash(condition) == hash(compile_condition(text))
    with pytest.raises(AttributeError):
        condition.text = "true"  # type: ignore[misc]


def test_error_is_a_value_error_with_message_and_column() -> None:
    error = ConditionError("nope", 7)
    assert isinstance(error, ValueError)
    assert (error.message, error.column, error.line) == ("nope", 7, 1)
    assert str(error) == "nope (column 7)"


def test_evaluate_accepts_any_mapping_and_never_mutates_it() -> None:
    facts = {"consent": {"sms": True}}
    condition = compile_condition("consent.sms and consent.email == null")
    assert condition.evaluate(facts) is True
    assert facts == {"consent": {"sms": True}}
    assert condition.evaluate(Exploding()) is False


# --- property: anything the grammar produces compiles, and evaluates to a bool without raising --

NAMES = ("a", "b", "c", "orders", "consent")
PATHS = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(".".join)
SCALARS = st.one_of(
    st.integers(-5, 5).map(str),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=5).map(repr),
    st.sampled_from(["true", "false", "null", "True", "False", "None", "0", "0.0", '""']),
)
LISTS = st.lists(SCALARS, max_size=4).map(lambda items: "[" + ", ".join(items) + "]")
LEAVES = st.one_of(PATHS, SCALARS, LISTS)
COMPARATORS = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"])


def expression_texts(depth: int) -> st.SearchStrategy[str]:
    """Texts from the grammar, at most ``depth`` operators deep (well under ``MAX_DEPTH``)."""
    if depth == 0:
        return LEAVES
    sub = expression_texts(depth - 1)
    paren = sub.map(lambda text: f"({text})")
    return st.one_of(
        LEAVES,
        paren,
        paren.map(lambda text: f"not {text}"),
        paren.map(lambda text: f"-{text}"),
        st.tuples(paren, st.sampled_from(["and", "or"]), paren).map(" ".join),
        st.tuples(paren, st.sampled_from(["+", "-", "*", "/"]), paren).map(" ".join),
        st.tuples(paren, COMPARATORS, paren).map(" ".join),
        st.tuples(paren, COMPARATORS, paren, COMPARATORS, paren).map(" ".join),
    )


FACT_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),  # nan and inf included
        st.text(max_size=5),
        st.sampled_from([0, 0.0, -0.0, "", BIG]),
        st.builds(Hostile),
        st.builds(Exploding),
        st.builds(object),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=3)), max_size=3),
        st.dictionaries(st.sampled_from(NAMES), inner, max_size=4),
    ),
    max_leaves=10,
)
FACT_MAPS = st.dictionaries(st.sampled_from(NAMES), FACT_VALUES, max_size=5)


@settings(max_examples=250, deadline=None)
@given(text=expression_texts(4), facts=FACT_MAPS)
def test_grammar_compiles_and_evaluate_never_raises(text: str, facts: dict[str, object]) -> None:
    assume(len(text) <= MAX_LENGTH)
    condition = compile_condition(text, known_roots=frozenset(NAMES))
    assert isinstance(condition, Condition)
    assert str(condition) == text
    assert condition.evaluate(facts) in (True, False)
    assert type(condition.evaluate(facts)) is bool
    assert all(path.split(".")[0] in NAMES for path in condition.fields)
