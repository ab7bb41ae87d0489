"""PII detection for what agents send out and for what the audit log stores.

Structured identifiers are validated, not just matched, so that order numbers and timestamps do
not count as personal data: card numbers must pass the Luhn check and carry a known issuer prefix,
IBANs must have their country's length and pass ISO 13616 mod-97, US social security numbers must
avoid the ranges the SSA never issues (area 000, 666, 900-999; group 00; serial 0000), UK national
insurance numbers must use the allowed prefix letters. Passport numbers and dates of birth have no
checkable shape, so they are found by their label ("passport no.", "DOB").

Well-known documentation values (Visa test card 4111 1111 1111 1111, the IBAN ``GB82 WEST 1234
5698 7654 32``, SSN 078-05-1120, NINO ``QQ 12 34 56 C``) and addresses at ``example.com`` are reported
with a low score as ``:placeholder``.

Example::

    from clearance.scan.pii import PiiScanner

    kinds = [f.kind for f in PiiScanner().scan("Card 4556 7375 8689 9855, IBAN DE44 5001 0517 5407 3249 31")]
    assert kinds == ["card-number", "iban"]
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from clearance.scan._match import Rule, Substrings, char_spans, lowercase, run
from clearance.scan.finding import Finding, make_finding

NAME = "pii"
THRESHOLD = 0.5
"""Flag threshold; justified by the tuning split in docs/scanning.md."""

_PLACEHOLDER_SCORE = 0.2

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VG": 24,
    "XK": 20,
}
"""IBAN length per country (ISO 13616 registry)."""

_KNOWN_EXAMPLES = frozenset(
    {
        "4111111111111111",
        "4242424242424242",
        "5555555555554444",
        "4012888888881881",
        "378282246310005",
        "6011111111111117",
        "5105105105105100",
        "4000056655665556",
        "GB82WEST12345698765432",
        "DE89370400440532013000",
        "GB29NWBK60161331926819",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "078051120",
        "123456789",
        "219099999",
        "QQ123456C",
        "AB123456C",
    }
)
_EXAMPLE_DOMAINS = re.compile(
    r"(?i)@(?:[a-z0-9-]+\.)*(?:example\.(?:com|org|net)|test|invalid|localhost)$"
)


_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
"""Each digit doubled, with the digits of the product summed (Luhn's second-digit rule)."""


_LUHN_DOUBLED_ASCII = str.maketrans("0123456789", "".join(map(str, _LUHN_DOUBLED)))


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod-10) check."""
    doubled = digits[-2::-2]
    if doubled.isascii():  # doubled with one translate (text dense in card-like numbers)
        second = sum(map(int, doubled.translate(_LUHN_DOUBLED_ASCII)))
    else:  # digits of other scripts: int() reads them, the table does not
        second = sum(_LUHN_DOUBLED[int(c)] for c in doubled)
    return (sum(map(int, digits[-1::-2])) + second) % 10 == 0


def iban_valid(iban: str) -> bool:
    """True when ``iban`` (spaces allowed) has its country's length and passes mod-97."""
    compact = iban.replace(" ", "").upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[47]|6(?:011|5|4[4-9])|3(?:0[0-5]|[68])|35")


_CARD_SEPARATORS = str.maketrans("", "", " -")
_NON_DIGIT = re.compile(r"\D")


def _card(value: str) -> str | None:
    digits = value.translate(_CARD_SEPARATORS)
    if not 13 <= len(digits) <= 19 or not _CARD_PREFIX.match(digits) or not luhn_valid(digits):
        return None
    return digits


def _iban(value: str) -> str | None:
    compact = value.replace(" ", "").upper()
    return compact if iban_valid(compact) else None


def _ssn(value: str) -> str | None:
    digits = value.translate(_CARD_SEPARATORS)
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    return digits


def _same(value: str) -> str | None:
    return value.replace(" ", "").upper()


def _phone(value: str) -> str | None:
    digits = _NON_DIGIT.sub("", value)
    return digits if 10 <= len(digits) <= 15 else None


@dataclass(frozen=True, slots=True)
class _Rule:
    """A PII pattern, its validator and how it is gated (see ``clearance.scan._match``).

    ``digits`` rules run only in windows around runs of digits; the others run through their
    ``gate`` rule's triggers (an ``@`` for emails, a label word for passports and birth dates).
    """

    kind: str
    score: float
    pattern: re.Pattern[str]
    validate: Callable[[str], str | None]
    group: int = 0
    digits: bool = False
    words: tuple[str, ...] = ()
    literals: tuple[str, ...] = ()
    back: int = 0
    gate: Rule = field(init=False, repr=False, compare=False)
    """The keyword-gated form of this rule, built once."""

    def __post_init__(self) -> None:
        gate = Rule(
            self.kind,
            self.score,
            self.pattern,
            words=self.words,
            literals=self.literals,
            back=self.back,
            window=300,
            group=self.group,
            lower=bool(self.words),
        )
        object.__setattr__(self, "gate", gate)


_DIGIT_SEPARATORS = " ().+/-"
_MIN_DIGITS = 6
"""Windows are cut only around runs of six or more digits with only separators between them.

Every digit rule needs that much inside one such run: a card number 13 digits, a phone number 10,
an SSN 9, a NINO 6 ("12 34 56"); an IBAN's account number, the part after the bank code, is
numeric in every registered country format and longer than six digits.
"""
_DIGIT_MARGIN = 16
"""Characters around a run of digits that a digit rule may still need (an IBAN's country code)."""
_SEPARATOR = "\x00"
"""Joins the windows into one string; no digit rule matches across it."""


# Digit-rule patterns open with a character class and check the character before it with a
# lookbehind placed after it: the regex engine then skips to candidate characters in C, where a
# leading lookbehind would be tried at every position (3-5x slower).
_RULES: tuple[_Rule, ...] = (
    _Rule(
        "email",
        0.7,
        re.compile(
            r"(?<![\w.+:/-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b"
        ),
        str.lower,
        literals=("@",),
        back=65,
    ),
    _Rule(
        "card-number",
        0.9,
        re.compile(r"\d(?<![\d-]\d)(?:[ -]?\d){12,18}(?![\d-])"),
        _card,
        digits=True,
    ),
    _Rule(
        "iban",
        0.9,
        re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
        _iban,
        digits=True,
    ),
    _Rule(
        "us-ssn",
        0.85,
        re.compile(r"\d(?<![\d-]\d)\d{2}-\d{2}-\d{4}(?![\d-])"),
        _ssn,
        digits=True,
    ),
    _Rule(
        "us-ssn",
        0.85,
        re.compile(
            r"(?i)\b(?:ssn|social\s+security(?:\s+(?:number|no\.?))?)\s*[:#]?\s*(\d{3} ?\d{2} ?\d{4})\b"
        ),
        _ssn,
        1,
        words=("ssn", "social"),
    ),
    _Rule(
        "uk-nino",
        0.8,
        re.compile(
            r"[A-CEGHJ-PR-TW-Z](?<!\w[A-Z])[A-CEGHJ-NPR-TW-Z](?<!BG|GB|NK|KN|TN|NT|ZZ)"
            r" ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
        ),
        _same,
        digits=True,
    ),
    _Rule(
        "passport-number",
        0.8,
        re.compile(
            r"(?i)\bpassport(?:\s+(?:no\.?|number|num|#))?\s*(?:is\s+)?[:#]?\s*"
            r"([A-Z]{0,2}\d[A-Z0-9]{5,8})\b"
        ),
        _same,
        1,
        words=("passport",),
    ),
    _Rule(
        "date-of-birth",
        0.7,
        re.compile(
            r"(?i)\b(?:dob|d\.o\.b\.|date\s+of\s+birth|born\s+on|birth\s*date)\s*[:\-]?\s*"
            r"(\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{1,2}\s+[A-Za-z]{3,9}\s+\d{4}|[A-Za-z]{3,9}\s+\d{1,2},?\s+\d{4})"
        ),
        _same,
        1,
        words=("dob", "birth", "born", "birthdate"),
        literals=("d.o.b",),
        back=12,
    ),
    _Rule(
        "phone-number",
        0.6,
        re.compile(
            r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,8}){1,4}"
            r"|\(\d{3}\)\s?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w-])"
        ),
        _phone,
        digits=True,
    ),
)


class PiiScanner:
    """Validated PII scanner; see the module docstring.

    Args:
        threshold: flag threshold reported by :attr:`threshold` (defaults to :data:`THRESHOLD`).
    """

    def __init__(self, *, threshold: float = THRESHOLD) -> None:
        self._threshold = threshold

    @property
    def name(self) -> str:
        """Always ``pii``."""
        return NAME

    @property
    def threshold(self) -> float:
        """Score at which a text counts as carrying personal data."""
        return self._threshold

    def scan(self, text: str) -> list[Finding]:
        """Return PII findings for ``text``, ordered by start offset; overlapping spans keep the first rule."""
        findings: list[Finding] = []
        taken = _Spans()
        low = lowercase(text)
        words = Substrings(low)
        windows = _Windows(text)
        for rule in _RULES:
            if rule.digits:
                matches = windows.matches(rule.pattern)
            else:
                matches = run(rule.gate, text, low, words)
            for match in matches:
                start, end = (
                    windows.span(match, rule.group) if rule.digits else match.span(rule.group)
                )
                if taken.overlaps(start, end):
                    continue
                value = rule.validate(match.group(rule.group))
                if value is None:
                    continue
                taken.add(start, end)
                if value in _KNOWN_EXAMPLES or (
                    rule.kind == "email" and _EXAMPLE_DOMAINS.search(value)
                ):
                    findings.append(
                        make_finding(
                            NAME, f"{rule.kind}:placeholder", _PLACEHOLDER_SCORE, text, start, end
                        )
                    )
                else:
                    findings.append(make_finding(NAME, rule.kind, rule.score, text, start, end))
        findings.sort(key=lambda f: (f.start, f.end, f.kind))
        return findings


class _Spans:
    """Pairwise disjoint spans, sorted: an overlap test costs a bisection, not a pass.

    A text full of personal data (a CSV export) has thousands of findings; testing each new
    match against all of them made the scan quadratic.
    """

    __slots__ = ("_ends", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        """True when ``[start, end)`` shares a position with a span already added."""
        # INVARIANT: the spans are disjoint, so the last one starting before ``end`` is also the
        # one ending last among them.
        index = bisect.bisect_left(self._starts, end) - 1
        return index >= 0 and self._ends[index] > start

    def add(self, start: int, end: int) -> None:
        """Add a span that :meth:`overlaps` said is free."""
        index = bisect.bisect_left(self._starts, start)
        self._starts.insert(index, start)
        self._ends.insert(index, end)


def _digit_runs(text: str) -> list[tuple[int, int]]:
    """Spans from the first to the last digit of each stretch of digits and separators that
    holds at least :data:`_MIN_DIGITS` digits.

    The UTF-8 text is translated so that digits become ``a``, separators ``b`` and everything
    else a space, and a bytes pattern that opens with the literal ``a`` finds the stretches: the
    engine then skips to digits at ``memchr`` speed, where a pattern opening with a digit class
    is tested at every position of the text (about ten times slower on prose).
    """
    raw = text.encode("utf-8", "surrogatepass")
    spans = [match.span() for match in _SIX_DIGITS.finditer(raw.translate(_DIGIT_CLASSES))]
    return spans if len(raw) == len(text) else char_spans(text, raw, spans)


def _digit_classes() -> bytes:
    table = bytearray(b" " * 256)
    for char in "0123456789":
        table[ord(char)] = ord("a")
    for char in _DIGIT_SEPARATORS:
        table[ord(char)] = ord("b")
    return bytes(table)


_DIGIT_CLASSES = _digit_classes()
_SIX_DIGITS = re.compile(b"a(?:b*+a){%d,}" % (_MIN_DIGITS - 1))
"""Six digits or more, separators between them (possessive: a shorter stretch fails once)."""


class _Windows:
    """The windows around runs of digits (the only places digit rules can match), joined.

    Running each digit rule once over the joined windows costs one regex call per rule instead of
    one per rule and window; :meth:`span` maps a match back to the original text.

    # INVARIANT: window ends never cut a run of digits, because the window of a run that starts
    # near another window's end overlaps it and the two are merged.
    """

    __slots__ = ("_joined", "_starts", "_text_starts")

    def __init__(self, text: str) -> None:
        windows: list[tuple[int, int]] = []
        for first, last in _digit_runs(text):
            low, high = max(0, first - _DIGIT_MARGIN), last + _DIGIT_MARGIN
            if windows and low <= windows[-1][1]:
                windows[-1] = (windows[-1][0], high)
            else:
                windows.append((low, high))
        parts = [text[low:high] for low, high in windows]
        self._joined = _SEPARATOR.join(parts)
        self._text_starts = [low for low, _ in windows]
        self._starts: list[int] = []
        offset = 0
        for part in parts:
            self._starts.append(offset)
            offset += len(part) + len(_SEPARATOR)

    def matches(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        """Every match of ``pattern`` inside the windows, in text order."""
        return list(pattern.finditer(self._joined)) if self._starts else []

    def span(self, match: re.Match[str], group: int) -> tuple[int, int]:
        """The span of ``match``'s ``group`` in the original text."""
        start, end = match.span(group)
        index = bisect.bisect_right(self._starts, start) - 1
        shift = self._text_starts[index] - self._starts[index]
        return start + shift, end + shift
