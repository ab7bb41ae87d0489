"""Proof files: C2SP tlog-proof (inclusion) and the tlog-witness request layout (consistency).

Inclusion (``.tlog-proof``)::

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry header bytes>
    index <decimal>
    <base64 hash>            zero or more, the leaf's sibling first
                             (blank line)
    <signed checkpoint, verbatim>

Consistency::

    old <decimal>
    <base64 hash>            zero or more
                             (blank line)
    <signed checkpoint of the new tree, verbatim>

Example::

    >>> result = verify_inclusion_proof(proof_bytes, [deployment_vkey])   # doctest: +SKIP
    >>> result.header["index"], result.checkpoint.size                     # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from clearance.formats.checkpoint import (
    Checkpoint,
    CheckpointError,
    SignedCheckpoint,
    verify_checkpoint,
)
from clearance.formats.entry import EntryError, parse_header
from clearance.formats.merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from clearance.formats.note import VerifierKey

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_HASHES = 63


class ProofFileError(ValueError):
    """A proof file is malformed, or its checkpoint or proof does not verify."""


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """A parsed tlog-proof file."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None

    def to_text(self) -> str:
        """Serialise in the tlog-proof layout."""
        lines = [TLOG_PROOF_HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode() for h in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint.decode()

    @classmethod
    def from_bytes(cls, data: bytes) -> InclusionProof:
        """Parse a tlog-proof file; raise ``ProofFileError`` on any deviation."""
        head, checkpoint = _split(data)
        if not head or head[0] != TLOG_PROOF_HEADER:
            raise ProofFileError(f"proof does not start with `{TLOG_PROOF_HEADER}`")
        rest = head[1:]
        extra = None
        if rest and rest[0].startswith("extra "):
            extra = _b64(rest[0][len("extra ") :], "extra")
            rest = rest[1:]
        if not rest or not rest[0].startswith("index "):
            raise ProofFileError("proof has no `index` line")
        index = _decimal(rest[0][len("index ") :], "index")
        return cls(index, _hashes(rest[1:]), checkpoint, extra)


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """A parsed consistency proof file."""

    old_size: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes

    def to_text(self) -> str:
        """Serialise in the tlog-witness request layout."""
        lines = [f"old {self.old_size}", *(base64.b64encode(h).decode() for h in self.hashes)]
        return "\n".join(lines) + "\n\n" + self.checkpoint.decode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ConsistencyProof:
        """Parse a consistency proof file."""
        head, checkpoint = _split(data)
        if not head or not head[0].startswith("old "):
            raise ProofFileError("consistency proof does not start with `old <size>`")
        return cls(_decimal(head[0][len("old ") :], "old size"), _hashes(head[1:]), checkpoint)


def _split(data: bytes) -> tuple[list[str], bytes]:
    cut = data.find(b"\n\n")
    if cut < 0:
        raise ProofFileError("proof has no blank line before its checkpoint")
    try:
        head = data[:cut].decode("ascii").split("\n")
    except UnicodeDecodeError as exc:
        raise ProofFileError("proof lines are not ASCII") from exc
    return head, data[cut + 2 :]


def _decimal(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or (text != "0" and text[0] == "0"):
        raise ProofFileError(f"`{what}` is not a decimal without leading zeros")
    return int(text)


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:  # ValueError: non-ASCII text
        raise ProofFileError(f"`{what}` is not standard base64") from exc


def _hashes(lines: Sequence[str]) -> tuple[bytes, ...]:
    if len(lines) > MAX_PROOF_HASHES:
        raise ProofFileError(f"proof has more than {MAX_PROOF_HASHES} hashes")
    return tuple(_b64(line, "proof hash") for line in lines)


@dataclass(frozen=True, slots=True)
class VerifiedInclusion:
    """What a verified inclusion proof establishes: this header is leaf ``index`` of the checkpoint."""

    index: int
    leaf_hash: bytes
    header: dict[str, Any]
    header_bytes: bytes
    checkpoint: SignedCheckpoint


def verify_inclusion_proof(
    data: bytes, keys: Iterable[VerifierKey], *, origin: str | None = None
) -> VerifiedInclusion:
    """Verify a clearance tlog-proof: checkpoint signature, entry header and inclusion path.

    clearance proofs always carry the entry header in ``extra``: the leaf hash is computed from it,
    so the file alone proves the header's content. The header's ``log`` and ``index`` must equal
    the checkpoint origin and the proof index.
    """
    proof = InclusionProof.from_bytes(data)
    try:
        signed = verify_checkpoint(proof.checkpoint, keys, origin=origin)
    except CheckpointError as exc:
        raise ProofFileError(str(exc)) from exc
    if proof.extra is None:
        raise ProofFileError("proof has no `extra` line holding the entry header")
    leaf = leaf_hash(proof.extra)
    cp = signed.checkpoint
    try:
        verify_inclusion(proof.index, cp.size, leaf, proof.hashes, cp.root)
    except ProofError as exc:
        raise ProofFileError(f"entry {proof.index}: {exc}") from exc
    try:
        header = parse_header(proof.extra)
    except EntryError as exc:
        raise ProofFileError(f"entry {proof.index}: header: {exc}") from exc
    if header["index"] != proof.index or header["log"] != cp.origin:
        raise ProofFileError(
            f"entry {proof.index}: header names log `{header['log']}` index {header['index']}"
        )
    return VerifiedInclusion(proof.index, leaf, header, proof.extra, signed)


def verify_consistency_proof(
    old: Checkpoint, data: bytes, keys: Iterable[VerifierKey]
) -> SignedCheckpoint:
    """Verify that the signed checkpoint in ``data`` extends ``old``; return the new checkpoint."""
    proof = ConsistencyProof.from_bytes(data)
    try:
        new = verify_checkpoint(proof.checkpoint, keys, origin=old.origin)
    except CheckpointError as exc:
        raise ProofFileError(str(exc)) from exc
    if proof.old_size != old.size:
        raise ProofFileError(
            f"proof starts at size {proof.old_size}, the old checkpoint has {old.size}"
        )
    if old.size == 0:
        if proof.hashes:
            raise ProofFileError("a proof from the empty tree must have no hashes")
        return new
    try:
        verify_consistency(
            old.size, new.checkpoint.size, old.root, new.checkpoint.root, proof.hashes
        )
    except ProofError as exc:
        raise ProofFileError(str(exc)) from exc
    return new
