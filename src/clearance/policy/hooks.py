"""Functions policy conditions may call, and the provenance hook they consult.

Everything here is pure: the provenance object is immutable input handed to ``evaluate``, so the
same request, session facts and provenance always give the same answer.

Provenance answers one question about a value seen in a request: where else was it seen? Labels are
``kind`` or ``kind:detail`` where kind is one of ``instruction`` (the principal's original
instruction), ``data`` (trusted reference data), ``trusted`` (output of a trusted tool) and
``untrusted`` (content from an untrusted source, e.g. ``untrusted:fetch_url``). The session layer
that records tool outputs implements ``Provenance``; without one, every question is answered as
for a fresh session in which nothing has been seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

INSTRUCTION = "instruction"
DATA = "data"
TRUSTED = "trusted"
UNTRUSTED = "untrusted"


@runtime_checkable
class Provenance(Protocol):
    """Where values seen in a session came from (implemented by the session layer)."""

    def sources(self, value: object) -> frozenset[str]:
        """Labels of every place ``value`` was seen; empty when it was seen nowhere."""
        ...


class NoProvenance:
    """The provenance of a session in which nothing has been seen yet."""

    def sources(self, value: object) -> frozenset[str]:  # noqa: ARG002 - protocol signature
        """Always empty."""
        return frozenset()


NO_PROVENANCE = NoProvenance()


def _kinds(labels: frozenset[str]) -> set[str]:
    return {label.split(":", 1)[0] for label in labels}


def provenance_functions(
    provenance: Provenance, in_policy_data: Callable[[object], bool]
) -> dict[str, Callable[[Any], Any]]:
    """The CEL functions that answer provenance questions for one decision."""

    def from_instruction(value: object) -> bool:
        return INSTRUCTION in _kinds(provenance.sources(value))

    def from_data(value: object) -> bool:
        return in_policy_data(value) or DATA in _kinds(provenance.sources(value))

    def from_trusted(value: object) -> bool:
        return bool(_kinds(provenance.sources(value)) & {INSTRUCTION, DATA, TRUSTED})

    def only_untrusted(value: object) -> bool:
        kinds = _kinds(provenance.sources(value))
        return bool(kinds) and kinds == {UNTRUSTED} and not in_policy_data(value)

    def sources(value: object) -> list[str]:
        labels = set(provenance.sources(value))
        if in_policy_data(value):
            labels.add(DATA)
        return sorted(labels)

    return {
        "from_instruction": from_instruction,
        "from_data": from_data,
        "from_trusted": from_trusted,
        "only_untrusted": only_untrusted,
        "sources": sources,
    }


PROVENANCE_FUNCTIONS: frozenset[str] = frozenset(
    {"from_instruction", "from_data", "from_trusted", "only_untrusted", "sources"}
)

# A host the allowlist can be checked against: LDH labels, no userinfo, no escapes, no IP tricks
# beyond plain dotted IPv4 (which an allowlist would have to name explicitly to match).
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_URL_FORBIDDEN = re.compile(r"[\\\s%@\x00-\x1f\x7f]")


def url_host(url: object) -> str:
    """The lower-case host of an ``http(s)`` URL, or ``""`` when the URL is unsafe to judge.

    Parsers disagree about userinfo (``a.com@evil.com``), backslashes, percent-escapes and
    whitespace in the authority, so any of those makes the answer ``""``, which no allowlist
    contains: a URL the gate cannot read unambiguously is never allowed by host.
    """
    if not isinstance(url, str) or len(url) > 8192:
        return ""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or _URL_FORBIDDEN.search(parts.netloc):
        return ""
    host = (parts.hostname or "").rstrip(".")
    if not host.isascii() or not _HOST.match(host):
        return ""
    if port is not None and not 0 < port < 65536:
        return ""
    return host


def lower(value: object) -> str:
    """Lower-case text (CEL's ``lowerAscii`` is not available in the engine)."""
    if not isinstance(value, str):
        raise TypeError("lower() takes a string")
    return value.lower()


PURE_FUNCTIONS: Mapping[str, Callable[[Any], Any]] = {"url_host": url_host, "lower": lower}
