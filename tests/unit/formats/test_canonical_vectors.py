"""RFC 8785 canonical bytes against the cyberphone/json-canonicalization vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clearance.formats.canonical import canonical_bytes

VECTORS = Path(__file__).parents[2] / "vectors" / "cyberphone" / "json-canonicalization"
NAMES = sorted(p.stem for p in (VECTORS / "output").glob("*.json"))


def test_all_six_vectors_present() -> None:
    assert NAMES == ["french", "simpleString", "structures", "unicode", "values", "weird"]


@pytest.mark.parametrize("name", NAMES)
def test_canonical_bytes_match(name: str) -> None:
    value = json.loads((VECTORS / "input" / f"{name}.json").read_text("utf-8"))
    assert canonical_bytes(value) == (VECTORS / "output" / f"{name}.json").read_bytes()
