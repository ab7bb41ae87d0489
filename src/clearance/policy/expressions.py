"""CEL conditions: static checks at load time and the rewriting that keeps evaluation fast.

At load time each ``when`` is compiled once and read token by token to learn which variables and
fields it uses. That gives two things:

* **load errors instead of run-time surprises**: an unknown variable, field, data list or function
  is reported with a "did you mean" hint, rather than ending every matching decision in SILENCE;
* **cheap inputs**: the Rust CEL engine converts its inputs eagerly (about a microsecond per
  string), so ``evaluate`` hands it only the fields the candidate rules read, and never converts
  ``data``. ``X in data.NAME`` is rewritten to a call of a function backed by a Python frozenset;
  any other use of ``data.NAME`` is replaced by the list written out as a CEL literal.

Both rewrites keep CEL's meaning: the left operand of ``in`` is found by CEL's own precedence
(everything back to the nearest ``&&``, ``||``, ``?``, ``:``, ``,`` or open bracket); when a
relational operator stands in the way, the literal form is used instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import cel

from clearance.errors import ExpressionError
from clearance.policy.hooks import PROVENANCE_FUNCTIONS, PURE_FUNCTIONS
from clearance.policy.lexer import Token, tokenize
from clearance.policy.native import Node, compile_native
from clearance.policy.problems import did_you_mean

REQUEST_FIELDS: tuple[str, ...] = ("tool", "action", "target", "agent_id", "session_id")
#: Fields of ``session`` (see ``SessionFacts.to_cel``). Extend here when the session grows.
SESSION_FIELDS: tuple[str, ...] = (
    "task",
    "environment",
    "principal",
    "instruction",
    "delegation",
    "tainted",
    "taint",
    "calls",
    "attended",
)
#: Fields of ``scan``: findings on the request's arguments, computed by the scanners.
SCAN_FIELDS: tuple[str, ...] = ("injection", "secrets", "pii", "urls")
ROOTS: tuple[str, ...] = ("request", "args", "session", "data", "scan")

_KEYWORDS = frozenset({"true", "false", "null", "in"})
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
#: ``re_search(text, "pattern")``: Python ``re`` search with a literal pattern compiled at load.
REGEX_FUNCTION = "re_search"
_GLOBAL_FUNCTIONS = frozenset({REGEX_FUNCTION}) | (
    frozenset(
        {
            "size",
            "int",
            "uint",
            "double",
            "string",
            "bytes",
            "bool",
            "type",
            "dyn",
            "duration",
            "timestamp",
            "has",
            "matches",
        }
    )
    | PROVENANCE_FUNCTIONS
    | frozenset(PURE_FUNCTIONS)
)
_METHODS = _MACROS | frozenset(
    {
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "size",
        "getFullYear",
        "getMonth",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
    }
)
_RELATIONS = frozenset({"<", "<=", ">", ">=", "==", "!=", "in"})
_OPERAND_STOPS = frozenset({"&&", "||", "?", ":", ","})
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}


@dataclass(frozen=True)
class Needs:
    """The inputs a condition reads: per root, either named fields or the whole value."""

    fields: Mapping[str, frozenset[str]] = field(default_factory=dict)
    whole: frozenset[str] = frozenset()
    functions: frozenset[str] = frozenset()

    def union(self, other: Needs) -> Needs:
        """The needs of two conditions evaluated in one context."""
        roots = set(self.fields) | set(other.fields)
        return Needs(
            fields={
                r: self.fields.get(r, frozenset()) | other.fields.get(r, frozenset()) for r in roots
            },
            whole=self.whole | other.whole,
            functions=self.functions | other.functions,
        )


@dataclass(frozen=True)
class Condition:
    """A compiled ``when``: the author's text, the program that runs, and what it reads."""

    source: str
    program: cel.Program
    needs: Needs
    args_fields: frozenset[str]
    patterns: frozenset[str] = frozenset()
    native: Node | None = field(default=None, compare=False, repr=False)
    """The same condition as Python closures (see ``clearance.policy.native``), or None."""


@dataclass(frozen=True)
class _Analysis:
    fields: dict[str, set[str]]
    whole: set[str]
    functions: set[str]


def _analyse(tokens: Sequence[Token]) -> _Analysis:
    bound = _bound_names(tokens)
    fields: dict[str, set[str]] = {}
    whole: set[str] = set()
    functions: set[str] = set()
    for i, tok in enumerate(tokens):
        if tok.kind != "id" or tok.text in _KEYWORDS:
            continue
        after_dot = i > 0 and tokens[i - 1].text == "."
        is_call = i + 1 < len(tokens) and tokens[i + 1].text == "("
        if after_dot:
            if is_call and tok.text not in _METHODS:
                raise ExpressionError(
                    f"function `{tok.text}` is not available",
                    hint=did_you_mean(tok.text, _METHODS),
                )
            continue
        if is_call:
            if tok.text not in _GLOBAL_FUNCTIONS:
                raise ExpressionError(
                    f"unknown function `{tok.text}`",
                    hint=did_you_mean(tok.text, _GLOBAL_FUNCTIONS),
                )
            functions.add(tok.text)
            continue
        if tok.text in bound or tok.text in _TYPE_NAMES:
            continue
        if tok.text not in ROOTS:
            raise ExpressionError(
                f"unknown variable `{tok.text}`",
                hint=did_you_mean(tok.text, ROOTS)
                or f"conditions may read {', '.join(f'`{r}`' for r in ROOTS)}",
            )
        member = _member(tokens, i)
        if member is None:
            whole.add(tok.text)
        else:
            fields.setdefault(tok.text, set()).add(member)
    return _Analysis(fields, whole, functions)


def _member(tokens: Sequence[Token], i: int) -> str | None:
    """The field name in ``root.field`` at token ``i``, or None for any other use of the root."""
    if (
        i + 2 < len(tokens)
        and tokens[i + 1].text == "."
        and tokens[i + 2].kind == "id"
        and not (i + 3 < len(tokens) and tokens[i + 3].text == "(")
    ):
        return tokens[i + 2].text
    return None


def _bound_names(tokens: Sequence[Token]) -> set[str]:
    """Names bound by comprehension macros: the ``x`` of ``list.exists(x, ...)``."""
    bound: set[str] = set()
    for i in range(1, len(tokens) - 3):
        if (
            tokens[i - 1].text == "."
            and tokens[i].text in _MACROS
            and tokens[i + 1].text == "("
            and tokens[i + 2].kind == "id"
            and tokens[i + 3].text == ","
        ):
            name = tokens[i + 2].text
            if name in ROOTS:
                raise ExpressionError(
                    f"`{name}` cannot name a comprehension variable: it would hide the "
                    f"`{name}` variable"
                )
            bound.add(name)
    return bound


def data_function_name(list_name: str) -> str:
    """The CEL function that answers ``value in data.<list_name>``."""
    return f"_in_data_{list_name}"


def _rewrite_data(source: str, data: Mapping[str, Sequence[object]]) -> str:
    """Replace each ``data.NAME``: a membership test becomes a call, anything else a literal."""
    while True:
        tokens = tokenize(source)
        site = _first_data_reference(tokens)
        if site is None:
            return source
        i = site
        name = tokens[i + 2].text
        end = tokens[i + 2].end
        left = _membership_left_operand(tokens, i)
        if left is not None:
            start = tokens[left].start
            operand = source[start : tokens[i - 1].start].rstrip()
            source = f"{source[:start]}{data_function_name(name)}({operand}){source[end:]}"
        else:
            literal = json.dumps(list(data[name]), ensure_ascii=False)
            source = f"{source[: tokens[i].start]}{literal}{source[end:]}"


def _first_data_reference(tokens: Sequence[Token]) -> int | None:
    for i, tok in enumerate(tokens):
        if (
            tok.text == "data"
            and tok.kind == "id"
            and not (i > 0 and tokens[i - 1].text == ".")
            and _member(tokens, i) is not None
        ):
            return i
    return None


def _membership_left_operand(tokens: Sequence[Token], i: int) -> int | None:
    """Index of the first token of ``X`` in ``X in data.NAME`` (``data`` at ``i``), if safe."""
    nxt = tokens[i + 3].text if i + 3 < len(tokens) else None
    if i == 0 or tokens[i - 1].text != "in" or nxt in (".", "[", "("):
        return None
    depth = 0
    j = i - 2
    while j >= 0:
        text = tokens[j].text
        if text in _CLOSE:
            depth += 1
        elif text in _OPEN:
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and text in _OPERAND_STOPS:
            break
        elif depth == 0 and tokens[j].kind in ("op", "id") and text in _RELATIONS:
            return None  # relations are left-associative: `a < b in d` is `(a < b) in d`
        j -= 1
    return j + 1 if j + 1 <= i - 2 else None


def compile_condition(
    source: str,
    *,
    data: Mapping[str, Sequence[object]],
    check_field: Callable[[str, str], None],
) -> Condition:
    """Check and compile one ``when``; raise ``ExpressionError`` with a hint when it is wrong.

    ``check_field(root, field)`` raises ``ExpressionError`` for a field the caller knows to be
    wrong (for ``args`` that depends on the tools the rule targets).
    """
    try:
        cel.compile(source)
    except ValueError as exc:
        raise ExpressionError(
            f"condition does not compile: {_syntax_detail(str(exc))}", hint=f"in `{source}`"
        ) from None
    tokens = tokenize(source)
    analysis = _analyse(tokens)
    patterns = _regex_patterns(tokens)
    if "data" in analysis.whole:
        raise ExpressionError(
            "refer to a data list as `data.<name>`",
            hint=f"lists: {', '.join(f'`{n}`' for n in sorted(data)) or 'none are declared'}",
        )
    for root, names in analysis.fields.items():
        for name in sorted(names):
            _check_member(root, name, data, check_field)
    rewritten = _rewrite_data(source, data)
    try:
        program = cel.compile(rewritten)
    except ValueError as exc:  # pragma: no cover - a rewrite of valid CEL stays valid CEL
        raise ExpressionError(f"condition cannot be prepared: {exc}") from None
    custom = PROVENANCE_FUNCTIONS | frozenset(PURE_FUNCTIONS) | {REGEX_FUNCTION}
    data_functions = {data_function_name(n) for n in analysis.fields.get("data", ())}
    needs = Needs(
        fields={r: frozenset(f) for r, f in analysis.fields.items() if r != "data"},
        whole=frozenset(analysis.whole),
        functions=(custom | data_functions) & _functions_in(rewritten),
    )
    return Condition(
        source=source,
        program=program,
        needs=needs,
        args_fields=frozenset(analysis.fields.get("args", ())),
        patterns=frozenset(patterns),
        native=compile_native(rewritten, needs.functions),
    )


def _regex_patterns(tokens: Sequence[Token]) -> list[str]:
    """The literal patterns of every ``re_search(text, "pattern")``, each checked to compile.

    The pattern must be a string literal so that it is compiled once, at load time, and a bad
    pattern is a load error rather than a SILENCE on every matching request.
    """
    found = []
    for i, tok in enumerate(tokens):
        if tok.text != REGEX_FUNCTION or i + 1 >= len(tokens) or tokens[i + 1].text != "(":
            continue
        depth, j = 0, i + 1
        while j < len(tokens):
            depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(tokens[j].text, 0)
            if depth == 0:
                break
            j += 1
        if not (j >= 3 and tokens[j - 1].kind == "str" and tokens[j - 2].text == ","):
            raise ExpressionError(
                f"the pattern of `{REGEX_FUNCTION}` must be a string literal",
                hint=f'write `{REGEX_FUNCTION}(args.x, "^[a-z]+$")`',
            )
        pattern = cel.compile(tokens[j - 1].text).execute()
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ExpressionError(f"`{pattern}` is not a valid regular expression: {exc}") from None
        found.append(pattern)
    return found


_CEL_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")


def _syntax_detail(message: str) -> str:
    """CEL's parse error as one line: ``syntax error ... (line 1, column 9)``."""
    match = _CEL_ERROR.search(message)
    if match is None:
        return message.splitlines()[0] if message else "unknown error"
    text = match.group(3).strip()
    text = text[0].lower() + text[1:] if text else text
    return f"{text} (line {match.group(1)}, column {match.group(2)})"


def _functions_in(rewritten: str) -> frozenset[str]:
    tokens = tokenize(rewritten)
    return frozenset(
        t.text
        for i, t in enumerate(tokens)
        if t.kind == "id" and i + 1 < len(tokens) and tokens[i + 1].text == "("
    )


def _check_member(
    root: str,
    name: str,
    data: Mapping[str, Sequence[object]],
    check_field: Callable[[str, str], None],
) -> None:
    known: Sequence[str] | None = {
        "request": REQUEST_FIELDS,
        "session": SESSION_FIELDS,
        "scan": SCAN_FIELDS,
        "data": tuple(data),
    }.get(root)
    if known is not None and name not in known:
        what = "data list" if root == "data" else f"field of `{root}`"
        raise ExpressionError(f"unknown {what} `{name}`", hint=did_you_mean(name, known))
    check_field(root, name)
