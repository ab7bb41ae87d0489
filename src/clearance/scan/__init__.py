"""Content scanners, value provenance and the scanner evaluation.

Everything here is pure: no clock, no randomness, no I/O. The gate runs the scanners on tool
output and outbound arguments, feeds :class:`Provenance`, and turns findings into taint, masking
and the ``scan`` variables policy conditions read.

Example::

    from clearance.scan import default_scanners

    for scanner in default_scanners():
        for finding in scanner.scan("contact me at jane.doe@corp.io"):
            print(scanner.name, finding.kind, finding.score)
"""

from clearance.scan.finding import Finding, Scanner, flagged, max_score
from clearance.scan.injection import Classifier, ClassifierRegistry, InjectionScanner
from clearance.scan.pii import PiiScanner
from clearance.scan.provenance import Provenance, value_key
from clearance.scan.secrets import SecretScanner
from clearance.scan.urls import NormalizedUrl, UrlScanner, find_urls, parse_url


def default_scanners() -> tuple[Scanner, ...]:
    """One instance of each shipped scanner, with its measured default threshold."""
    return (InjectionScanner(), SecretScanner(), PiiScanner(), UrlScanner())


__all__ = [
    "Classifier",
    "ClassifierRegistry",
    "Finding",
    "InjectionScanner",
    "NormalizedUrl",
    "PiiScanner",
    "Provenance",
    "Scanner",
    "SecretScanner",
    "UrlScanner",
    "default_scanners",
    "find_urls",
    "flagged",
    "max_score",
    "parse_url",
    "value_key",
]
