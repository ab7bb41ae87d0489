import pytest

from clearance.scan import Finding, Scanner, default_scanners
from clearance.scan.finding import make_finding
from clearance.scan.normalize import OffsetMap, normalize


def test_finding_validates_score_and_span() -> None:
    with pytest.raises(ValueError, match="score"):
        Finding("x", "k", 1.5, 0, 1, "a")
    with pytest.raises(ValueError, match="span"):
        Finding("x", "k", 0.5, 3, 1, "a")


def test_make_finding_clamps_and_cuts_excerpt() -> None:
    finding = make_finding("x", "k", 1.2, "a" * 200, 0, 200)
    assert finding.score == 1.0
    assert len(finding.excerpt) == 80


def test_default_scanners_satisfy_the_protocol() -> None:
    scanners = default_scanners()
    assert [s.name for s in scanners] == ["injection", "secrets", "pii", "urls"]
    assert all(isinstance(s, Scanner) and 0 < s.threshold <= 1 for s in scanners)


def test_normalize_folds_and_maps_offsets() -> None:
    text = "a\u200b\u200bb \uff49\uff47 \u0456x"
    assert normalize(text) == "ab ig ix"
    offsets = OffsetMap(text)
    assert text[offsets.to_original(normalize(text).index("ix")) :] == "\u0456x"
    assert normalize("plain") == "plain"
