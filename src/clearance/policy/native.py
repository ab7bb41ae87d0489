"""A Python evaluator for the common subset of CEL, answering only where it provably agrees.

The Rust CEL engine converts every input eagerly (about a microsecond per string, more for maps),
which made that conversion the largest cost of a decision. Most conditions are small: field
reads, comparisons, ``&&``/``||``/``!``, ``in``, ``size``, string tests and the policy's own
functions over JSON values. This module compiles such a condition a second time into nested
Python closures that read the request's own Python values directly.

The closures answer only inside a domain where their result is CEL's result: same-typed
comparisons (integers and doubles mixed only where the integer is exact as a double), strings
without lone surrogates, maps with string keys, integers within 64 bits, a boolean result. Any
other value - a missing key, a type CEL would reject or treat differently, an exception from a
function - raises, and :func:`clearance.policy.evaluate.evaluate` asks the engine, whose answer
(or error) stands. A condition using anything outside the subset (arithmetic, macros, ``matches``,
type conversions, bytes, unsigned or hex literals, map literals) is not compiled here at all and
always runs on the engine.

``&&`` and ``||`` keep CEL's meaning where it differs from Python's: CEL evaluates them
commutatively, so ``error && false`` is ``false``. The closures never produce a value from an
operand that failed; they raise instead and the engine decides, so only the short-circuit that
both agree on (a definite ``false`` on the left of ``&&``, ``true`` on the left of ``||``) is taken.

The agreement is tested differentially against the engine (``tests/property/test_native_cel.py``)
on random expressions and values, including the values at the edges of the domain.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cel

from clearance.policy.lexer import Token, tokenize

Inputs = tuple[Mapping[str, Any], Mapping[str, Callable[..., Any]]]
"""The variables (``args``, ``request``, ``session``, ``scan``) and the functions of a decision."""
Node = Callable[[Inputs], Any]

_ROOTS = frozenset({"args", "request", "session", "scan"})
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_EXACT = 2**53  # integers up to this magnitude are exact as doubles
_SURROGATE = re.compile("[\ud800-\udfff]")
_RELATIONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_STRING_METHODS: Mapping[str, Callable[[str, str], bool]] = {
    "contains": lambda s, t: t in s,
    "startsWith": str.startswith,
    "endsWith": str.endswith,
}


class NotInSubsetError(Exception):
    """The condition uses something outside the subset: it runs on the engine only."""


class OutsideDomainError(Exception):
    """A value left the domain where the closures agree with CEL: ask the engine."""


def compile_native(source: str, functions: frozenset[str]) -> Node | None:
    """Closures for ``source`` (already rewritten for data lists), or None outside the subset.

    ``functions`` are the custom functions the decision supplies (policy functions, pure helpers,
    provenance questions); any other function call is outside the subset.
    """
    try:
        parser = _Parser(tokenize(source), functions)
        node = parser.expression()
        if parser.pos != len(parser.tokens):
            raise NotInSubsetError("trailing tokens")
    except NotInSubsetError:
        return None
    return _boolean(node)


def within_domain(
    variables: Mapping[str, Any], whole: frozenset[str], fields: Mapping[str, frozenset[str]]
) -> bool:
    """True when every value the engine would be given is one the closures read exactly alike.

    The engine converts the read fields of all candidate rules up front and fails the whole
    decision when one does not convert; checking the same fields here keeps that outcome: when
    this is False, the decision runs on the engine alone.
    """
    try:
        for root, value in variables.items():
            if root in whole:
                _exact(value)
            else:
                for name in fields.get(root, ()):
                    if name in value:
                        _exact(value[name])
    except OutsideDomainError:
        return False
    return True


# ---------------------------------------------------------------------------------- values


def _text(value: Any) -> str:
    if type(value) is not str or (not value.isascii() and _SURROGATE.search(value)):
        raise OutsideDomainError
    return value


def _exact(value: Any) -> Any:
    """``value`` if the engine would see the same value (JSON types, 64-bit integers, no lone
    surrogates, string map keys), else ``OutsideDomainError``: the engine converts or refuses the rest."""
    kind = type(value)
    if kind is str:
        return _text(value)
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise OutsideDomainError
    elif kind is list:
        for item in value:
            _exact(item)
    elif kind is dict:
        for key, item in value.items():
            _text(key)
            _exact(item)
    elif kind is not float and kind is not bool and value is not None:
        raise OutsideDomainError
    return value


def _number(value: Any) -> int | float:
    kind = type(value)
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise OutsideDomainError
        return value  # type: ignore[no-any-return]
    if kind is float:
        if value != value:  # NaN: CEL's ordering of NaN is not Python's
            raise OutsideDomainError
        return value  # type: ignore[no-any-return]
    raise OutsideDomainError


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    """Both operands when CEL and Python compare them alike, else ``OutsideDomainError``."""
    lk, rk = type(left), type(right)
    if lk is str and rk is str:
        return _text(left), _text(right)
    if lk in (int, float) and rk in (int, float):
        a, b = _number(left), _number(right)
        if lk is not rk and abs(a if lk is int else b) > _EXACT:
            raise OutsideDomainError
        return a, b
    raise OutsideDomainError


def _equal(left: Any, right: Any) -> bool:
    lk = type(left)
    if lk is bool and type(right) is bool:
        return left is right
    if left is None and right is None:
        return True
    a, b = _comparable(left, right)
    return bool(a == b)


def _boolean(node: Node) -> Node:
    def run(inputs: Inputs) -> bool:
        value = node(inputs)
        if type(value) is not bool:
            raise OutsideDomainError
        return value

    return run


# --------------------------------------------------------------------------------- parsing


class _Parser:
    """Recursive descent over CEL's grammar, building closures for the supported subset."""

    def __init__(self, tokens: Sequence[Token], functions: frozenset[str]) -> None:
        self.tokens = tokens
        self.functions = functions
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos].text if self.pos < len(self.tokens) else None

    def take(self, text: str | None = None) -> Token:
        if self.pos >= len(self.tokens):
            raise NotInSubsetError("unexpected end")
        token = self.tokens[self.pos]
        if text is not None and token.text != text:
            raise NotInSubsetError(f"expected {text}")
        self.pos += 1
        return token

    # Expr = Or ["?" Or ":" Expr]
    def expression(self) -> Node:
        condition = self.disjunction()
        if self.peek() != "?":
            return condition
        self.take("?")
        test = _boolean(condition)
        then = self.disjunction()
        self.take(":")
        otherwise = self.expression()
        return lambda inputs: then(inputs) if test(inputs) else otherwise(inputs)

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.peek() == "||":
            self.take()
            node = _either(_boolean(node), _boolean(self.conjunction()))
        return node

    def conjunction(self) -> Node:
        node = self.relation()
        while self.peek() == "&&":
            self.take()
            node = _both(_boolean(node), _boolean(self.relation()))
        return node

    def relation(self) -> Node:
        left = self.unary()
        op = self.peek()
        if op in _RELATIONS or op == "in":
            self.take()
            right = self.unary()
            if self.peek() in _RELATIONS or self.peek() in ("in", "+", "-", "*", "/", "%"):
                raise NotInSubsetError("chained relation or arithmetic")
            return _membership(left, right) if op == "in" else _relation(op, left, right)
        if op in ("+", "-", "*", "/", "%"):
            raise NotInSubsetError("arithmetic")
        return left

    def unary(self) -> Node:
        if self.peek() == "!":
            self.take()
            operand = _boolean(self.unary())
            return lambda inputs: not operand(inputs)
        if self.peek() == "-":
            self.take()
            token = self.take()
            if token.kind != "num":
                raise NotInSubsetError("negation of a non-literal")
            value = _literal(f"-{token.text}")
            return self.member(lambda _inputs: value)
        return self.member(self.primary())

    def member(self, node: Node) -> Node:
        root = getattr(node, "root", None)
        if root is not None:
            if self.peek() == ".":
                self.take(".")
                name = self.take()
                if name.kind != "id" or self.peek() == "(":
                    raise NotInSubsetError("method on a variable")
                node = _field(root, name.text)
            else:
                node = _whole(root)
        while True:
            nxt = self.peek()
            if nxt == ".":
                self.take()
                name = self.take()
                if name.kind != "id":
                    raise NotInSubsetError("select of a non-identifier")
                if self.peek() == "(":
                    node = self.method(node, name.text)
                else:
                    node = _select(node, name.text)
            elif nxt == "[":
                self.take()
                key = self.expression()
                self.take("]")
                node = _index(node, key)
            else:
                return node

    def method(self, target: Node, name: str) -> Node:
        arguments = self.arguments()
        if name == "size" and not arguments:
            return _size(target)
        test = _STRING_METHODS.get(name)
        if test is None or len(arguments) != 1:
            raise NotInSubsetError(f"method {name}")
        (argument,) = arguments
        return lambda inputs: test(_text(target(inputs)), _text(argument(inputs)))

    def arguments(self) -> list[Node]:
        self.take("(")
        out: list[Node] = []
        while self.peek() != ")":
            out.append(self.expression())
            if self.peek() != ")":
                self.take(",")
        self.take(")")
        return out

    def primary(self) -> Node:
        token = self.take()
        if token.text == "(":
            node = self.expression()
            self.take(")")
            return node
        if token.text == "[":
            return self.list_literal()
        if token.kind in ("num", "str"):
            value = _literal(token.text)
            return lambda _inputs: value
        if token.kind != "id":
            raise NotInSubsetError(f"token {token.text}")
        name = token.text
        if name in ("true", "false", "null"):
            constant = {"true": True, "false": False, "null": None}[name]
            return lambda _inputs: constant
        if self.peek() == "(":
            return self.call(name)
        if name not in _ROOTS:
            raise NotInSubsetError(f"identifier {name}")
        return _root_marker(name)

    def list_literal(self) -> Node:
        items: list[Any] = []
        while self.peek() != "]":
            token = self.take()
            negative = token.text == "-"
            if negative:
                token = self.take()
            if token.kind not in ("num", "str"):
                if token.text in ("true", "false") and not negative:
                    items.append(token.text == "true")
                else:
                    raise NotInSubsetError("list element that is not a literal")
            else:
                items.append(_literal(f"-{token.text}" if negative else token.text))
            if self.peek() != "]":
                self.take(",")
        self.take("]")
        frozen = tuple(items)
        return lambda _inputs: list(frozen)

    def call(self, name: str) -> Node:
        if name == "has":
            return self.has()
        arguments = self.arguments()
        if name == "size" and len(arguments) == 1:
            return _size(arguments[0])
        if name not in self.functions:
            raise NotInSubsetError(f"function {name}")

        def call(inputs: Inputs) -> Any:
            values = [_exact(argument(inputs)) for argument in arguments]
            try:
                function = inputs[1][name]
            except KeyError:
                raise OutsideDomainError from None
            return function(*values)

        return call

    def has(self) -> Node:
        self.take("(")
        target = self.member(self.primary())
        self.take(")")
        field = getattr(target, "field", None)
        if field is not None:
            root, name = field

            def present_field(inputs: Inputs) -> bool:
                value = _variable(inputs, root)
                if type(value) is not dict:
                    raise OutsideDomainError
                return name in value

            return present_field
        # ``member`` built the select; rebuild it as a presence test on the operand.
        selected = getattr(target, "selected", None)
        if selected is None:
            raise NotInSubsetError("has() of something other than a field")
        operand, name = selected

        def present(inputs: Inputs) -> bool:
            value = operand(inputs)
            if type(value) is not dict:
                raise OutsideDomainError
            return name in value

        return present


def _literal(text: str) -> Any:
    """The value of one literal token, as the engine itself reads it."""
    lowered = text.lower()
    if lowered.lstrip("-").startswith("0x") or lowered.endswith("u"):
        raise NotInSubsetError("hex or unsigned literal")
    if text[:1] in "rRbB" or text.startswith(('"""', "'''")):
        raise NotInSubsetError("raw, bytes or triple-quoted string")
    try:
        value = cel.evaluate(text)
    except Exception as exc:
        raise NotInSubsetError(f"literal {text}") from exc
    if type(value) not in (int, float, str):
        raise NotInSubsetError(f"literal {text}")
    return value


# ------------------------------------------------------------------------------ operators


def _either(left: Node, right: Node) -> Node:
    return lambda inputs: left(inputs) or right(inputs)


def _both(left: Node, right: Node) -> Node:
    return lambda inputs: left(inputs) and right(inputs)


def _relation(op: str, left: Node, right: Node) -> Node:
    if op == "==":
        return lambda inputs: _equal(left(inputs), right(inputs))
    if op == "!=":
        return lambda inputs: not _equal(left(inputs), right(inputs))
    if op == "<":
        return lambda inputs: _less(*_comparable(left(inputs), right(inputs)))
    if op == "<=":
        return lambda inputs: _less_equal(*_comparable(left(inputs), right(inputs)))
    if op == ">":
        return lambda inputs: _less(*reversed(_comparable(left(inputs), right(inputs))))
    return lambda inputs: _less_equal(*reversed(_comparable(left(inputs), right(inputs))))


def _less(a: Any, b: Any) -> bool:
    return bool(a < b)


def _less_equal(a: Any, b: Any) -> bool:
    return bool(a <= b)


def _membership(item: Node, container: Node) -> Node:
    def contains(inputs: Inputs) -> bool:
        value = item(inputs)
        within = container(inputs)
        kind = type(within)
        if kind is list:
            return any(_equal(value, element) for element in within)
        if kind is dict:
            return _text(value) in within
        raise OutsideDomainError

    return contains


def _root_marker(name: str) -> Node:
    """A placeholder for a variable; ``member`` replaces it by a field read or a whole read."""

    def unused(_inputs: Inputs) -> Any:  # pragma: no cover - always replaced by member()
        raise OutsideDomainError

    unused.root = name  # type: ignore[attr-defined]
    return unused


def _variable(inputs: Inputs, root: str) -> Any:
    try:
        return inputs[0][root]
    except KeyError:
        raise OutsideDomainError from None


def _field(root: str, name: str) -> Node:
    """``root.name``, read as is: :func:`within_domain` checked every field the plan reads."""

    def read(inputs: Inputs) -> Any:
        value = _variable(inputs, root)
        if type(value) is not dict:
            raise OutsideDomainError
        try:
            return value[name]
        except KeyError:
            raise OutsideDomainError from None

    read.field = (root, name)  # type: ignore[attr-defined]  # read by has()
    return read


def _whole(root: str) -> Node:
    return lambda inputs: _variable(inputs, root)


def _select(operand: Node, name: str) -> Node:
    def select(inputs: Inputs) -> Any:
        value = operand(inputs)
        if type(value) is not dict:
            raise OutsideDomainError
        try:
            return value[name]
        except KeyError:
            raise OutsideDomainError from None

    select.selected = (operand, name)  # type: ignore[attr-defined]  # read by has()
    return select


def _index(operand: Node, key: Node) -> Node:
    def index(inputs: Inputs) -> Any:
        value = operand(inputs)
        at = key(inputs)
        kind = type(value)
        if kind is dict and type(at) is str:
            try:
                return value[_text(at)]
            except KeyError:
                raise OutsideDomainError from None
        if kind is list and type(at) is int and 0 <= at < len(value):
            return value[at]
        raise OutsideDomainError

    return index


def _size(operand: Node) -> Node:
    def size(inputs: Inputs) -> int:
        value = operand(inputs)
        kind = type(value)
        if kind is str:
            # This engine's size() of a string counts UTF-8 bytes, not code points.
            text = _text(value)
            return len(text) if text.isascii() else len(text.encode("utf-8"))
        if kind is list or kind is dict:
            return len(value)
        raise OutsideDomainError

    return size
