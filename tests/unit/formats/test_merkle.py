"""RFC 6962 / RFC 9162 hashing and proofs against the public transparency-dev vectors."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from clearance.formats.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_path,
    inclusion_path,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parents[2] / "vectors" / "transparency-dev" / "merkle"
# docs/formats.md "strictness choices": 12-byte roots are rejected even when sizes are equal.
EXPECTED_DEVIATIONS = {
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json",
    "consistency/additional/sizes-are-equal-zero-and-proof-is-empty.json",
}
RFC6962_LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
RFC6962_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


def _b(text: str) -> bytes:
    return base64.b64decode(text)


def _cases(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _run(case: dict[str, object]) -> None:
    proof = [_b(p) for p in case["proof"] or []]  # type: ignore[attr-defined]
    if "leafIdx" in case:
        verify_inclusion(
            case["leafIdx"],
            case["treeSize"],
            _b(case["leafHash"]),
            proof,  # type: ignore[arg-type]
            _b(case["root"]),
        )  # type: ignore[arg-type]
    else:
        verify_consistency(
            case["size1"],
            case["size2"],
            _b(case["root1"]),
            _b(case["root2"]),  # type: ignore[arg-type]
            proof,
        )


@pytest.mark.parametrize(
    "path", _cases("inclusion") + _cases("consistency"), ids=lambda p: str(p.relative_to(VECTORS))
)
def test_public_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    want_error = case["wantErr"] or str(path.relative_to(VECTORS)) in EXPECTED_DEVIATIONS
    if want_error:
        with pytest.raises(ProofError):
            _run(case)
    else:
        _run(case)


def test_vector_set_is_present() -> None:
    assert len(_cases("inclusion")) >= 25
    assert len(_cases("consistency")) >= 30


def test_empty_root_and_rfc6962_leaf_hashes() -> None:
    assert root_of([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert leaf_hash(b"").hex().startswith("6e340b9c")
    assert leaf_hash(b"L123456").hex().startswith("395aa064")


@pytest.mark.parametrize("size", sorted(RFC6962_ROOTS))
def test_rfc6962_roots(size: int) -> None:
    hashes = [leaf_hash(x) for x in RFC6962_LEAVES[:size]]
    assert root_of(hashes).hex() == RFC6962_ROOTS[size]


def test_generated_proofs_match_public_happy_paths() -> None:
    hashes = [leaf_hash(x) for x in RFC6962_LEAVES]
    case = json.loads((VECTORS / "inclusion/2/happy-path.json").read_text())
    assert [base64.b64encode(h).decode() for h in inclusion_path(5, hashes)] == case["proof"]
    case = json.loads((VECTORS / "consistency/2/happy-path.json").read_text())
    assert [base64.b64encode(h).decode() for h in consistency_path(6, hashes)] == case["proof"]


def test_compact_range_round_trips_and_rejects_wrong_shape() -> None:
    cr = CompactRange()
    for x in RFC6962_LEAVES[:7]:
        cr.append(leaf_hash(x))
    again = CompactRange.from_bytes(7, cr.to_bytes())
    assert again.root() == cr.root() == bytes.fromhex(RFC6962_ROOTS[7])
    with pytest.raises(ProofError):
        CompactRange.from_bytes(8, cr.to_bytes())


def test_inclusion_rejects_index_outside_tree() -> None:
    hashes = [leaf_hash(x) for x in RFC6962_LEAVES]
    with pytest.raises(ProofError):
        inclusion_path(8, hashes)
    with pytest.raises(ProofError):
        consistency_path(0, hashes)
