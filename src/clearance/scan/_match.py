"""Keyword-gated regex matching: how the scanners stay within their latency budget.

Python's regex engine tries a pattern at every position of the text, which costs about a
millisecond per pattern on 100 KB even when nothing matches. The scanners therefore never run a
pattern over the whole text. Each :class:`Rule` names the words or literal strings every match
must contain; the text's words are collected once (:func:`words_of`), literals are found with
``str.find`` (memchr speed), and the pattern only runs in a small window around each occurrence.

# INVARIANT: a rule's triggers must occur in every match of its pattern, within ``back``
# characters after the match start; otherwise the rule silently misses matches. Each rule's
# tests include a positive example, which fails if a trigger is forgotten.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass

_PUNCT_TO_SPACE = str.maketrans(dict.fromkeys(string.punctuation, " "))


@dataclass(frozen=True, slots=True)
class Rule:
    """A pattern with its triggers.

    Attributes:
        kind: finding kind.
        score: finding score.
        pattern: compiled pattern; it sees the lowercased text when ``lower`` is true.
        words: whole words (lowercase, no punctuation) that gate the rule.
        literals: substrings that gate the rule.
        back: how far before a trigger a match may start.
        window: how far after a trigger a match may end (longer matches are re-matched in full).
        group: the capture group that is the finding's span.
        lower: match against the lowercased text (patterns are then written in lowercase).
    """

    kind: str
    score: float
    pattern: re.Pattern[str]
    words: tuple[str, ...] = ()
    literals: tuple[str, ...] = ()
    back: int = 0
    window: int = 200
    group: int = 0
    lower: bool = True


def lowercase(text: str) -> str:
    """``text.lower()`` when that keeps every offset, else a per-character 1:1 lowercasing."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def words_of(low: str) -> frozenset[str]:
    """The ASCII words of lowercased text; non-ASCII characters and punctuation separate words."""
    ascii_text = low if low.isascii() else low.encode("ascii", "replace").decode("ascii")
    return frozenset(ascii_text.translate(_PUNCT_TO_SPACE).split())


def _occurrences(haystack: str, needle: str) -> Iterator[int]:
    pos = haystack.find(needle)
    while pos != -1:
        yield pos
        pos = haystack.find(needle, pos + 1)


def run(rule: Rule, text: str, low: str, words: frozenset[str]) -> list[re.Match[str]]:
    """Every match of ``rule`` in ``text`` (or ``low``), in order, each span reported once."""
    haystack = low if rule.lower else text
    starts = [pos for word in rule.words if word in words for pos in _occurrences(low, word)]
    starts += [pos for literal in rule.literals for pos in _occurrences(haystack, literal)]
    if not starts:
        return []
    starts.sort()
    size = len(haystack)
    found: dict[tuple[int, int], re.Match[str]] = {}
    scanned_to = -1
    for pos in starts:
        low_bound = max(0, pos - rule.back, scanned_to)
        high_bound = min(size, pos + rule.window)
        if low_bound >= high_bound:
            continue
        for match in rule.pattern.finditer(haystack, low_bound, high_bound):
            full: re.Match[str] | None = match
            if match.end() == high_bound < size:
                # The window may have cut the match short: match again without an end bound.
                full = rule.pattern.match(haystack, match.start())
            if full is not None:
                found.setdefault(full.span(), full)
        scanned_to = high_bound
    return [found[span] for span in sorted(found)]
