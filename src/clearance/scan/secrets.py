"""Secret detection for what agents send out and for what the audit log stores.

Two kinds of evidence, with different confidence:

* **formats**: credentials with a recognisable shape (AWS ``AKIA``/``ASIA`` key ids and secret keys,
  GCP service-account JSON and API keys, Azure storage keys and client secrets, GitHub, GitLab, Slack,
  Stripe, OpenAI- and Anthropic-style tokens, JWTs, PEM private keys, passwords in URLs);
* **entropy**: long random-looking strings, by Shannon entropy in bits per character. Entropy alone is
  weak evidence (hashes and ids are random too), so it scores below the flag threshold unless a
  keyword such as ``secret`` or ``token`` names the value.

Documented placeholders (``AKIAIOSFODNN7EXAMPLE``, ``<password>``, ``xxxx``) are reported with a low
score and a ``:placeholder`` kind, so masking can still hide them but policy need not fire.

Example::

    from clearance.scan.secrets import SecretScanner

    found = SecretScanner().scan("postgres://app:S3cr3t-pw@db.internal/prod")
    assert [f.kind for f in found] == ["password-in-url"]
"""

from __future__ import annotations

import bisect
import math
import re
import string
from collections import Counter
from functools import cache
from itertools import accumulate

from clearance.scan._match import Alphabet, Rule, lowercase, run
from clearance.scan.finding import Finding, make_finding

NAME = "secrets"
THRESHOLD = 0.6
"""Flag threshold; justified by the tuning split in docs/scanning.md."""

ENTROPY_BITS = 4.0
"""Minimum Shannon entropy (bits/char) of a 24+ character base64-alphabet string to count as random."""

HEX_ENTROPY_BITS = 3.0
"""The same for hexadecimal strings, whose alphabet caps entropy at 4 bits/char."""

_PLACEHOLDER_SCORE = 0.2
_ENTROPY_SCORE = 0.4
_NAMED_ENTROPY_SCORE = 0.75


def _rule(  # a table row: every field is named at the call site
    kind: str,
    score: float,
    pattern: str,
    *,
    literals: tuple[str, ...],
    group: int = 0,
    back: int = 0,
    lower: bool = False,
    window: int = 400,
) -> Rule:
    return Rule(
        kind,
        score,
        re.compile(pattern),
        literals=literals,
        back=back,
        window=window,
        group=group,
        lower=lower,
    )


_AWS_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA")
_RULES: tuple[Rule, ...] = (
    _rule(
        "aws-access-key-id",
        0.9,
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b",
        literals=(*_AWS_PREFIXES, "APKA"),
    ),
    _rule(
        "aws-secret-access-key",
        0.9,
        r"aws.{0,20}?(?:secret|sk|private).{0,20}?['\"]?\s*[:=]\s*['\"]?"
        r"([a-z0-9/+]{40})(?![a-z0-9/+])",
        literals=("aws",),
        group=1,
        lower=True,
    ),
    _rule(
        "gcp-service-account",
        0.95,
        r"\"type\"\s*:\s*\"service_account\"[^}]{0,400}?\"private_key(?:_id)?\"\s*:",
        literals=("service_account",),
        back=30,
    ),
    _rule(
        "gcp-api-key",
        0.85,
        r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])",
        literals=("AIza",),
    ),
    _rule(
        "azure-storage-key",
        0.9,
        r"\baccountkey\s*=\s*([a-z0-9+/]{80,}={0,2})",
        literals=("accountkey",),
        group=1,
        lower=True,
    ),
    _rule(
        "azure-client-secret",
        0.8,
        r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
        literals=("Q~",),
        back=4,
    ),
    _rule(
        "azure-sas-token",
        0.7,
        r"[?&]sig=([A-Za-z0-9%+/]{40,}={0,2})",
        literals=("sig=",),
        group=1,
        back=1,
    ),
    _rule(
        "github-token",
        0.95,
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{60,90})\b",
        literals=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _rule(
        "gitlab-token",
        0.95,
        r"\bgl(?:pat|dt|rt|cbt|ptt)-[A-Za-z0-9_-]{20,}",
        literals=("glpat-", "gldt-", "glrt-", "glcbt-", "glptt-"),
    ),
    _rule("slack-token", 0.9, r"\bxox[abposre]-[A-Za-z0-9-]{10,}", literals=("xox",)),
    _rule(
        "slack-webhook",
        0.9,
        r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{16,}",
        literals=("hooks.slack.com",),
        back=8,
    ),
    _rule(
        "stripe-key",
        0.9,
        r"\b(?:sk|rk)_live_[A-Za-z0-9]{16,}",
        literals=("sk_live_", "rk_live_"),
    ),
    _rule(
        "stripe-test-key",
        0.6,
        r"\b(?:sk|rk)_test_[A-Za-z0-9]{16,}",
        literals=("sk_test_", "rk_test_"),
    ),
    _rule("anthropic-key", 0.95, r"\bsk-ant-[A-Za-z0-9_-]{20,}", literals=("sk-ant-",)),
    _rule(
        "openai-key",
        0.9,
        r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}(?![A-Za-z0-9_-])",
        literals=("sk-",),
    ),
    _rule(
        "jwt",
        0.85,
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",
        literals=("eyJ",),
    ),
    _rule(
        "private-key",
        0.95,
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
        r"([A-Za-z0-9+/=\s]{0,200})",
        literals=("-----BEGIN ",),
    ),
    _rule(
        "password-in-url",
        0.85,
        r"\b[a-z][a-z0-9+.-]{1,15}://[^/\s:@]{1,64}:([^/\s@]{1,128})@[a-z0-9.-]",
        # Gated on the "@" (rarer than "://" in web pages), which sits at most 212 characters
        # after the match start: 1 + 15 (scheme) + 3 + 64 (user) + 1 + 128 (password).
        literals=("@",),
        group=1,
        back=212,
        lower=True,
        window=220,
    ),
    _rule(
        "password-assignment",
        0.7,
        r"\b(?:password|passwd|pwd|passphrase|secret|client_secret|api[_-]?key|apikey|"
        r"access[_-]?token|auth[_-]?token|secret[_-]?key)\b[\"']?\s*(?:[:=]|\s+is\b)\s*[\"']?"
        r"([^\s\"',;]{8,})",
        literals=("pass", "pwd", "secret", "api", "token"),
        group=1,
        back=8,
        lower=True,
    ),
)

_PLACEHOLDER_TEXT = (
    r"example|sample|dummy|placeholder|changeme|change_me|your[_-]?|redacted|xxxx|\*\*\*|"
    r"<[^>]*>|\$\{|\{\{|%\(|\.\.\.|0123456789|abcdef|1234567"
)
"""Placeholder marks anywhere in a value."""
_PLACEHOLDER_WHOLE = (
    r"(?:password|secret|token|test|foo|bar|none|null)\d*$|(.)\1+$|(?:[a-z]+_)+[a-z]+$"
)
"""Placeholder shapes of a whole value."""
_PLACEHOLDER = re.compile(f"(?i){_PLACEHOLDER_TEXT}|^(?:{_PLACEHOLDER_WHOLE})")
# For ASCII values the same test runs on the lowercased value without IGNORECASE: the engine can
# then skip to the first letters of the marks in C instead of trying every mark at every position
# (five times faster; it runs for every random-looking candidate of a text).
_PLACEHOLDER_LOWER = re.compile(_PLACEHOLDER_TEXT)
_PLACEHOLDER_WHOLE_LOWER = re.compile(_PLACEHOLDER_WHOLE)
_EXPRESSION = re.compile(r"[\[(]|^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")
"""A value that is code (``os.environ[...]``, ``settings.SECRET_KEY``), not a literal secret."""
_KNOWN_EXAMPLES = frozenset(
    {
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "ASIAIOSFODNN7EXAMPLE",
    }
)
_CANDIDATE = Alphabet(string.ascii_letters + string.digits + "+/_=-")
"""Entropy candidates are maximal runs of 24 or more characters of this alphabet."""
_CANDIDATE_LENGTH = 24
_HEX = re.compile(r"[0-9a-fA-F]+")
_DIGIT = re.compile(r"[0-9]")
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_NAMING_WORDS = (
    r"(?:secret|token|api[_-]?key|apikey|password|passwd|credential|private[_-]?key|"
    r"access[_-]?key|auth|bearer)[^\n]{0,30}$"
)
_NAMING = re.compile(f"(?i){_NAMING_WORDS}")
_NAMING_LOWER = re.compile(_NAMING_WORDS)
"""``_NAMING`` for the lowercased text, where the part before a candidate is ASCII."""
_NAMING_REACH = 40


def shannon_entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character (0.0 for the empty string)."""
    if not value:
        return 0.0
    length = len(value)
    counts = Counter(value).values()
    if length > _TERMS_CACHED:
        return -sum(n / length * math.log2(n / length) for n in counts)
    # The same terms, summed in the same order (so the same float), looked up instead of computed.
    return -sum(map(_terms(length).__getitem__, counts))


@cache
def _terms(length: int) -> list[float]:
    """``n / length * log2(n / length)`` for every count ``n`` up to ``length`` (index 0 unused)."""
    return [0.0, *(n / length * math.log2(n / length) for n in range(1, length + 1))]


_TERMS_CACHED = 256
"""Longest value whose entropy terms are cached; longer ones (rare) are computed directly."""


def is_placeholder(value: str) -> bool:
    """True for values that documentation uses in place of a real secret."""
    if value in _KNOWN_EXAMPLES:
        return True
    if not value.isascii():
        return _PLACEHOLDER.search(value) is not None
    low = value.lower()
    return (
        _PLACEHOLDER_LOWER.search(low) is not None
        or _PLACEHOLDER_WHOLE_LOWER.match(low) is not None
    )


class SecretScanner:
    """Format- and entropy-based secret scanner; see the module docstring.

    Args:
        threshold: flag threshold reported by :attr:`threshold` (defaults to :data:`THRESHOLD`).
        entropy_bits: entropy threshold for base64-alphabet strings (defaults to :data:`ENTROPY_BITS`).
    """

    def __init__(self, *, threshold: float = THRESHOLD, entropy_bits: float = ENTROPY_BITS) -> None:
        self._threshold = threshold
        self._entropy_bits = entropy_bits

    @property
    def name(self) -> str:
        """Always ``secrets``."""
        return NAME

    @property
    def threshold(self) -> float:
        """Score at which a text counts as carrying a secret."""
        return self._threshold

    def scan(self, text: str) -> list[Finding]:
        """Return secret findings for ``text``, ordered by start offset."""
        findings: list[Finding] = []
        covered: list[tuple[int, int]] = []
        low = lowercase(text)
        for rule in _RULES:
            for match in run(rule, text, low, frozenset()):
                start, end = match.span(rule.group)
                value = text[start:end]
                if is_placeholder(value) or _not_literal(rule.kind, value, match):
                    kind, score = f"{rule.kind}:placeholder", _PLACEHOLDER_SCORE
                else:
                    kind, score = rule.kind, rule.score
                findings.append(make_finding(NAME, kind, score, text, start, end))
                covered.append((start, end))
        findings.extend(self._entropy_findings(text, low, covered))
        findings.sort(key=lambda f: (f.start, f.end, f.kind))
        return findings

    def _entropy_findings(
        self, text: str, low: str, covered: list[tuple[int, int]]
    ) -> list[Finding]:
        findings: list[Finding] = []
        cover = _Cover(covered)
        ascii_text = text.isascii()
        # Whether a value looks like a secret depends on the value alone: a hash or a blob
        # repeated through a text (logs, exports) is judged once.
        suspects: dict[str, bool] = {}
        for start, end in _CANDIDATE.runs(text, _CANDIDATE_LENGTH):
            if cover.touches(start, end):
                continue
            value = text[start:end]
            suspect = suspects.get(value)
            if suspect is None:
                suspect = suspects[value] = (
                    _UUID.fullmatch(value) is None
                    and self._random_looking(value)
                    and not is_placeholder(value)
                )
            if not suspect:
                continue
            named = _named(text, low, start, ascii_text=ascii_text)
            score = _NAMED_ENTROPY_SCORE if named else _ENTROPY_SCORE
            findings.append(make_finding(NAME, "high-entropy", score, text, start, end))
        return findings

    def _random_looking(self, value: str) -> bool:
        # Candidates are ASCII (the alphabet is), so case and digits are found with C-speed
        # string methods instead of a generator per character.
        if _HEX.fullmatch(value):
            # Hex strings of hash length are usually digests and commit ids, not credentials.
            return (
                len(value) not in (32, 40, 56, 64, 96, 128)
                and shannon_entropy(value) >= HEX_ENTROPY_BITS
            )
        has_mix = (
            _DIGIT.search(value) is not None and value != value.lower() and value != value.upper()
        )
        return has_mix and shannon_entropy(value) >= self._entropy_bits


def _named(text: str, low: str, start: int, *, ascii_text: bool) -> bool:
    """True when a word such as ``token`` or ``secret`` names the value starting at ``start``.

    Over ASCII, lowercasing and then matching without IGNORECASE gives the same answer faster;
    elsewhere case-insensitive matching knows equivalences lowercasing does not (``\u017f`` is
    an ``s``), so the original pattern runs.
    """
    low_bound = max(0, start - _NAMING_REACH)
    if ascii_text or text[low_bound:start].isascii():
        return _NAMING_LOWER.search(low, low_bound, start) is not None
    return _NAMING.search(text, low_bound, start) is not None


class _Cover:
    """The spans format rules already reported; an entropy candidate starting or ending inside
    one of them is not reported again.

    Text full of findings has thousands of spans and of candidates; the test is two bisections
    over the spans sorted by start, with the running maximum of their ends, not a pass over all.
    """

    __slots__ = ("_max_end", "_starts")

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        ordered = sorted(spans)
        self._starts = [start for start, _ in ordered]
        self._max_end = list(accumulate((end for _, end in ordered), max))

    def touches(self, start: int, end: int) -> bool:
        """True when a span holds ``start`` (``s <= start < e``) or ``end`` (``s < end <= e``)."""
        if not self._starts:
            return False
        index = bisect.bisect_right(self._starts, start) - 1
        if index >= 0 and self._max_end[index] > start:
            return True
        index = bisect.bisect_left(self._starts, end) - 1
        return index >= 0 and self._max_end[index] >= end


def _not_literal(kind: str, value: str, match: re.Match[str]) -> bool:
    """A match that carries no secret: a PEM header without a key body, or an assignment of code."""
    if kind == "private-key":
        return len(re.sub(r"\s", "", match.group(1))) < 40
    if kind == "password-assignment":
        return _EXPRESSION.search(value) is not None
    return False
