"""Audience conditions: a small, safe expression language for campaign files.

Marketers write one line per campaign, for example::

    orders >= 2 and lifecycle in ["at_risk", "lapsed"] and not consent.sms
    affinity.shoes > 0.5 or "rfm:champions" in segments
    trigger.price < trigger.previous_price * 0.9

The text is parsed with ``ast.parse(text, mode="eval")`` and never executed:
only a whitelist of syntax is accepted and translated into this module's own
node types, which a small interpreter walks. Nothing in the text can call a
function, index, import, or reach a Python attribute of a fact.

Grammar (anything else is a ``ConditionError`` naming the construct and the
column):

- ``and``, ``or``, ``not``; parentheses.
- comparisons ``==  !=  <  <=  >  >=  in  not in``, chained as in Python
  (``18 <= age < 65``).
- ``+  -  *  /`` and unary minus.
- field paths: a name or a dotted path (``consent.sms``, ``trigger.price``);
  no part may start with ``_``.
- constants: strings, ints, floats, ``true``/``false``/``null`` (or ``True``,
  ``False``, ``None``), and ``[...]`` / ``(...)`` lists of constants.
- at most ``MAX_LENGTH`` characters and ``MAX_DEPTH`` levels of nesting.

Evaluation semantics (``Condition.evaluate`` never raises, whatever the facts):

- A path resolves through nested ``Mapping`` objects, one key per part. A
  missing key, a ``None``, or a non-mapping anywhere on the way gives ``None``.
  Facts are only ever read by key, never by attribute.
- Any comparison with ``None`` on either side is false, ``!=`` included, so
  ``city != "Berlin"`` is false for a customer with no city. The one exception
  is a comparison against the literal ``null``: ``x == null`` is true exactly
  when ``x`` is missing/``None``, ``x != null`` when it is present.
- ``==`` / ``!=`` follow Python equality (``1 == 1.0``, ``true == 1``); a list
  and a tuple with equal items are equal.
- Ordering (``< <= > >=``) is defined between two numbers (int or float, not
  bool) or two strings; between anything else it is false.
- ``a in b`` works when ``b`` is a list, tuple, set, frozenset, string
  (substring; ``a`` must be a string) or mapping (key membership). With any
  other ``b``, or an unhashable ``a`` for a set/mapping, both ``in`` and
  ``not in`` are false.
- Arithmetic works on numbers only (int or float, not bool); with ``None`` or
  a non-number, on division by zero, or on overflow, the result is ``None``
  (which then compares false). ``-x`` of a non-number is ``None``.
- ``and`` / ``or`` short-circuit and give a bool; ``not`` gives a bool. A value
  used as a condition (``not consent.sms``, a bare ``cart_value``) is truthy
  per Python rules, ``None`` being false.
- A chained comparison evaluates each operand at most once and is true when
  every link is.
- A fact whose own methods raise (a broken ``__eq__``, ``__bool__`` or
  ``Mapping.get``) makes that comparison or truth test false.
"""

from __future__ import annotations

import ast
import difflib
import operator
import tokenize
import warnings
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

MAX_LENGTH = 2000
MAX_DEPTH = 32

#: Lower-case names a marketer may use for the constants (alongside Python's own spelling).
ALIASES: Mapping[str, bool | None] = {"true": True, "false": False, "null": None}

Comparator: TypeAlias = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in"]
ArithmeticOp: TypeAlias = Literal["+", "-", "*", "/"]


class ConditionError(ValueError):
    """A condition that cannot be compiled, with the 1-based column (and line) of the problem.

    ``str(error)`` reads ``"<message> (column N)"``; a campaign loader prefixes
    the file and YAML line.
    """

    def __init__(self, message: str, column: int, line: int = 1) -> None:
        super().__init__(message, column, line)
        self.message = message
        self.column = column
        self.line = line

    def __str__(self) -> str:
        where = (
            f"line {self.line}, column {self.column}" if self.line > 1 else f"column {self.column}"
        )
        return f"{self.message} ({where})"


# --- the tree ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Constant:
    value: str | int | float | bool | tuple[str | int | float | bool | None, ...] | None


@dataclass(frozen=True, slots=True)
class Path:
    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Expr


@dataclass(frozen=True, slots=True)
class Logical:
    op: Literal["and", "or"]
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    """``first op[0] rest[0] op[1] rest[1] ...``: Python's chained comparison."""

    first: Expr
    ops: tuple[Comparator, ...]
    rest: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Arithmetic:
    op: ArithmeticOp
    left: Expr
    right: Expr


Expr: TypeAlias = Constant | Path | Not | Negate | Logical | Comparison | Arithmetic


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled audience condition; build it with ``compile_condition``.

    ``fields`` holds every dotted path the text reads (``{"orders", "consent.sms"}``),
    for validation and documentation.
    """

    text: str
    expr: Expr = field(repr=False)
    fields: frozenset[str]

    def evaluate(self, facts: Mapping[str, object]) -> bool:
        """Whether ``facts`` satisfy the condition; never raises (see the module docstring)."""
        try:
            return _truthy(_value(self.expr, facts))
        except Exception:  # backstop: facts are foreign objects; the helpers already guard
            return False

    def __str__(self) -> str:
        return self.text


# --- compiling --------------------------------------------------------------------------------


def compile_condition(text: str, *, known_roots: frozenset[str] | None = None) -> Condition:
    """Parse and validate ``text``; with ``known_roots``, every path must start with one of them.

    Raises ``ConditionError`` for text that is too long, not valid syntax,
    uses anything outside the grammar, nests deeper than ``MAX_DEPTH``, or
    (with ``known_roots``) names an unknown field.
    """
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"condition is longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    body = text.lstrip()
    if not body.strip():
        raise ConditionError("condition is empty", 1)
    source = _Source(text, len(text) - len(body))
    try:
        with warnings.catch_warnings():  # e.g. SyntaxWarning for `x is 1`, rejected below anyway
            warnings.simplefilter("ignore")
            tree = ast.parse(body, mode="eval")
    except SyntaxError as exc:
        raise _syntax_error(exc, body, source) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes; parser stack depth
        reason = "nested too deeply" if not isinstance(exc, ValueError) else str(exc)
        raise ConditionError(f"invalid condition: {reason}", 1) from None
    translator = _Translator(source, known_roots)
    expr = translator.expr(tree.body, 1)
    return Condition(text, expr, frozenset(translator.paths))


def _syntax_error(exc: SyntaxError, body: str, source: _Source) -> ConditionError:
    """A readable error for text Python cannot parse; an unparenthesised ``:=`` is named."""
    lineno, col = exc.lineno or 1, (exc.offset or 1) - 1
    message = "invalid syntax" if exc.msg == "invalid syntax" else f"invalid syntax: {exc.msg}"
    if exc.offset == 0:  # Python 3.11 reports a premature end this way
        lines = body.rstrip().split("\n")
        lineno, col = len(lines), len(lines[-1])
        message = "invalid syntax: the condition ends too early"
    lines = iter(body.splitlines(keepends=True))
    try:
        for token in tokenize.generate_tokens(lambda: next(lines, "")):
            if token.type == tokenize.OP and token.string == ":=":
                message = _FORBIDDEN[ast.NamedExpr]
                (lineno, col) = token.start
                break
    except (tokenize.TokenError, SyntaxError):
        pass
    line, column = source.position(lineno, col, chars=True)
    return ConditionError(message, column, line)


@dataclass(frozen=True, slots=True)
class _Source:
    """Maps ast positions (in the left-stripped text, UTF-8 byte columns) to the original text."""

    text: str
    stripped: int

    def position(self, lineno: int, col: int, *, chars: bool = False) -> tuple[int, int]:
        body_lines = self.text[self.stripped :].split("\n")
        line_text = body_lines[lineno - 1] if 0 < lineno <= len(body_lines) else ""
        if not chars:
            col = len(line_text.encode()[:col].decode(errors="ignore"))
        index = self.stripped + sum(len(x) + 1 for x in body_lines[: lineno - 1]) + col
        before = self.text[:index]
        return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


_COMPARATORS: Mapping[type[ast.cmpop], Comparator] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_ARITHMETIC: Mapping[type[ast.operator], ArithmeticOp] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}
_OPERATOR_SYMBOLS: Mapping[type[ast.AST], str] = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.Invert: "~",
    ast.UAdd: "unary +",
    ast.Is: "is",
    ast.IsNot: "is not",
}
_FORBIDDEN: Mapping[type[ast.AST], str] = {
    ast.Call: "function calls are not allowed",
    ast.Subscript: "indexing with [...] is not allowed; use a dotted path (a.b)",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.NamedExpr: "assignment (:=) is not allowed",
    ast.IfExp: "conditional expressions (x if c else y) are not allowed",
    ast.Dict: "mapping literals ({...}) are not allowed",
    ast.Set: "set literals ({...}) are not allowed; use [...]",
    ast.Starred: "unpacking (*) is not allowed",
    ast.Slice: "slices are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}


class _Translator:
    def __init__(self, source: _Source, known_roots: frozenset[str] | None) -> None:
        self.source = source
        self.known_roots = known_roots
        self.paths: set[str] = set()

    def error(self, message: str, node: ast.AST) -> ConditionError:
        line, column = self.source.position(
            getattr(node, "lineno", 1), getattr(node, "col_offset", 0)
        )
        return ConditionError(message, column, line)

    def expr(self, node: ast.expr, depth: int) -> Expr:
        if depth > MAX_DEPTH:
            raise self.error(f"condition is nested more than {MAX_DEPTH} levels deep", node)
        inner = depth + 1
        match node:
            case ast.BoolOp(op=ast.And() | ast.Or() as op, values=values):
                kind: Literal["and", "or"] = "and" if isinstance(op, ast.And) else "or"
                return Logical(kind, tuple(self.expr(v, inner) for v in values))
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return Not(self.expr(operand, inner))
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                folded = self.expr(operand, inner)
                if isinstance(folded, Constant) and _is_number(folded.value):
                    return Constant(-folded.value)  # type: ignore[operator]
                return Negate(folded)
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                names = tuple(self.comparator(op, node) for op in ops)
                return Comparison(
                    self.expr(left, inner), names, tuple(self.expr(c, inner) for c in comparators)
                )
            case ast.BinOp(left=left, op=op, right=right):
                symbol = _ARITHMETIC.get(type(op))
                if symbol is None:
                    raise self.error(self.operator_message(op), node)
                return Arithmetic(symbol, self.expr(left, inner), self.expr(right, inner))
            case ast.Constant():
                return Constant(self.constant(node))
            case ast.Name(id=name) if name in ALIASES:
                return Constant(ALIASES[name])
            case ast.Name() | ast.Attribute():
                return self.path(node)
            case ast.List(elts=items) | ast.Tuple(elts=items):
                return Constant(tuple(self.list_item(item) for item in items))
            case ast.UnaryOp(op=op):
                raise self.error(self.operator_message(op), node)
        message = _FORBIDDEN.get(type(node), f"{type(node).__name__} expressions are not allowed")
        raise self.error(message, node)

    def comparator(self, op: ast.cmpop, node: ast.AST) -> Comparator:
        name = _COMPARATORS.get(type(op))
        if name is None:
            hint = "use == null / != null" if isinstance(op, ast.Is | ast.IsNot) else None
            raise self.error(self.operator_message(op, hint), node)
        return name

    @staticmethod
    def operator_message(op: ast.AST, hint: str | None = None) -> str:
        symbol = _OPERATOR_SYMBOLS.get(type(op), type(op).__name__)
        hint = hint or "use and, or, not, == != < <= > >= in, not in, + - * /"
        return f"operator '{symbol}' is not allowed; {hint}"

    def constant(self, node: ast.Constant) -> str | int | float | bool | None:
        value = node.value
        if value is None or isinstance(value, str | bool | int | float):
            return value
        what = {bytes: "bytes literals are", complex: "complex numbers are"}.get(
            type(value), f"{value!r} is"
        )
        raise self.error(f"{what} not allowed; use strings, numbers, true/false/null", node)

    def list_item(self, node: ast.expr) -> str | int | float | bool | None:
        match node:
            case ast.Constant():
                return self.constant(node)
            case ast.Name(id=name) if name in ALIASES:
                return ALIASES[name]
            case ast.UnaryOp(op=ast.USub(), operand=ast.Constant(value=value)) if _is_number(value):
                return -value  # type: ignore[no-any-return]
        raise self.error(
            "lists may only contain constants (strings, numbers, true/false/null)", node
        )

    def path(self, node: ast.Name | ast.Attribute) -> Path:
        parts: list[str] = []
        current: ast.expr = node
        while isinstance(current, ast.Attribute):
            parts.append(current.attr)
            current = current.value
        if not isinstance(current, ast.Name):
            raise self.error("attributes are only allowed on field paths (a.b.c)", node)
        if current.id in ALIASES:
            raise self.error(f"{current.id!r} is a constant and has no fields", node)
        parts.append(current.id)
        parts.reverse()
        for part in parts:
            if part.startswith("_"):
                raise self.error(f"names starting with '_' are not allowed: {part!r}", node)
        if self.known_roots is not None and parts[0] not in self.known_roots:
            raise self.error(_unknown_root(parts[0], self.known_roots), current)
        path = Path(tuple(parts))
        self.paths.add(path.dotted)
        return path


def _unknown_root(name: str, known_roots: frozenset[str]) -> str:
    known = sorted(known_roots - ALIASES.keys())
    message = f"unknown field {name!r}"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return f"{message}; known: {', '.join(known)}"


# --- evaluating -------------------------------------------------------------------------------


def _value(expr: Expr, facts: Mapping[str, object]) -> object:
    match expr:
        case Constant(value=value):
            return value
        case Path(parts=parts):
            return _resolve(facts, parts)
        case Not(operand=operand):
            return not _truthy(_value(operand, facts))
        case Negate(operand=operand):
            value = _value(operand, facts)
            return -value if _is_number(value) else None  # type: ignore[operator]
        case Logical(op="and", operands=operands):
            return all(_truthy(_value(o, facts)) for o in operands)
        case Logical(operands=operands):
            return any(_truthy(_value(o, facts)) for o in operands)
        case Comparison(first=first, ops=ops, rest=rest):
            left_node, left = first, _value(first, facts)
            for op, right_node in zip(ops, rest, strict=True):
                right = _value(right_node, facts)
                if not _compare(op, left, right, _is_null(left_node) or _is_null(right_node)):
                    return False
                left_node, left = right_node, right
            return True
        case Arithmetic(op=op, left=left_node, right=right_node):
            return _arithmetic(op, _value(left_node, facts), _value(right_node, facts))
    raise AssertionError(f"unknown node {expr!r}")  # pragma: no cover


def _resolve(facts: object, parts: tuple[str, ...]) -> object:
    current = facts
    for part in parts:
        if not isinstance(current, Mapping):
            return None
        try:
            current = current.get(part)
        except Exception:
            return None
        if current is None:
            return None
    return current


def _is_null(expr: Expr) -> bool:
    return isinstance(expr, Constant) and expr.value is None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _truthy(value: object) -> bool:
    if value is None:
        return False
    try:
        return bool(value)
    except Exception:
        return False


_ORDERING: Mapping[str, Callable[[object, object], object]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare(op: Comparator, left: object, right: object, against_null: bool) -> bool:
    """One link of a comparison; ``against_null`` when either operand is the literal ``null``."""
    if left is None or right is None:
        if not against_null or op not in ("==", "!="):
            return False
        both = left is None and right is None
        return both if op == "==" else not both
    if op in ("==", "!="):
        found = _equal(left, right)
    elif op in ("in", "not in"):
        found = _contains(right, left)
    else:
        return _ordered(op, left, right)
    if found is None:
        return False
    return found if op in ("==", "in") else not found


def _ordered(op: Comparator, left: object, right: object) -> bool:
    if not (_is_number(left) and _is_number(right)) and not (
        isinstance(left, str) and isinstance(right, str)
    ):
        return False
    try:
        return bool(_ORDERING[op](left, right))
    except Exception:
        return False


def _equal(left: object, right: object) -> bool | None:
    """``left == right`` (a list equals a tuple with equal items), or ``None`` if ``==`` raised."""
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        left, right = tuple(left), tuple(right)
    try:
        return bool(left == right)
    except Exception:
        return None


def _contains(container: object, item: object) -> bool | None:
    """``item in container``, or ``None`` when membership is not defined for the pair."""
    try:
        if isinstance(container, str):
            return item in container if isinstance(item, str) else None
        if isinstance(container, list | tuple):
            matches = [_equal(item, element) for element in container]
            return True if True in matches else (None if None in matches else False)
        if isinstance(container, Mapping | AbstractSet):
            if isinstance(item, list):
                item = tuple(item)
            return item in container
    except Exception:
        return None
    return None


_ARITHMETIC_FUNCTIONS: Mapping[ArithmeticOp, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


def _arithmetic(op: ArithmeticOp, left: object, right: object) -> object:
    if not (_is_number(left) and _is_number(right)):
        return None
    if op == "/" and right == 0:
        return None
    try:
        return _ARITHMETIC_FUNCTIONS[op](left, right)  # type: ignore[arg-type]
    except Exception:  # OverflowError for huge ints; a hostile int subclass
        return None
