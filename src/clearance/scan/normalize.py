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
from functools import cache

INVISIBLE = (
    "\u00ad"  # soft hyphen
    "\u034f"  # combining grapheme joiner
    "\u061c"  # arabic letter mark
    "\u115f\u1160\u17b4\u17b5\u180e"
    "\u200b-\u200f"  # zero-width space/non-joiner/joiner, LRM, RLM
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # bidi isolates
    "\u3164\ufe00-\ufe0f\ufeff\uffa0"
    "\U000e0000-\U000e007f"  # tag characters ("ASCII smuggling")
    "\U000e0100-\U000e01ef"  # variation selectors supplement
)
"""Character class body of the characters that render as nothing and are deleted."""

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


def normalize(text: str) -> str:
    """Return ``text`` with lookalikes folded to Latin and invisible characters removed.

    ASCII text is returned as is (same object), so callers can test ``normalize(t) is t``.
    ``str.translate`` costs a dictionary lookup per character once the text is not pure ASCII, so
    mostly-ASCII text is translated run by run (the ASCII stretches in between are unchanged).
    """
    if text.isascii():
        return text
    table = _table()
    if len(text.encode("utf-8")) > len(text) * _MOSTLY_NON_ASCII:
        return text.translate(table)
    parts: list[str] = []
    last = 0
    for match in _NON_ASCII_RUN.finditer(text):
        parts.append(text[last : match.start()])
        parts.append(match.group().translate(table))
        last = match.end()
    parts.append(text[last:])
    return "".join(parts)


def has_invisible(text: str) -> bool:
    """True when ``text`` contains a character :func:`normalize` deletes as invisible."""
    return not text.isascii() and INVISIBLE_RE.search(text) is not None


class OffsetMap:
    """Maps offsets in ``normalize(text)`` back to offsets in ``text``.

    Only characters whose replacement is not exactly one character move later offsets, so the map
    stores one breakpoint per such character, found with one regex pass over exactly those.
    """

    __slots__ = ("_norm", "_orig")

    def __init__(self, text: str) -> None:
        table = _table()
        norm_breaks: list[int] = [0]
        orig_breaks: list[int] = [0]
        shift = 0
        for match in _resizing_re().finditer(text):
            replacement = table.get(ord(match.group()), match.group())
            width = len(replacement) if replacement is not None else 0
            if width != 1:
                orig = match.start() + 1
                shift += width - 1
                norm_breaks.append(orig + shift)
                orig_breaks.append(orig)
        self._norm = norm_breaks
        self._orig = orig_breaks

    def to_original(self, offset: int) -> int:
        """The original offset of normalised ``offset`` (the start of the character it came from)."""
        index = bisect.bisect_right(self._norm, offset) - 1
        return self._orig[index] + (offset - self._norm[index])


@cache
def _resizing_re() -> re.Pattern[str]:
    """A character class of the characters whose replacement is not exactly one character."""
    points = sorted(p for p, r in _table().items() if r is None or len(r) != 1)
    ranges: list[tuple[int, int]] = []
    for point in points:
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1] = (ranges[-1][0], point)
        else:
            ranges.append((point, point))
    body = "".join(
        re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
        for lo, hi in ranges
    )
    return re.compile(f"[{body}]")


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_MOSTLY_NON_ASCII = 1.3
"""UTF-8 bytes per character above which translating the whole text beats translating runs."""
