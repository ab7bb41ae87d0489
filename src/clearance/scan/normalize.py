"""Text normalisation that undoes common obfuscation before pattern matching.

Attackers hide instructions from pattern matchers with lookalike characters (Cyrillic ``\u043e`` for
Latin ``o``), compatibility forms (fullwidth ``\uff49\uff47\uff4e``, mathematical bold letters), accents and
combining marks, and invisible characters inserted inside words (zero-width spaces, bidi controls,
Unicode tag characters). :func:`normalize` maps each character independently:

* NFKC compatibility folding (fullwidth, ligatures, math alphanumerics, circled letters);
* Latin letters with diacritics lose them (``ï`` -> ``i``), combining marks are dropped;
* Cyrillic and Greek letters that look like Latin ones become those Latin letters;
* zero-width, bidi-control, soft-hyphen, variation-selector and tag characters are deleted.

Because the mapping is per character, every position of the normalised text traces back to a
position of the original (:class:`OffsetMap`), so findings can point at the original span.

The fast path matters: pure-ASCII text, the common case, is returned unchanged without copying.

Example::

    from clearance.scan.normalize import normalize

    assert normalize("ign\u200b\u043ere") == "ignore"   # zero-width space removed, Cyrillic o folded
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Sequence
from functools import cache
from itertools import accumulate, count
from operator import add

INVISIBLE_BMP = (
    "\u00ad"  # soft hyphen
    "\u034f"  # combining grapheme joiner
    "\u061c"  # arabic letter mark
    "\u115f\u1160\u17b4\u17b5\u180e"
    "\u200b-\u200f"  # zero-width space/non-joiner/joiner, LRM, RLM
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # bidi isolates
    "\u3164\ufe00-\ufe0f\ufeff\uffa0"
)
"""The Basic Multilingual Plane part of :data:`INVISIBLE`.

A class of these alone is one table lookup per character; with the astral ranges added, the
regex engine tests every character range by range (about twice as slow). Text whose UTF-8 form
lacks :data:`ASTRAL_INVISIBLE_MARK` holds no astral invisible character, and searches it with
this class find exactly what the whole class finds.
"""

INVISIBLE = (
    f"{INVISIBLE_BMP}"
    "\U000e0000-\U000e007f"  # tag characters ("ASCII smuggling")
    "\U000e0100-\U000e01ef"  # variation selectors supplement
)
"""Character class body of the characters that render as nothing and are deleted."""

ASTRAL_INVISIBLE_MARK = b"\xf3\xa0"
"""UTF-8 lead bytes of U+E0000 to U+E0FFF, the block that holds every astral invisible character
(tag characters, variation selectors supplement)."""

INVISIBLE_RE = re.compile(f"[{INVISIBLE}]")

# Lookalikes that NFKC leaves alone. Only letters whose glyph is, in common fonts, the same as the
# Latin letter are folded; a Russian or Greek word becomes gibberish, which is harmless because
# native-script patterns run on the original text.
_LOOKALIKES = (
    # Cyrillic lowercase
    "\u0430\u0432\u0435\u0451\u043a\u043c\u043d\u043e\u0440\u0441\u0442\u0443"
    "\u0445\u0455\u0456\u0457\u0458\u0501\u051b\u051d\u04bb\u04cf\u0261\u0578"
    "\u057d\u0475\u04af"
    # Cyrillic uppercase
    "\u0410\u0412\u0415\u0401\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0423"
    "\u0425\u0405\u0406\u0407\u0408\u0500\u04ae\u051a\u051c\u04ba\u04c0"
    # Greek
    "\u03b1\u03b2\u03b5\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7\u03f2"
    "\u03f3\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1"
    "\u03a4\u03a5\u03a7"
    # Latin lookalikes outside ASCII
    "\u0131\u0237\u2113\u01c0\u0251\u0269\u028f"
)
_LATIN = (
    # Cyrillic lowercase
    "abeekmhopcty"
    "xsiijdqwhlgn"
    "uvy"
    # Cyrillic uppercase
    "ABEEKMHOPCTY"
    "XSIIJDYQWHI"
    # Greek
    "abeikvoptuxc"
    "jABEZHIKMNOP"
    "TYX"
    # Latin lookalikes outside ASCII
    "ijllaiy"
)
_HOMOGLYPHS = dict(zip(_LOOKALIKES, _LATIN, strict=True))

_LATIN_RANGES = ((0x00C0, 0x024F), (0x1E00, 0x1EFF))
_NFKC_RANGES = (
    (0x00A0, 0x04FF),
    (0x1D00, 0x1DBF),
    (0x1E00, 0x1FFF),
    (0x2000, 0x24FF),
    (0x2C60, 0x2C7F),
    (0x3000, 0x33FF),
    (0xA640, 0xA69F),
    (0xFB00, 0xFB4F),
    (0xFF00, 0xFFEF),
    (0x1D400, 0x1D7FF),
    (0x1F100, 0x1F1FF),
)


def _fold_char(char: str) -> str:
    if char in _HOMOGLYPHS:
        return _HOMOGLYPHS[char]
    point = ord(char)
    if any(lo <= point <= hi for lo, hi in _LATIN_RANGES):
        decomposed = unicodedata.normalize("NFKD", char)
        return "".join(c for c in decomposed if not unicodedata.combining(c))
    folded = unicodedata.normalize("NFKC", char)
    # NFKC can itself produce lookalikes (e.g. a math-italic Greek letter); fold those too.
    return "".join(_HOMOGLYPHS.get(c, c) for c in folded if not unicodedata.combining(c))


@cache
def _table() -> dict[int, str | None]:
    """The translation table, built once on first use (a few milliseconds)."""
    table: dict[int, str | None] = {}
    for lo, hi in _NFKC_RANGES:
        for point in range(lo, hi + 1):
            char = chr(point)
            if unicodedata.combining(char):
                table[point] = None
                continue
            folded = _fold_char(char)
            if folded != char:
                table[point] = folded or None
    for char, latin in _HOMOGLYPHS.items():
        table[ord(char)] = latin
    for point in _invisible_points():
        table[point] = None
    return table


def _invisible_points() -> list[int]:
    """Expand the ``INVISIBLE`` character-class body (single characters and ``a-b`` ranges)."""
    points: list[int] = []
    body = INVISIBLE
    index = 0
    while index < len(body):
        if index + 2 < len(body) and body[index + 1] == "-":
            points.extend(range(ord(body[index]), ord(body[index + 2]) + 1))
            index += 3
        else:
            points.append(ord(body[index]))
            index += 1
    return points


def normalize(text: str, *, spans: Sequence[tuple[int, int]] | None = None) -> str:
    """Return ``text`` with lookalikes folded to Latin and invisible characters removed.

    ASCII text is returned as is (same object), so callers can test ``normalize(t) is t``.
    Otherwise only the spans holding non-ASCII characters (:func:`non_ascii_spans`; pass them as
    ``spans`` when already computed) go through ``str.translate``, with the list form of the
    table, whose per-character cost is an index where the dictionary costs a hash lookup (about
    half); the ASCII stretches in between are copied. The mapping is per character, so where
    the spans are cut cannot change the result.
    """
    if text.isascii():
        return text
    table = _sequence_table()
    parts: list[str] = []
    last = 0
    for low, high in non_ascii_spans(text) if spans is None else spans:
        parts.append(text[last:low])
        parts.append(text[low:high].translate(table))
        last = high
    parts.append(text[last:])
    folded = "".join(parts)
    if _BEYOND_MARK in text.encode("utf-8", "surrogatepass"):
        # Characters past the list (tag characters, variation selectors supplement) were left
        # alone by the translation; every one the table knows is deleted.
        folded = _beyond_re().sub("", folded)
    return folded


def non_ascii_spans(text: str) -> list[tuple[int, int]]:
    """Spans of ``text`` that together hold all its non-ASCII characters, in order, disjoint.

    The text is looked at in blocks (:data:`_BLOCK` characters) and chunks (:data:`_CHUNK`)
    with ``str.isascii``, which runs at memory speed: ASCII blocks and chunks are skipped, the
    other chunks are returned, adjacent ones merged. Every search for non-ASCII characters
    (invisible, bidi and tag characters) can then skip English text without a regex touching it.
    """
    spans: list[tuple[int, int]] = []
    length = len(text)
    for start in range(0, length, _BLOCK):
        if text[start : start + _BLOCK].isascii():
            continue
        for low in range(start, min(length, start + _BLOCK), _CHUNK):
            if text[low : low + _CHUNK].isascii():
                continue
            high = min(length, low + _CHUNK)
            if spans and spans[-1][1] == low:
                spans[-1] = (spans[-1][0], high)
            else:
                spans.append((low, high))
    return spans


@cache
def _sequence_table() -> list[int | str | None]:
    """The table as a list indexed by code point, up to the last mapped character below 0x20000.

    Unmapped entries hold their own code point (``str.translate`` copies those); characters past
    the end raise ``IndexError``, which ``str.translate`` also treats as unmapped, and the mapped
    ones among them are handled by :func:`_beyond_re`. About 5 MB, built on first non-ASCII text.
    """
    table = _table()
    size = max(point for point in table if point < _SEQUENCE_LIMIT) + 1
    sequence: list[int | str | None] = list(range(size))
    for point, replacement in table.items():
        if point < size:
            sequence[point] = replacement
    return sequence


@cache
def _beyond_re() -> re.Pattern[str]:
    """The mapped characters past the list table; all are invisible and deleted.

    # INVARIANT: their UTF-8 form starts with ``_BEYOND_MARK`` (U+E0000 to U+E0FFF), which is how
    # :func:`normalize` knows, from one ``bytes.find``, whether it must look for them.
    """
    beyond = sorted(point for point in _table() if point >= len(_sequence_table()))
    if any(_table()[point] is not None or not 0xE0000 <= point <= 0xE0FFF for point in beyond):
        raise RuntimeError("a character past the list table is not an invisible tag character")
    return re.compile(f"[{_class_body(beyond)}]")


def has_invisible(text: str, *, spans: Sequence[tuple[int, int]] | None = None) -> bool:
    """True when ``text`` contains a character :func:`normalize` deletes as invisible.

    ``spans``, when given, are the text's :func:`non_ascii_spans` (invisible characters are not
    ASCII), and only they are searched.
    """
    if text.isascii():
        return False
    if spans is None:
        return INVISIBLE_RE.search(text) is not None
    return any(INVISIBLE_RE.search(text, low, high) is not None for low, high in spans)


class OffsetMap:
    """Maps offsets in ``normalize(text)`` back to offsets in ``text``.

    Only characters whose replacement is not exactly one character move later offsets, so the map
    stores one breakpoint per such character, found with one regex pass over exactly those.
    """

    __slots__ = ("_norm", "_orig")

    def __init__(self, text: str, *, spans: Sequence[tuple[int, int]] | None = None) -> None:
        """``spans``, when given, are the text's :func:`non_ascii_spans` (every character whose
        replacement is not one character is non-ASCII), and only they are searched."""
        # INVARIANT: every character _resizing finds has a replacement width other than one, so
        # each is a breakpoint: the shift of later offsets grows by (width - 1) after it.
        positions, chars = _resizing(text, ((0, len(text)),) if spans is None else spans)
        orig_breaks: list[int] = list(map((1).__add__, positions))
        shifts = accumulate(map(_width_changes().__getitem__, chars))
        self._norm: list[int] = [0, *map(add, orig_breaks, shifts)]
        self._orig: list[int] = [0, *orig_breaks]

    def to_original(self, offset: int) -> int:
        """The original offset of normalised ``offset`` (the start of the character it came from)."""
        index = bisect.bisect_right(self._norm, offset) - 1
        return self._orig[index] + (offset - self._norm[index])


def _resizing(text: str, spans: Sequence[tuple[int, int]]) -> tuple[list[int], list[str]]:
    """Positions and characters of ``text`` (within ``spans``) whose replacement is not exactly
    one character.

    The Basic Multilingual Plane ones are one character class, which the regex engine tests with
    one table lookup; one ``split`` per span gives both the characters and, from the lengths of
    the pieces between them, their positions (:func:`_located`), so no Python code runs per
    character (text full of zero-width characters has thousands). A class of the astral ones
    (enclosed alphanumerics, tag characters) would be tested range by range at every character,
    so the two blocks that hold them are searched whole, only when the UTF-8 text holds the
    first three bytes of one of them, and the few characters found are filtered.
    """
    bmp, astral_blocks, marks = _resizing_classes()
    positions: list[int] = []
    chars: list[str] = []
    for low, high in spans:
        found, found_chars = _located(bmp, text[low:high])
        positions.extend(map(low.__add__, found))
        chars.extend(found_chars)
    raw = text.encode("utf-8", "surrogatepass")
    if any(lead in raw and any(mark in raw for mark in group) for lead, group in marks.items()):
        changes = _width_changes()
        more = [
            position
            for position, char in zip(*_located(astral_blocks, text), strict=True)
            if char in changes
        ]
        if more:
            # Two sorted runs of integers: the sort merges them in one C pass.
            positions = sorted(positions + more)
            chars = list(map(text.__getitem__, positions))
    return positions, chars


def _located(pattern: re.Pattern[str], text: str) -> tuple[list[int], list[str]]:
    """Positions and characters matched by ``pattern``, a one-character class in a group."""
    parts = pattern.split(text)
    pieces, chars = parts[0::2], parts[1::2]
    # The k-th character (0-based) sits after the first k + 1 pieces and k earlier characters.
    return list(map(add, accumulate(map(len, pieces[:-1])), count())), chars


@cache
def _resizing_classes() -> tuple[re.Pattern[str], re.Pattern[str], dict[bytes, list[bytes]]]:
    """The BMP class, the astral blocks, and their UTF-8 prefixes grouped by their first two
    bytes, for :func:`_resizing`: two ``bytes`` searches tell most texts (emoji aside) that none
    is there, where one search per three-byte prefix cost most of a millisecond per 100 KB."""
    points = sorted(p for p, r in _table().items() if r is None or len(r) != 1)
    bmp = [p for p in points if p <= _BMP_LAST]
    blocks = sorted({p & ~0xFF for p in points if p > _BMP_LAST})
    marks: dict[bytes, list[bytes]] = {}
    for mark in sorted({chr(p).encode("utf-8")[:3] for p in points if p > _BMP_LAST}):
        marks.setdefault(mark[:2], []).append(mark)
    body = "".join(f"{chr(block)}-{chr(block + 0xFF)}" for block in blocks)
    return re.compile(f"([{_class_body(bmp)}])"), re.compile(f"([{body}])"), marks


@cache
def _width_changes() -> dict[str, int]:
    """Replacement width minus one, for every character whose replacement is not one character."""
    return {
        chr(point): (len(replacement) if replacement is not None else 0) - 1
        for point, replacement in _table().items()
        if replacement is None or len(replacement) != 1
    }


def _class_body(points: list[int]) -> str:
    """A character-class body for sorted code points, consecutive ones written as ranges."""
    ranges: list[tuple[int, int]] = []
    for point in points:
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1] = (ranges[-1][0], point)
        else:
            ranges.append((point, point))
    return "".join(
        re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
        for lo, hi in ranges
    )


_BLOCK = 2048
"""Characters per block tested for ASCII before it is cut into chunks."""
_CHUNK = 128
"""Characters per chunk translated or kept whole: short enough that a stray non-ASCII character
in English text costs little, long enough that the loop stays cheap on dense non-ASCII text."""
_SEQUENCE_LIMIT = 0x20000
_BMP_LAST = 0xFFFF
_BEYOND_MARK = ASTRAL_INVISIBLE_MARK
