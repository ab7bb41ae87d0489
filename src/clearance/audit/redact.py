"""Masking before storage: configured field paths and detected secrets never reach the disk.

Example::

    >>> from clearance.audit.redact import Redactor
    >>> r = Redactor(mask_key, paths={"args.password": "remove", "agent_id": "tag"})  # doctest: +SKIP
    >>> r.redact({"agent_id": "a-1", "args": {"password": "x", "note": "key AKIAABCDEFGHIJKLMNOP"}})
    ... # doctest: +SKIP
    {'agent_id': 'hmac-sha256:m1:...', 'args': {'note': 'key redacted:aws-access-key'}}

Order (AUDIT.md 3.4): configured paths first (removed, or replaced by a keyed-HMAC tag so equal
values still correlate), then every remaining string is run through the secret detectors and each
detected span is replaced by ``redacted:<detector>``. Detectors are plain callables
``(text) -> [(start, end, name), ...]`` so the content scanners can supply their own;
``BUILTIN_DETECTORS`` makes masking work on its own. A ``PatternDetector`` also carries a
``Trigger``, a necessary condition for a match, so text that cannot hold a secret (most of every
payload) is passed over after a few substring searches. Redaction is idempotent and never mutates
its input.

Path syntax: dot-separated member names, ``*`` matches any member or list element
(``args.*.token``, ``messages.*.content``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from clearance.audit.sign import MaskKey
from clearance.formats.canonical import canonical_bytes

Span = tuple[int, int, str]
Detector = Callable[[str], list[Span]]
PathAction = Literal["remove", "tag"]

TAG_RE = re.compile(r"hmac-sha256:[a-z0-9-]+:[A-Za-z0-9_-]{22}\Z")
REDACTED_PREFIX = "redacted:"


@dataclass(frozen=True, slots=True)
class Trigger:
    """A necessary condition for a detector to match: a cheap test that lets masking skip text.

    Every text the detector can match contains one of ``literals`` (exactly), one of
    ``caseless`` (ignoring case, with the same Unicode case rules as the detector's ``(?i)``),
    or a match of ``pattern``. Text with none of them cannot match, so it needs no detection;
    that is what makes masking cost a few substring searches per payload instead of a dozen
    regular expressions per string. Each built-in trigger below says why it is necessary.
    """

    literals: tuple[str, ...] = ()
    caseless: tuple[str, ...] = ()
    pattern: str | None = None


class PatternDetector:
    """A detector from one regular expression, with the ``Trigger`` that must hold for a match.

    ``group`` picks the masked part of each match; ``accept`` filters matches (the Luhn check).
    """

    __slots__ = ("__name__", "_accept", "_compiled", "_group", "name", "trigger")

    def __init__(
        self,
        name: str,
        pattern: str,
        trigger: Trigger,
        *,
        group: int = 0,
        flags: int = 0,
        accept: Callable[[str], bool] | None = None,
    ) -> None:
        self.name = name
        self.trigger = trigger
        self._compiled = re.compile(pattern, flags)
        self._group = group
        self._accept = accept
        self.__name__ = f"detect_{name.replace('-', '_')}"

    def __call__(self, text: str) -> list[Span]:
        """Spans ``(start, end, name)`` of every match in ``text``."""
        g = self._group
        accept = self._accept
        return [
            (m.start(g), m.end(g), self.name)
            for m in self._compiled.finditer(text)
            if accept is None or accept(m.group(g))
        ]


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum used by payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_number(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


# Each trigger is read off its pattern: the literals are fixed text every match contains (the
# prefix alternatives, or a keyword before the captured secret), case-insensitive exactly where
# the pattern is ``(?i)``. Lookarounds and ``\b`` are dropped, which only widens the trigger.
detect_card_numbers = PatternDetector(
    "card-number",
    r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])",
    # A match is 13 or more digits, each followed by at most one space or dash: it starts with a
    # digit followed by 12 characters that are digits, spaces or dashes.
    Trigger(pattern=r"\d[\d -]{12}"),
    accept=_card_number,
)
"""13-19 digit runs (spaces or dashes allowed) that pass the Luhn check."""

BUILTIN_DETECTORS: tuple[PatternDetector, ...] = (
    PatternDetector(
        "private-key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*\Z)",
        Trigger(literals=("-----BEGIN ",)),
        flags=re.S,
    ),
    PatternDetector(
        "aws-access-key",
        r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
        Trigger(literals=("AKIA", "ASIA", "ABIA", "ACCA")),
    ),
    PatternDetector(
        "aws-secret-key",
        r"(?i)aws_?secret_?access_?key[\"'\s:=]+([A-Za-z0-9/+=]{40})",
        Trigger(caseless=("secret",)),
        group=1,
    ),
    PatternDetector(
        "github-token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        Trigger(literals=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    ),
    PatternDetector("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", Trigger(literals=("xox",))),
    PatternDetector(
        "stripe-key",
        r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
        Trigger(literals=("k_live_", "k_test_")),
    ),
    PatternDetector("openai-key", r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}", Trigger(literals=("sk-",))),
    PatternDetector("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}", Trigger(literals=("AIza",))),
    PatternDetector(
        "jwt",
        r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}",
        Trigger(literals=("eyJ",)),
    ),
    PatternDetector(
        "bearer-token",
        r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{16,}=*)",
        Trigger(caseless=("bearer",)),
        group=1,
    ),
    PatternDetector(
        "api-token",
        r"(?i)\b(?:api[_-]?key|access[_-]?token|auth[_-]?token|secret|password|passwd|pwd)"
        r"[\"']?\s*[:=]\s*[\"']?([^\s\"',;]{8,})",
        # ``passw`` covers ``password`` and ``passwd``.
        Trigger(caseless=("api", "access", "auth", "secret", "passw", "pwd")),
        group=1,
    ),
    PatternDetector(
        "url-password",
        r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:([^@\s/]+)@",
        Trigger(literals=("://",)),
        group=1,
    ),
    detect_card_numbers,
)


class _Prefilter:
    """The union of the triggers of a set of detectors: ``may_match(text)`` is False only when
    no detector can match ``text``.

    Case-insensitive literals are compared against ``text.lower()`` when the text is ASCII (for
    ASCII text that is exactly ``(?i)`` matching) and with a ``(?i)`` expression otherwise, since
    Unicode case rules let non-ASCII letters match ASCII ones (the long s, U+017F, matches ``s``).
    """

    __slots__ = ("_caseless", "_caseless_re", "_literals", "_pattern")

    def __init__(self, triggers: Sequence[Trigger]) -> None:
        self._literals = tuple(dict.fromkeys(lit for t in triggers for lit in t.literals))
        self._caseless = tuple(dict.fromkeys(c.lower() for t in triggers for c in t.caseless))
        self._caseless_re = re.compile(
            "|".join(re.escape(c) for c in self._caseless), re.IGNORECASE
        )
        patterns = [t.pattern for t in triggers if t.pattern is not None]
        self._pattern = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    def may_match(self, text: str) -> bool:
        for lit in self._literals:
            if lit in text:
                return True
        if self._caseless:
            if text.isascii():
                low = text.lower()
                for lit in self._caseless:
                    if lit in low:
                        return True
            elif self._caseless_re.search(text) is not None:
                return True
        return self._pattern is not None and self._pattern.search(text) is not None


def _merge(spans: Iterable[Span]) -> list[Span]:
    """Overlapping spans merge; the earliest-starting detector names the merged span."""
    merged: list[Span] = []
    for start, end, name in sorted(spans):
        if merged and start < merged[-1][1]:
            prev = merged[-1]
            merged[-1] = (prev[0], max(prev[1], end), prev[2])
        else:
            merged.append((start, end, name))
    return merged


def mask_text(text: str, detectors: Sequence[Detector]) -> str:
    """Replace every detected span with ``redacted:<detector>``."""
    spans = _merge(s for d in detectors for s in d(text) if s[1] > s[0])
    if not spans:
        return text
    out = []
    pos = 0
    for start, end, name in spans:
        out.append(text[pos:start])
        out.append(REDACTED_PREFIX + name)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def normalise(value: Any) -> bytes:
    """What a tag is computed over: NFC-normalised, trimmed text, or canonical JSON for non-strings."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value).strip().encode("utf-8")
    return canonical_bytes(value)


class Redactor:
    """Configured path masking plus secret detection (see the module docstring).

    Detection is skipped for text that no detector's ``Trigger`` can match: first for all the
    payload's strings at once (the usual case, a payload without secrets, costs one pass of
    substring searches), then string by string. Detectors without a trigger (custom callables)
    run on every string. The output is exactly what running every detector on every string
    would give; ``tests/unit/audit/test_redact.py`` checks that against the unfiltered run.
    """

    def __init__(
        self,
        mask_key: MaskKey | None = None,
        *,
        paths: Mapping[str, PathAction] | None = None,
        detectors: Sequence[Detector] = BUILTIN_DETECTORS,
    ) -> None:
        self._key = mask_key
        self._paths = [(p.split("."), action) for p, action in (paths or {}).items()]
        if any(action == "tag" for _, action in self._paths) and mask_key is None:
            raise ValueError("tagging a field path needs a masking key")
        self._detectors = tuple(detectors)
        triggers = [d.trigger for d in self._detectors if isinstance(d, PatternDetector)]
        self._prefilter = _Prefilter(triggers) if len(triggers) == len(self._detectors) else None

    def tag(self, value: Any) -> str:
        """The masking tag of a value (equal values give equal tags under one key)."""
        if self._key is None:
            raise ValueError("no masking key configured")
        if isinstance(value, str) and TAG_RE.match(value):
            return value
        return self._key.tag(normalise(value))

    def redact(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A masked deep copy of ``payload``."""
        strings: list[str] = []
        out = _copy(payload, strings)
        for parts, action in self._paths:
            _apply(out, parts, action, self)
        if not self._detectors:
            return out
        check = None
        if self._prefilter is not None:
            # INVARIANT: every string of ``out`` is in ``strings`` or is a masking tag (which
            # detection skips), and a trigger that holds for one string holds for the joined text.
            if not self._prefilter.may_match("\x00".join(strings)):
                return out
            check = self._prefilter.may_match
        masked: dict[str, Any] = _mask_strings(out, self._detectors, check)
        return masked


def _copy(value: Mapping[str, Any], strings: list[str]) -> dict[str, Any]:
    """A deep copy (mappings become dicts, sequences lists); appends every string it holds."""
    return {k: _copy_value(v, strings) for k, v in value.items()}


def _copy_value(value: Any, strings: list[str]) -> Any:
    if isinstance(value, str):
        strings.append(value)
        return value
    if isinstance(value, Mapping):
        return _copy(value, strings)
    if isinstance(value, list | tuple):
        return [_copy_value(v, strings) for v in value]
    return value


def _apply(node: Any, parts: list[str], action: PathAction, redactor: Redactor) -> None:
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
        for k in keys:
            if rest:
                _apply(node[k], rest, action, redactor)
            elif action == "remove":
                del node[k]
            else:
                node[k] = redactor.tag(node[k])
    elif isinstance(node, list) and (head == "*" or head.isdigit()):
        indexes = range(len(node)) if head == "*" else [int(head)] if int(head) < len(node) else []
        for i in sorted(indexes, reverse=True):
            if rest:
                _apply(node[i], rest, action, redactor)
            elif action == "remove":
                del node[i]
            else:
                node[i] = redactor.tag(node[i])


def _mask_strings(
    value: Any, detectors: Sequence[Detector], check: Callable[[str], bool] | None
) -> Any:
    if isinstance(value, str):
        if TAG_RE.match(value) or (check is not None and not check(value)):
            return value
        return mask_text(value, detectors)
    if isinstance(value, dict):
        return {k: _mask_strings(v, detectors, check) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_strings(v, detectors, check) for v in value]
    return value
