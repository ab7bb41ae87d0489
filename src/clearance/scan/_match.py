"""Keyword-gated regex matching: how the scanners stay within their latency budget.

Python's regex engine tries a pattern at every position of the text, which costs about a
millisecond per pattern on 100 KB even when nothing matches. The scanners therefore never run a
pattern over the whole text. Each :class:`Rule` names the words or literal strings every match
must contain; the text's words are collected once (:func:`words_of`), literals are found with
``str.find`` (memchr speed), and the pattern only runs in a small window around each occurrence.

# INVARIANT: a rule's triggers must occur in every match of its pattern, within ``back``
# characters after the match start (at the match start when ``back`` is 0, where the pattern is
# tried only at trigger positions); otherwise the rule silently misses matches. Each rule's
# tests include a positive example, which fails if a trigger is forgotten.

Two optional declarations make text dense in trigger words cheap, and every match still found:
``requires`` (groups of whole words every match holds one of: a rule missing a group does not
run; ``contains`` is the same for substrings) and ``leads`` (what every match starts with: a located rule then tries its pattern only at
those, not at every position before a trigger). ``tests/unit/scan/test_rule_gates.py`` checks
both declarations against every match of each pattern on generated text.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

_SEPARATORS = [chr(point) for point in range(128) if not chr(point).isalnum()]
_NON_WORD_TO_SPACE = str.maketrans(dict.fromkeys(_SEPARATORS, " "))
"""Every ASCII character other than a letter or digit separates words: punctuation, whitespace
and control characters (a control character glued to "ignore" must not hide the word)."""


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
        requires: groups of whole words (lowercase); every match holds a word of each group, so
            a text missing every word of a group has no match and the rule does not run.
        leads: what every match starts with: a whole word when alphanumeric (a lead that is not
            a word of the text cannot start a match), else a literal. A located rule (``back``
            above 0) with many triggers tries its pattern only where a lead starts.
        contains: groups of substrings of the haystack; every match contains one of each
            group. Tested (``str.find`` each) only once a trigger is found, for rules whose
            triggers are common and whose matches need a rarer string.
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
    requires: tuple[frozenset[str], ...] = ()
    leads: tuple[str, ...] = ()
    contains: tuple[tuple[str, ...], ...] = ()
    triggers: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    locator: re.Pattern[str] = field(init=False, repr=False, compare=False)

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
        object.__setattr__(self, "locator", _locator(self.pattern, self.back))


_GLOBAL_FLAGS = re.compile(r"^\(\?[aiLmsux]+\)")


def _locator(pattern: re.Pattern[str], back: int) -> re.Pattern[str]:
    """``pattern`` after a lazy skip of at most ``back`` characters, the pattern as group 1.

    Matched at ``trigger - back``, it finds in one call the leftmost match starting at most
    ``back`` characters before the trigger, where ``finditer`` over a window would also try
    every position after the trigger (the cost of text dense with words such as "system").
    """
    source = pattern.pattern
    flags = _GLOBAL_FLAGS.match(source)
    prefix = flags.group() if flags else ""
    return re.compile(f"{prefix}(?s:.){{0,{back}}}?({source[len(prefix) :]})", pattern.flags)


def lowercase(text: str) -> str:
    """``text.lower()`` when that keeps every offset, else a per-character 1:1 lowercasing.

    Only one character has a longer lowercase (U+0130, dotted capital I, kept as it is), so the
    per-character form is ``str.lower`` on the pieces between those characters, with capital
    sigma lowered to U+03C3 beforehand (``str.lower`` would choose the final form by context,
    which the per-character form never does): a few C calls, never a Python loop per character,
    which 100 KB holding one Turkish capital I used to cost.
    """
    if "\u0130" not in text:
        low = text.lower()
        if len(low) == len(text):
            return low
    pieces = _LONGER_LOWERCASE.split(text.replace("\u03a3", "\u03c3"))
    low = "".join(piece if index % 2 else piece.lower() for index, piece in enumerate(pieces))
    if len(low) == len(text):
        return low
    # A Unicode version with another such character: the plain per-character loop.
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)  # pragma: no cover


_LONGER_LOWERCASE = re.compile("(\u0130)")
"""Characters whose lowercase is more than one character (only U+0130 in the Unicode version of
Python 3.11 to 3.13), captured so that ``split`` keeps them."""


def words_of(low: str) -> frozenset[str]:
    """The ASCII words of lowercased text: runs of ASCII letters and digits (whatever else
    separates them, non-ASCII characters included)."""
    ascii_text = low if low.isascii() else low.encode("ascii", "replace").decode("ascii")
    return frozenset(ascii_text.translate(_NON_WORD_TO_SPACE).split())


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


def run(
    rule: Rule,
    text: str,
    low: str,
    words: Container[str],
    *,
    within: Sequence[tuple[int, int]] | None = None,
) -> list[re.Match[str]]:
    """Every match of ``rule`` in ``text`` (or ``low``), in order, each span reported once.

    ``within``, when given, limits where literal triggers are looked for: spans that hold every
    non-ASCII character of the text, for rules whose literals all start with one (native-script
    rules), so that English text around them is not searched.
    """
    if any(all(word not in words for word in group) for group in rule.requires):
        return []
    leads = [lead for lead in rule.leads if lead in words or not lead.isalnum()]
    if rule.leads and not leads:
        return []
    haystack = low if rule.lower else text
    starts = [pos for word in rule.words if word in words for pos in _occurrences(low, word)]
    spans = ((0, len(haystack)),) if within is None else within
    starts += [
        match.start()
        for trigger in rule.triggers
        for low_bound, high in spans
        for match in trigger.finditer(haystack, low_bound, high)
    ]
    if not starts or any(all(part not in haystack for part in group) for group in rule.contains):
        return []
    starts.sort()
    if rule.back == 0:
        return _anchored(rule, haystack, starts)
    if leads and len(starts) >= _LEADS_AFTER:
        at = sorted({pos for lead in leads for pos in _occurrences(haystack, lead)})
        return _located(rule, haystack, starts, partial(_at_leads, rule, haystack, at))
    return _located(rule, haystack, starts, partial(_by_locator, rule, haystack))


_LEADS_AFTER = 16
"""Triggers from which finding a rule's leads (one ``str.find`` pass each) costs less than trying
the pattern at every position up to ``back`` before each trigger."""


def _full(rule: Rule, haystack: str, start: int) -> re.Match[str] | None:
    """The match at ``start`` within the rule's window, matched again unbounded if the window
    cut it (the bound keeps a pattern's backtracking within the window)."""
    length = len(haystack)
    high = start + rule.back + rule.window
    high = high if high < length else length
    match = rule.pattern.match(haystack, start, high)
    if match is not None and match.end() == high < length:
        return rule.pattern.match(haystack, start) or match
    return match


_Locate = Callable[[int, int], "int | None"]
"""``locate(low_bound, high)``: where the first match starting at most ``back`` after
``low_bound`` and ending by ``high`` starts, or ``None``."""


def _by_locator(rule: Rule, haystack: str, low_bound: int, high: int) -> int | None:
    """:data:`_Locate` in one regex call: the pattern after a lazy skip of up to ``back``."""
    located = rule.locator.match(haystack, low_bound, high)
    return None if located is None else located.start(1)


def _at_leads(rule: Rule, haystack: str, leads: list[int], low_bound: int, high: int) -> int | None:
    """:data:`_Locate` trying the pattern only at ``leads`` (sorted positions of the rule's
    leads): the same answer as :func:`_by_locator`, since no match starts anywhere else."""
    last = min(low_bound + rule.back, high)
    index = bisect.bisect_left(leads, low_bound)
    while index < len(leads) and leads[index] <= last:
        if rule.pattern.match(haystack, leads[index], high) is not None:
            return leads[index]
        index += 1
    return None


def _located(rule: Rule, haystack: str, starts: list[int], locate: _Locate) -> list[re.Match[str]]:
    """Matches of a rule with ``back > 0``: each starts at most ``back`` before a trigger.

    # INVARIANT: no match starts before ``tried`` other than those already collected; whether a
    # match starts at a position does not depend on which trigger led there, so no position is
    # tried twice and dense triggers cost no more than the text's length.
    """
    matches: list[re.Match[str]] = []
    tried = 0
    length = len(haystack)
    back = rule.back
    for pos in starts:
        if pos < tried:
            continue  # inside a match or a searched stretch: text dense in findings
        low_bound = pos - back if pos - back > tried else tried
        high = pos + rule.window if pos + rule.window < length else length
        while low_bound <= pos:
            start = locate(low_bound, high)
            if start is None:
                tried = low_bound + back + 1
                break
            if start > pos:
                tried = start
                break
            match = _full(rule, haystack, start)
            if match is None:  # pragma: no cover - the locator matched this very pattern
                break
            matches.append(match)
            end = match.end()
            low_bound = tried = end if end > start else start + 1
    return matches


def _anchored(rule: Rule, haystack: str, starts: list[int]) -> list[re.Match[str]]:
    """Matches of a rule with ``back == 0``: by the invariant they start at a trigger.

    Trying the pattern only there, instead of at every position of a window, is what keeps a
    text dense with trigger words ("ignore", "system") cheap. Matches do not overlap, as with
    ``finditer``.
    """
    matches: list[re.Match[str]] = []
    taken = -1
    tried = -1
    for pos in starts:
        if pos < taken or pos == tried:
            continue
        tried = pos
        match = _full(rule, haystack, pos)
        if match is not None:
            matches.append(match)
            end = match.end()
            taken = end if end > pos else pos + 1
    return matches


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
        return char_spans(text, raw, spans)


def char_spans(text: str, raw: bytes, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Byte spans of ASCII runs to character spans, for text with multi-byte characters.

    # INVARIANT: runs are processed in order and the ASCII stretches between two of them cannot
    # contain either (for :class:`Alphabet`, they are shorter runs; for a caller, they must fail
    # its own test), so the first occurrence after the previous run is the run itself.
    """
    found: list[tuple[int, int]] = []
    cursor = 0
    for start, end in spans:
        token = raw[start:end].decode("ascii")
        at = text.find(token, cursor)
        found.append((at, at + len(token)))
        cursor = at + len(token)
    return found
