"""Proof files: the worked example's tlog-proof, round trips and tampering."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearance.audit.sign import AuditKey
from clearance.formats.checkpoint import Checkpoint
from clearance.formats.entry import build_header, header_bytes
from clearance.formats.merkle import consistency_path, leaf_hash, root_of
from clearance.formats.note import VerifierKey, add_signatures
from clearance.formats.proof import (
    ConsistencyProof,
    InclusionProof,
    ProofFileError,
    verify_consistency_proof,
    verify_inclusion_proof,
)

EXAMPLE = Path(__file__).parents[2] / "vectors" / "clearance" / "worked-example"
DEPLOYMENT = VerifierKey.parse(
    "clearance.example/audit+4e6f271a+AbiPvv2TdDXnrB+/lgwcqLt4Qtv4W7NbyveB4DhgwFxs"
)


def test_worked_example_inclusion_proof() -> None:
    data = (EXAMPLE / "entry-1.tlog-proof").read_bytes()
    result = verify_inclusion_proof(data, [DEPLOYMENT])
    assert result.index == 1
    assert result.header_bytes == (EXAMPLE / "entry-1.json").read_bytes()
    assert InclusionProof.from_bytes(data).to_text().encode() == data


def test_one_bit_change_in_entry_rejected() -> None:
    data = (EXAMPLE / "entry-1.tlog-proof").read_bytes()
    proof = InclusionProof.from_bytes(data)
    assert proof.extra is not None
    flipped = bytearray(proof.extra)
    flipped[100] ^= 1
    bad = InclusionProof(proof.index, proof.hashes, proof.checkpoint, bytes(flipped))
    with pytest.raises(ProofFileError, match="does not match the root"):
        verify_inclusion_proof(bad.to_text().encode(), [DEPLOYMENT])


def test_wrong_index_rejected() -> None:
    proof = InclusionProof.from_bytes((EXAMPLE / "entry-1.tlog-proof").read_bytes())
    bad = InclusionProof(2, proof.hashes, proof.checkpoint, proof.extra)
    with pytest.raises(ProofFileError):
        verify_inclusion_proof(bad.to_text().encode(), [DEPLOYMENT])


@pytest.mark.parametrize(
    "data",
    [
        b"c2sp.org/tlog-proof@v2\nindex 0\n\nx",
        b"c2sp.org/tlog-proof@v1\nindex 01\n\nx",
        b"c2sp.org/tlog-proof@v1\n\nx",
        b"c2sp.org/tlog-proof@v1\nindex 0",
        b"old x\n\ny",
    ],
)
def test_malformed_proof_files(data: bytes) -> None:
    parse = ConsistencyProof.from_bytes if data.startswith(b"old") else InclusionProof.from_bytes
    with pytest.raises(ProofFileError):
        parse(data)


def test_consistency_proof_file() -> None:
    key = AuditKey("d.example/audit", bytes(32))
    origin = "d.example/audit/node/2026"
    leaves = []
    prev = None
    for i in range(7):
        h = header_bytes(
            build_header(
                log=origin,
                index=i,
                prev=prev,
                time="2026-01-01T00:00:00.000000Z",
                kind="decision",
                fields={"id": str(i)},
            )
        )
        prev = leaf_hash(h)
        leaves.append(prev)
    old = Checkpoint(origin, 3, root_of(leaves[:3]))
    new = Checkpoint(origin, 7, root_of(leaves))
    note = add_signatures(new.to_text(), [key.sign_note(new.to_text(), origin)])
    text = ConsistencyProof(3, tuple(consistency_path(3, leaves)), note).to_text().encode()
    assert verify_consistency_proof(old, text, [key.verifier()]).checkpoint == new
    forked = Checkpoint(origin, 3, root_of(leaves[1:4]))
    with pytest.raises(ProofFileError):
        verify_consistency_proof(forked, text, [key.verifier()])
    empty = ConsistencyProof(0, (), note).to_text().encode()
    assert verify_consistency_proof(Checkpoint(origin, 0, root_of([])), empty, [key.verifier()])


def test_the_worked_example_size_matches_the_published_figure() -> None:
    """AUDIT.md gives the worked example's tlog-proof as 1,469: that counts characters.

    The two signature lines start with an em dash (U+2014), three bytes in UTF-8 each, so the file
    is 1,473 bytes; the leaf, audit path and signed checkpoint are byte for byte the published ones.
    """
    data = (EXAMPLE / "entry-1.tlog-proof").read_bytes()
    assert len(data.decode("utf-8")) == 1469
    assert len(data) == 1469 + 2 * (len("\u2014".encode()) - 1)
