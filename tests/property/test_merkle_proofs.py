"""Inclusion and consistency proofs verify for every size; any single bit flip fails."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearance.formats.merkle import (
    CompactRange,
    ProofError,
    consistency_path,
    inclusion_path,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_inclusion_round_trip(case: tuple[int, int]) -> None:
    n, i = case
    leaves = _leaves(n)
    verify_inclusion(i, n, leaves[i], inclusion_path(i, leaves), root_of(leaves))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n))))
def test_consistency_round_trip(case: tuple[int, int]) -> None:
    n, m = case
    leaves = _leaves(n)
    verify_consistency(m, n, root_of(leaves[:m]), root_of(leaves), consistency_path(m, leaves))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 200).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.integers(0, 32 * 8 * 9 - 1))
    )
)
def test_any_bit_flip_in_an_inclusion_proof_fails(case: tuple[int, int, int]) -> None:
    n, i, bit = case
    leaves = _leaves(n)
    proof = inclusion_path(i, leaves)
    k, b = divmod(bit, 256)
    if k >= len(proof):
        return
    flipped = bytearray(proof[k])
    flipped[b // 8] ^= 1 << (b % 8)
    bad = [*proof[:k], bytes(flipped), *proof[k + 1 :]]
    with pytest.raises(ProofError):
        verify_inclusion(i, n, leaves[i], bad, root_of(leaves))


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 200).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n - 1))))
def test_consistency_with_a_changed_old_leaf_fails(case: tuple[int, int]) -> None:
    n, m = case
    leaves = _leaves(n)
    forked = [*leaves[: m - 1], leaf_hash(b"fork")]
    with pytest.raises(ProofError):
        verify_consistency(m, n, root_of(forked), root_of(leaves), consistency_path(m, leaves))


@given(st.integers(0, 600))
def test_compact_range_matches_recursive_root(n: int) -> None:
    leaves = _leaves(n)
    cr = CompactRange()
    for h in leaves:
        cr.append(h)
    assert cr.root() == root_of(leaves)
    assert len(cr.hashes) == n.bit_count()
