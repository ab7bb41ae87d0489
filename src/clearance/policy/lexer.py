"""The tokens of a CEL condition, shared by the static checks and the Python evaluator."""

from __future__ import annotations

import re
from dataclasses import dataclass

from clearance.errors import ExpressionError

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*)
   |(?P<str>(?:[rR][bB]?|[bB][rR])(?:'''.*?'''|\"\"\".*?\"\"\"|'[^'\n]*'|"[^"\n]*")
      |[bB]?(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^'\\\n])*'
      |"(?:\\.|[^"\\\n])*"))
   |(?P<num>(?:\d+\.\d+|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|0[xX][0-9a-fA-F]+[uU]?|\d+[uU]?)
   |(?P<id>[A-Za-z_][A-Za-z0-9_]*)
   |(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Token:
    """One significant token of a condition: its lexical kind, text and offsets in the source."""

    kind: str
    text: str
    start: int
    end: int


def tokenize(source: str) -> list[Token]:
    """Significant tokens of ``source`` (whitespace and comments dropped)."""
    out: list[Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise ExpressionError(f"unexpected character `{source[pos]}` at offset {pos}")
        kind = match.lastgroup or ""
        if kind != "ws":
            out.append(Token(kind, match.group(), match.start(), match.end()))
        pos = match.end()
    return out
