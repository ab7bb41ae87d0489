"""Human summaries of a request, rendered from the per-tool template in the policy.

A template is text with placeholders such as
``"transfer {args.amount|money} from {args.from_account|last4} because {request.reasoning}"``.
It is **not** ``str.format``: placeholders name a path (``args.NAME``, ``request.FIELD`` or
``session.FIELD``, see ``ROOTS``) and optional filters from ``FILTERS``; there is no attribute access, no indexing by
expression and no format spec, so nothing in the agent's arguments can reach Python objects or
change how a value is shown. Every rendered value is flattened to one line, stripped of control
characters and shortened; argument names in the mask list, and names or values that look like
secrets, are masked before any filter sees them.

Example::

    t = compile_template("pay {args.amount|money} to {args.iban|last4}")
    t.render({"args": {"amount": 2400, "iban": "DE44500105175407324931"}}, mask=frozenset())
    # 'pay 2,400.00 to *4931'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from clearance.errors import ConfigError

ROOTS: Mapping[str, frozenset[str] | None] = {
    "args": None,
    "request": frozenset({"agent_id", "tool", "action", "target", "reasoning"}),
    "session": frozenset({"task", "environment", "principal"}),
}
MASKED = "[masked]"
_MAX_VALUE = 120
_MAX_SUMMARY = 1000
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]+")
_SECRET_NAME = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|credential|auth|cookie|"
    r"session[_-]?key|cvv|cvc|pin|ssn)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----|\b(sk|pk|rk)_(live|test)_[A-Za-z0-9]{8,}|\bsk-[A-Za-z0-9_-]{16,}"
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bAKIA[0-9A-Z]{16}\b"
    r"|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.|\bBearer\s+\S{8,})"
)


def _clean(text: str) -> str:
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def _money(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not amount.is_finite():
        return str(value)
    return f"{amount:,.2f}"


def _last4(value: Any) -> str:
    digits = "".join(ch for ch in str(value) if ch.isalnum())
    return "*" + digits[-4:] if digits else ""


FILTERS: Mapping[str, Callable[[Any], str]] = {
    "money": _money,
    "last4": _last4,
    "upper": lambda v: str(v).upper(),
    "lower": lambda v: str(v).lower(),
}


def _is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def _looks_secret(value: str) -> bool:
    return bool(_SECRET_VALUE.search(value))


def mask_args(value: Any, mask: frozenset[str], *, name: str = "") -> Any:
    """A display copy of ``value`` with masked names and secret-looking strings replaced.

    Names in ``mask`` keep their last four characters (``*3847``) so an approver can still tell
    accounts apart; names and values that look like secrets are replaced entirely.
    """
    if name and _is_secret_name(name):
        return MASKED
    if isinstance(value, dict):
        return {str(k): mask_args(v, mask, name=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_args(v, mask, name=name) for v in value]
    if name in mask:
        return _last4(value) or MASKED
    if isinstance(value, str) and _looks_secret(value):
        return MASKED
    return value


@dataclass(frozen=True, slots=True)
class _Field:
    path: tuple[str, ...]
    filters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled summary template: literal text and placeholders, checked once."""

    source: str
    parts: tuple[str | _Field, ...]

    def render(self, values: Mapping[str, Any], *, mask: frozenset[str]) -> str:
        """The summary for ``values`` (keyed by the roots of ``ROOTS``); missing paths are ``?``."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            out.append(_render_field(part, values, mask))
        text = "".join(out)
        return text if len(text) <= _MAX_SUMMARY else text[: _MAX_SUMMARY - 1] + "…"


def _render_field(part: _Field, values: Mapping[str, Any], mask: frozenset[str]) -> str:
    current: Any = values
    for key in part.path:
        if not isinstance(current, Mapping) or key not in current:
            return "?"
        current = current[key]
    leaf = part.path[-1]
    if _is_secret_name(leaf):
        return MASKED
    if isinstance(current, str) and _looks_secret(current):
        return MASKED
    if leaf in mask and part.path[0] == "args" and "last4" not in part.filters:
        return _last4(current) or MASKED
    if isinstance(current, dict | list):
        return "…"
    text: Any = current
    for name in part.filters:
        text = FILTERS[name](text)
    return _clean("" if text is None else str(text))


def compile_template(source: str, *, where: str = "template") -> Template:
    """Parse ``source``; ``ConfigError`` naming the bad placeholder when it is not allowed."""
    parts: list[str | _Field] = []
    pos = 0
    text = source.replace("{{", "\x00").replace("}}", "\x01")
    for match in _PLACEHOLDER.finditer(text):
        parts.append(text[pos : match.start()])
        parts.append(_parse_field(match.group(1), where))
        pos = match.end()
    tail = text[pos:]
    if "{" in tail or "}" in tail or any("{" in p or "}" in p for p in parts if isinstance(p, str)):
        raise ConfigError(
            f"{where}: unbalanced brace", hint="write `{{` or `}}` for a literal brace"
        )
    parts.append(tail)
    restored = tuple(
        p.replace("\x00", "{").replace("\x01", "}") if isinstance(p, str) else p
        for p in parts
        if p != ""
    )
    return Template(source=source, parts=restored)


def _parse_field(body: str, where: str) -> _Field:
    path_text, *filters = (s.strip() for s in body.split("|"))
    if not _PATH.fullmatch(path_text) or "__" in path_text:
        raise ConfigError(
            f"{where}: `{{{body}}}` is not a placeholder",
            hint="use a dotted path such as {args.amount} with optional |money, |last4, |upper, |lower",
        )
    path = tuple(path_text.split("."))
    if path[0] not in ROOTS or len(path) < 2:
        raise ConfigError(
            f"{where}: `{{{body}}}` does not start with args., request. or session.",
            hint="for example {args.amount} or {request.reasoning}",
        )
    fields = ROOTS[path[0]]
    if fields is not None and (len(path) != 2 or path[1] not in fields):
        raise ConfigError(
            f"{where}: unknown field `{path_text}`",
            hint=f"{path[0]} has {', '.join(sorted(fields))}",
        )
    for name in filters:
        if name not in FILTERS:
            raise ConfigError(
                f"{where}: unknown filter `{name}`", hint=f"use one of {', '.join(sorted(FILTERS))}"
            )
    return _Field(path=path, filters=tuple(filters))


_ARG_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_DEFAULT_ARGS = 8


def default_template(
    args: Mapping[str, Any], *, target: str | None = None, reasoning: str | None = None
) -> Template:
    """The summary of a tool without a template: who, what, on what, each argument, and why.

    Every argument goes through the same masking as a written template's placeholders, so a tool
    nobody wrote a template for still shows its context, never its secrets.
    """
    names = [n for n in args if _ARG_NAME.match(n)][:_DEFAULT_ARGS]
    shown = ", ".join(f"{n}={{args.{n}}}" for n in names)
    more = ", …" if len(args) > len(names) else ""
    text = "{request.agent_id} wants {request.tool}"
    if target is not None:
        text += " on {request.target}"
    if shown or more:
        text += f" ({shown}{more})"
    return compile_template(text + (": {request.reasoning}" if reasoning else ""))
