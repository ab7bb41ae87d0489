"""The one shape every content scanner returns, and the interface scanners share.

A scanner answers "what in this text looks like X, where, and how sure am I", never "is this
allowed": the gate and policy turn findings into taint, masking and decisions. Keeping the answer a
plain frozen value means findings can be logged, compared in tests and passed to policy unchanged.

Example::

    from clearance.scan import SecretScanner

    findings = SecretScanner().scan("token ghp_R7b2Kq9ZxLm4Tn8Vw1Yc5Pd3Hf6Js0Ga2Eu9")
    assert findings[0].kind == "github-token"
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

EXCERPT_LIMIT = 80
"""Excerpts are cut to this many characters so a finding never carries a whole document."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One suspicious span of a text.

    Attributes:
        scanner: name of the scanner that produced it (``injection``, ``secrets``, ``pii``, ``urls``).
        kind: what was found, a short stable slug such as ``override-phrase`` or ``aws-access-key-id``.
        score: confidence in ``[0, 1]``; each scanner documents the threshold its measurement supports.
        start: index of the first character of the span in the scanned text.
        end: index one past the last character; ``start <= end``.
        excerpt: the matched text, cut to ``EXCERPT_LIMIT`` characters. It may itself be sensitive
            (a secret scanner's excerpt is the secret): mask it before logging.
    """

    scanner: str
    kind: str
    score: float
    start: int
    end: int
    excerpt: str

    def __init__(
        self, scanner: str, kind: str, score: float, start: int, end: int, excerpt: str
    ) -> None:
        # Written out instead of generated: the generated one of a frozen dataclass looks
        # object.__setattr__ up for every field, about twice the cost, and text dense in
        # findings (100 KB of "SSN: ..." lines) creates thousands of them per scan.
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"finding score must be within [0, 1], got {score}")
        if not 0 <= start <= end:
            raise ValueError(f"finding span must satisfy 0 <= start <= end, got {start}..{end}")
        _set(self, "scanner", scanner)
        _set(self, "kind", kind)
        _set(self, "score", score)
        _set(self, "start", start)
        _set(self, "end", end)
        _set(self, "excerpt", excerpt)


_set = object.__setattr__


@runtime_checkable
class Scanner(Protocol):
    """A content scanner: pure, deterministic, and fast enough to run on every tool output.

    Implementations must not read the clock, use randomness or do I/O, so the same text always yields
    the same findings (replay depends on it).
    """

    @property
    def name(self) -> str:
        """Stable name, used as ``Finding.scanner`` and on the command line."""
        ...

    @property
    def threshold(self) -> float:
        """The score at or above which a text counts as flagged; measured, see docs/scanning.md."""
        ...

    def scan(self, text: str) -> list[Finding]:
        """Return every finding in ``text``, ordered by start offset."""
        ...


def make_finding(scanner: str, kind: str, score: float, text: str, start: int, end: int) -> Finding:
    """Build a finding whose excerpt is cut from ``text``; scores are clamped into ``[0, 1]``."""
    return Finding(
        scanner, kind, min(1.0, max(0.0, score)), start, end, text[start:end][:EXCERPT_LIMIT]
    )


def max_score(findings: Iterable[Finding]) -> float:
    """The highest score among ``findings``, 0.0 when there are none."""
    return max((f.score for f in findings), default=0.0)


def flagged(findings: Iterable[Finding], threshold: float) -> bool:
    """True when any finding reaches ``threshold``: the decision rule measured in the evaluation."""
    return max_score(findings) >= threshold
