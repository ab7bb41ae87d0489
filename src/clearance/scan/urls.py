"""URLs in outbound text, normalised for comparison with where they came from.

An agent that writes a URL into an email, a message or a fetch request can send data out (in the
path or query) or lead a person to a phishing site, so policy wants to ask "did this URL come from
the instruction or from trusted data?" That comparison is only sound on a normal form:

* the host is lowercased, IDNA-encoded (``bücher.example`` -> ``xn--bcher-kva.example``) and loses a
  trailing dot; it is *the whole host*: ``allowed.com.evil.com`` is the host ``allowed.com.evil.com``,
  whose registrable part is ``evil.com``, never ``allowed.com``;
* userinfo (``https://allowed.com@evil.com/``) is stripped and flagged, since it is the classic way
  to make a URL look like it goes somewhere it does not;
* default ports are dropped; ``key`` (host, port, path without trailing slash, query) omits the scheme.

Example::

    from clearance.scan.urls import parse_url

    url = parse_url("HTTPS://user:pw@Allowed.com.Evil.com:443/a/?x=1")
    assert url.host == "allowed.com.evil.com" and url.had_userinfo and url.key == "allowed.com.evil.com/a?x=1"
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from clearance.scan._match import Rule, lowercase, run
from clearance.scan.finding import Finding, make_finding

NAME = "urls"
THRESHOLD = 0.6
"""URLs are reported for provenance checks; only deceptive ones reach this threshold."""

_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}
_URL = Rule(
    "url",
    0.3,
    re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"'`\\{}|^]+"),
    literals=("://", "www."),
    back=5,
    window=2048,
)
_TRAILING = ".,;:!?)]}'\""
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


@dataclass(frozen=True, slots=True)
class NormalizedUrl:
    """A URL in normal form; see the module docstring for the rules.

    Attributes:
        scheme: lowercased scheme (``https`` for a bare ``www.`` link).
        host: lowercased, IDNA-encoded host without a trailing dot (IPv6 without brackets).
        port: explicit non-default port, or ``None``.
        path: path without a trailing slash (``""`` for the root).
        query: raw query string, ``""`` when absent.
        had_userinfo: the original carried ``user[:password]@`` before the host.
        idna_failed: the host could not be IDNA-encoded and was kept lowercased as is.
    """

    scheme: str
    host: str
    port: int | None
    path: str
    query: str
    had_userinfo: bool
    idna_failed: bool = False

    @property
    def key(self) -> str:
        """Scheme-less comparison key: ``host[:port]path[?query]``."""
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{self.query}" if self.query else ""
        return f"{self.host}{port}{self.path}{query}"

    @property
    def registrable_domain(self) -> str:
        """Last two labels of the host (three for common two-level suffixes such as ``co.uk``).

        An approximation without the Public Suffix List, good enough to tell ``allowed.com.evil.com``
        (``evil.com``) from ``allowed.com``; IP hosts are returned whole.
        """
        if _IPV4.fullmatch(self.host) or ":" in self.host:
            return self.host
        labels = self.host.split(".")
        keep = 3 if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL else 2
        return ".".join(labels[-keep:])

    @property
    def punycode(self) -> bool:
        """The host has an internationalised label (a possible homograph of a Latin name)."""
        return any(label.startswith("xn--") for label in self.host.split("."))


_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "ac", "edu", "ltd", "plc", "ne", "or"})


def _host(raw: str) -> tuple[str, bool]:
    host = unicodedata.normalize("NFKC", raw).lower().rstrip(".")
    if host.isascii():
        return host, False
    try:
        return host.encode("idna").decode("ascii"), False
    except UnicodeError:
        return host, True


@lru_cache(maxsize=4096)
def parse_url(raw: str) -> NormalizedUrl:
    """Normalise one URL; a bare ``www.`` link is read as ``https``.

    Raises:
        ValueError: ``raw`` has no host or an invalid port.
    """
    text = raw.strip()
    if text.lower().startswith("www.") or "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if not parts.hostname:
        raise ValueError(f"not a URL with a host: {raw!r}")
    host, idna_failed = _host(parts.hostname)
    scheme = parts.scheme.lower()
    port = parts.port
    if port == _DEFAULT_PORTS.get(scheme):
        port = None
    return NormalizedUrl(
        scheme=scheme,
        host=host,
        port=port,
        path=parts.path.rstrip("/"),
        query=parts.query,
        had_userinfo="@" in parts.netloc,
        idna_failed=idna_failed,
    )


def find_urls(text: str) -> list[tuple[int, int, NormalizedUrl]]:
    """Every URL in ``text`` with its span; unparseable candidates are skipped."""
    found: list[tuple[int, int, NormalizedUrl]] = []
    for match in run(_URL, text, lowercase(text), frozenset()):
        candidate = text[match.start() : match.end()].rstrip(_TRAILING)
        try:
            url = parse_url(candidate)
        except ValueError:
            continue
        found.append((match.start(), match.start() + len(candidate), url))
    return found


class UrlScanner:
    """Reports every URL in outbound text, scoring the deceptive ones higher.

    Score 0.3 for a plain URL (present, not suspicious: policy decides by provenance), 0.8 for a URL
    with userinfo, 0.7 for an internationalised (punycode) host, 0.5 for a raw IP host.

    Args:
        threshold: flag threshold reported by :attr:`threshold` (defaults to :data:`THRESHOLD`).
    """

    def __init__(self, *, threshold: float = THRESHOLD) -> None:
        self._threshold = threshold

    @property
    def name(self) -> str:
        """Always ``urls``."""
        return NAME

    @property
    def threshold(self) -> float:
        """Score at which a URL counts as deceptive."""
        return self._threshold

    def scan(self, text: str) -> list[Finding]:
        """One finding per URL, in order; the finding's kind says why it scored as it did."""
        findings: list[Finding] = []
        for start, end, url in find_urls(text):
            if url.had_userinfo:
                kind, score = "url-userinfo", 0.8
            elif url.punycode or url.idna_failed:
                kind, score = "url-punycode", 0.7
            elif _IPV4.fullmatch(url.host) or ":" in url.host:
                kind, score = "url-ip-host", 0.5
            else:
                kind, score = "url", 0.3
            findings.append(make_finding(NAME, kind, score, text, start, end))
        return findings
