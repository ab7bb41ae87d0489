"""The ``scan`` variable: what the scanners find in a request's outbound text.

An agent with a legitimate recipient can still exfiltrate: a key pasted into an email body, a
passport number, a link planted by a fetched page. Policy asks about that through ``scan``:

=================  ==================================================================
``injection``      highest injection score (0..1) over the arguments' text
``secrets``        sorted kinds of flagged secrets (``aws-access-key-id``, ...)
``pii``            sorted kinds of flagged personal data (``email``, ``iban``, ...)
``urls``           every URL in the arguments, as written, in order of appearance
=================  ==================================================================

Only kinds are exposed, never the matched text, so the decision record the gate archives for replay
holds no secret. Scanning costs tens of microseconds per kilobyte, and most rules never read
``scan``, so :class:`OutboundScan` scans on first access only: ``evaluate`` touches it only when a
candidate rule's condition reads ``scan``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from clearance.gate.taint import output_texts
from clearance.scan.finding import Finding, Scanner, max_score
from clearance.scan.injection import InjectionScanner
from clearance.scan.pii import PiiScanner
from clearance.scan.secrets import SecretScanner
from clearance.scan.urls import UrlScanner

_INJECTION = InjectionScanner()
_SECRETS = SecretScanner()
_PII = PiiScanner()
_URLS = UrlScanner()


def _kinds(scanner: Scanner, text: str) -> list[str]:
    return sorted({f.kind for f in scanner.scan(text) if f.score >= scanner.threshold})


def _urls(findings: list[Finding], text: str) -> list[str]:
    seen: dict[str, None] = {}
    for finding in findings:
        seen.setdefault(text[finding.start : finding.end], None)
    return list(seen)


def scan_text(text: str) -> dict[str, Any]:
    """The ``scan`` variable for ``text`` (see the module docstring for the fields)."""
    return {
        "injection": max_score(_INJECTION.scan(text)),
        "secrets": _kinds(_SECRETS, text),
        "pii": _kinds(_PII, text),
        "urls": _urls(_URLS.scan(text), text),
    }


class OutboundScan(Mapping[str, Any]):
    """The ``scan`` variable of one request, computed on first access.

    Args:
        args: the request's arguments; every string in them (keys included) is scanned.
        target: the request's target, scanned too when present.
    """

    __slots__ = ("_args", "_found", "_target")

    def __init__(self, args: Mapping[str, Any], target: str | None = None) -> None:
        self._args = args
        self._target = target
        self._found: dict[str, Any] | None = None

    @property
    def computed(self) -> dict[str, Any] | None:
        """The findings if some rule read them, else None (nothing to archive)."""
        return self._found

    def _findings(self) -> dict[str, Any]:
        if self._found is None:
            texts = list(output_texts(self._args))
            if self._target:
                texts.append(self._target)
            self._found = scan_text("\n".join(texts))
        return self._found

    def __getitem__(self, key: str) -> Any:
        return self._findings()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._findings())

    def __len__(self) -> int:
        return len(self._findings())
