"""RFC 6962 / RFC 9162 Merkle tree hashing, compact ranges and proofs.

Example::

    >>> from clearance.formats.merkle import CompactRange, leaf_hash, inclusion_path, verify_inclusion
    >>> leaves = [leaf_hash(bytes([i])) for i in range(5)]
    >>> cr = CompactRange()
    >>> for h in leaves:
    ...     cr.append(h)
    >>> verify_inclusion(3, 5, leaves[3], inclusion_path(3, leaves), cr.root())

Verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 exactly and is deliberately stricter than
some implementations (docs/formats.md, "strictness choices"): every hash, including roots compared
for equal tree sizes, must be exactly 32 bytes. Checks raise ``ProofError``; they never return
``False``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_MAX_COMPACT = 64

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A Merkle proof, root or hash does not verify or is malformed."""


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the 0x00 prefix keeps leaves apart from interior nodes."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def root_of(hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 MTH over a list of leaf hashes (``EMPTY_ROOT`` for none)."""
    cr = CompactRange()
    for h in hashes:
        cr.append(h)
    return cr.root()


class CompactRange:
    """The perfect-subtree roots covering leaves ``[0, size)``, largest first.

    Appending is O(1) amortised and the root is a fold of at most 64 hashes, which is how the
    appender and the verifier keep the tree root incrementally without holding every leaf.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count() or len(hashes) > _MAX_COMPACT:
            raise ProofError(
                f"a compact range for size {size} needs {max(size, 0).bit_count()} hashes"
                f", got {len(hashes)}"
            )
        for h in hashes:
            _check_hash(h, "compact range hash")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> list[bytes]:
        """A copy of the subtree roots, largest subtree first."""
        return list(self._hashes)

    def copy(self) -> CompactRange:
        """An independent copy (used to roll back a failed batch)."""
        return CompactRange(self._size, self._hashes)

    def append(self, h: bytes) -> None:
        """Add the next leaf hash."""
        hashes = self._hashes
        hashes.append(h)
        size = self._size
        # INVARIANT: each trailing 1-bit of the old size is a subtree of equal height to merge.
        while size & 1:
            right = hashes.pop()
            hashes[-1] = _sha256(b"\x01" + hashes[-1] + right).digest()
            size >>= 1
        self._size += 1

    def root(self) -> bytes:
        """The RFC 9162 root of the covered leaves."""
        if not self._hashes:
            return EMPTY_ROOT
        hashes = self._hashes
        r = hashes[-1]
        for h in reversed(hashes[:-1]):
            r = _sha256(b"\x01" + h + r).digest()
        return r

    def to_bytes(self) -> bytes:
        """Concatenated hashes (the size is stored beside them)."""
        return b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        """Inverse of ``to_bytes``; raises ``ProofError`` when the length does not fit ``size``."""
        if len(data) % HASH_SIZE:
            raise ProofError("compact range bytes are not a multiple of 32")
        return cls(size, [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)])


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    cr = CompactRange()
    for i in range(lo, hi):
        cr.append(hashes[i])
    return cr.root()


def inclusion_path(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 audit path for leaf ``index`` in the tree of all ``hashes`` (sibling first)."""
    n = len(hashes)
    if not 0 <= index < n:
        raise ProofError(f"index {index} is outside a tree of size {n}")
    path: list[bytes] = []
    lo, hi, m = 0, n, index
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if m < k:
            path.append(_subtree_root(hashes, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subtree_root(hashes, lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def consistency_path(old_size: int, hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 2.1.4.1 consistency proof from ``old_size`` to ``len(hashes)``."""
    n = len(hashes)
    if not 0 < old_size <= n:
        raise ProofError(f"no consistency proof from size {old_size} to size {n}")
    if old_size == n:
        return []
    proof: list[bytes] = []
    lo, hi, m, complete = 0, n, old_size, True
    while True:
        size = hi - lo
        if m == size:
            if not complete:
                proof.append(_subtree_root(hashes, lo, hi))
            break
        k = _largest_power_of_two_below(size)
        if m <= k:
            proof.append(_subtree_root(hashes, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_subtree_root(hashes, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    proof.reverse()
    return proof


def _check_hash(h: bytes, what: str) -> None:
    if len(h) != HASH_SIZE:
        raise ProofError(f"{what} is {len(h)} bytes, not 32")


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2: raise ``ProofError`` unless ``leaf`` is at ``index`` of the tree ``root``."""
    _check_hash(leaf, "leaf hash")
    _check_hash(root, "root")
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(
            f"inclusion proof for index {index} in size {size} does not match the root"
        )


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof implies; raises ``ProofError`` if the proof shape is wrong."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash(p, "proof hash")
        if sn == 0:
            raise ProofError("inclusion proof has more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof has fewer hashes than the tree has levels")
    return r


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2: raise ``ProofError`` unless tree ``root2`` extends tree ``root1``.

    ``size1 == 0`` is rejected as meaningless (any tree extends the empty one); callers that accept
    an empty old tree (the witness layout's ``old 0``) handle it before calling.
    """
    _check_hash(root1, "old root")
    _check_hash(root2, "new root")
    if size2 < size1:
        raise ProofError(f"new size {size2} is smaller than old size {size1}")
    if size1 == size2:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise ProofError(f"two different roots for size {size1}")
        return
    if size1 == 0:
        raise ProofError("a consistency check from the empty tree is meaningless")
    if not proof:
        raise ProofError("consistency proof is empty")
    for p in proof:
        _check_hash(p, "proof hash")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof has too many hashes")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof has too few hashes")
    if fr != root1:
        raise ProofError(f"consistency proof does not match the old root at size {size1}")
    if sr != root2:
        raise ProofError(f"consistency proof does not match the new root at size {size2}")
