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
from collections.abc import Container, Iterator
from dataclasses import dataclass, field

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
    triggers: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # One literal-alternation regex per first character: the regex engine skips to that
        # character in C, about twice as fast as ``str.find`` per literal. Literals with different
        # first characters stay apart, because an alternation over several first characters is
        # tried at every position holding any of them and is slower than separate searches.
        groups: dict[str, list[str]] = {}
        for literal in self.literals:
            groups.setdefault(literal[0], []).append(literal)
        triggers = tuple(re.compile("|".join(map(re.escape, group))) for group in groups.values())
        object.__setattr__(self, "triggers", triggers)


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


class Substrings:
    """Answers ``word in gate`` with a substring test: for rules with few trigger words.

    Collecting a text's words costs about a millisecond per 100 KB; a substring test costs a
    tenth of that. A substring is a superset of a whole word, so :func:`run` may look at a few
    more windows, and its pattern still decides.
    """

    __slots__ = ("_low",)

    def __init__(self, low: str) -> None:
        self._low = low

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word in self._low


def run(rule: Rule, text: str, low: str, words: Container[str]) -> list[re.Match[str]]:
    """Every match of ``rule`` in ``text`` (or ``low``), in order, each span reported once."""
    haystack = low if rule.lower else text
    starts = [pos for word in rule.words if word in words for pos in _occurrences(low, word)]
    starts += [match.start() for trigger in rule.triggers for match in trigger.finditer(haystack)]
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


class Alphabet:
    """Finds maximal runs of ASCII characters from one alphabet, at ``bytes.translate`` speed.

    A regex such as ``[A-Za-z0-9+/]{24,}`` is tried at every position of the text and costs a few
    milliseconds per 100 KB even when nothing matches. Translating the UTF-8 bytes so that the
    alphabet becomes ``a`` and everything else a space, then looking for ``a`` repeated
    ``min_length`` times, costs a tenth of a millisecond; only the rare long runs are visited.

    Args:
        chars: the alphabet, ASCII characters only.
    """

    __slots__ = ("_table",)

    def __init__(self, chars: str) -> None:
        if not chars.isascii():
            raise ValueError("an alphabet holds ASCII characters only")
        table = bytearray(b" " * 256)
        for char in chars:
            table[ord(char)] = ord("a")
        self._table = bytes(table)

    def runs(self, text: str, min_length: int) -> list[tuple[int, int]]:
        """Spans of the maximal runs of at least ``min_length`` alphabet characters, in order."""
        raw = text.encode("utf-8", "surrogatepass")
        data = raw.translate(self._table)
        needle = b"a" * min_length
        pos = data.find(needle)
        if pos == -1:
            return []
        spans: list[tuple[int, int]] = []
        while pos != -1:
            end = data.find(b" ", pos)
            end = len(data) if end == -1 else end
            spans.append((pos, end))
            pos = data.find(needle, end)
        if len(raw) == len(text):
            return spans
        return _char_spans(text, raw, spans)


def _char_spans(text: str, raw: bytes, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Byte spans of ASCII runs to character spans, for text with multi-byte characters.

    # INVARIANT: runs are processed in order and only shorter runs lie between two long ones; a
    # shorter run cannot contain a long one, so the first occurrence after the previous long run
    # is the run itself.
    """
    found: list[tuple[int, int]] = []
    cursor = 0
    for start, end in spans:
        token = raw[start:end].decode("ascii")
        at = text.find(token, cursor)
        found.append((at, at + len(token)))
        cursor = at + len(token)
    return found
