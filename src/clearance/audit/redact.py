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
``BUILTIN_DETECTORS`` makes masking work on its own. Redaction is idempotent and never mutates its
input.

Path syntax: dot-separated member names, ``*`` matches any member or list element
(``args.*.token``, ``messages.*.content``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from clearance.audit.sign import MaskKey
from clearance.formats.canonical import canonical_bytes

Span = tuple[int, int, str]
Detector = Callable[[str], list[Span]]
PathAction = Literal["remove", "tag"]

TAG_RE = re.compile(r"hmac-sha256:[a-z0-9-]+:[A-Za-z0-9_-]{22}\Z")
REDACTED_PREFIX = "redacted:"


def _regex_detector(name: str, pattern: str, *, group: int = 0, flags: int = 0) -> Detector:
    compiled = re.compile(pattern, flags)

    def detect(text: str) -> list[Span]:
        return [(m.start(group), m.end(group), name) for m in compiled.finditer(text)]

    detect.__name__ = f"detect_{name.replace('-', '_')}"
    return detect


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum used by payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_CARD_RE = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")


def detect_card_numbers(text: str) -> list[Span]:
    """13-19 digit runs (spaces or dashes allowed) that pass the Luhn check."""
    out = []
    for m in _CARD_RE.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            out.append((m.start(), m.end(), "card-number"))
    return out


BUILTIN_DETECTORS: tuple[Detector, ...] = (
    _regex_detector(
        "private-key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*\Z)",
        flags=re.S,
    ),
    _regex_detector("aws-access-key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    _regex_detector(
        "aws-secret-key",
        r"(?i)aws_?secret_?access_?key[\"'\s:=]+([A-Za-z0-9/+=]{40})",
        group=1,
    ),
    _regex_detector(
        "github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"
    ),
    _regex_detector("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    _regex_detector("stripe-key", r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    _regex_detector("openai-key", r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}"),
    _regex_detector("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}"),
    _regex_detector("jwt", r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}"),
    _regex_detector("bearer-token", r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{16,}=*)", group=1),
    _regex_detector(
        "api-token",
        r"(?i)\b(?:api[_-]?key|access[_-]?token|auth[_-]?token|secret|password|passwd|pwd)"
        r"[\"']?\s*[:=]\s*[\"']?([^\s\"',;]{8,})",
        group=1,
    ),
    _regex_detector("url-password", r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:([^@\s/]+)@", group=1),
    detect_card_numbers,
)


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
    """Configured path masking plus secret detection (see the module docstring)."""

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

    def tag(self, value: Any) -> str:
        """The masking tag of a value (equal values give equal tags under one key)."""
        if self._key is None:
            raise ValueError("no masking key configured")
        if isinstance(value, str) and TAG_RE.match(value):
            return value
        return self._key.tag(normalise(value))

    def redact(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A masked deep copy of ``payload``."""
        out = _copy(payload)
        for parts, action in self._paths:
            _apply(out, parts, action, self)
        masked = _mask_strings(out, self._detectors)
        return masked if isinstance(masked, dict) else {}


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
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


def _mask_strings(value: Any, detectors: Sequence[Detector]) -> Any:
    if isinstance(value, str):
        return value if TAG_RE.match(value) else mask_text(value, detectors)
    if isinstance(value, dict):
        return {k: _mask_strings(v, detectors) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_strings(v, detectors) for v in value]
    return value
