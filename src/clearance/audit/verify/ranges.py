"""Replaying one contiguous index range of a shard: each row's own checks and the links inside it.

A shard is verified range by range, in this process or in worker processes (``parallel.py``).
``replay_range`` reads the rows from ``start`` on and checks, in index order, that indexes are
dense, that every entry's own checks pass (``entries.check_row``) and that each ``prev`` is the
leaf hash of the entry before it; it folds the leaves into a compact range. The link *into* the
range's first entry and the tree below ``start`` belong to the ranges before it, so a range that
does not know them (a worker's) reports its first entry's ``prev`` and a tree of its own leaves,
and the parent joins the ranges in order (``shard.py``).

Everything the shard-level checks need (findings, prune/erasure/anchor headers, absent payloads,
the tree at checkpoint sizes) goes to a ``RangeSink`` in index order. ``Recording`` keeps it for
a worker to send back, so a range checked in a worker replays into the parent exactly as if the
parent had read it: the findings are the same, in the same order.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from clearance.audit.verify.entries import HASH_ONLY, SHARD_KINDS, Row, check_row
from clearance.audit.verify.errors import Severity
from clearance.formats.canonical import DIGEST_PREFIX
from clearance.formats.merkle import CompactRange, node_hash

#: The rows a range reads: ``entries.Row`` in index order, each entry with its payload if stored.
#: Bind ``(origin, start)``, plus the end for ``ROWS_BELOW``.
ROWS_FROM = (
    "SELECT e.idx, e.leaf_hash, e.header, p.salt, p.body FROM audit_entry e"
    " LEFT JOIN audit_payload p ON p.origin = e.origin AND p.idx = e.idx"
    " WHERE e.origin = ? AND e.idx >= ? ORDER BY e.idx"
)
ROWS_BELOW = ROWS_FROM.replace(" ORDER BY", " AND e.idx < ? ORDER BY")

#: The finding for a broken ``prev`` link; format with the predecessor's index.
BROKEN_LINK = (
    "prev does not match the leaf hash of entry {}: the entry or its predecessor was altered, "
    "removed or reordered"
)


class Mark(Enum):
    """A marker that keeps its identity through pickling (a worker's answer is pickled)."""

    #: ``prev`` of a range whose first link the parent checks (a worker's range): the first
    #: entry's ``prev`` is reported in ``RangeEnd.first_prev`` instead of being compared.
    UNKNOWN_PREV = "unknown prev"


UNKNOWN_PREV = Mark.UNKNOWN_PREV


class RangeSink(Protocol):
    """Receives what a range proves beyond its own links, in index order."""

    def finding(self, severity: Severity, message: str, index: int | None) -> None:
        """A finding about entry ``index``."""
        ...

    def shard_entry(self, index: int, header: dict[str, Any]) -> None:
        """A header the shard-level checks read (``entries.SHARD_KINDS``)."""
        ...

    def absent(self, index: int, until: str | None) -> None:
        """Entry ``index`` commits to a payload that is not stored (retained ``until``)."""
        ...

    def tree(self, size: int, tree: CompactRange, leaf: bytes) -> None:
        """The range's tree after entry ``size - 1`` (a size the caller asked about)."""
        ...


@dataclass(frozen=True, slots=True)
class RangeEnd:
    """Where a range stopped and what the next range links to.

    * ``end``: the first index not verified (``start`` + the entries that passed).
    * ``broken``: the range stopped at a finding that ends the replay (its last finding).
    * ``first_prev``: the first entry's ``prev`` for the parent to check, when the range was
      started with ``UNKNOWN_PREV`` and that entry passed its own checks; else ``UNKNOWN_PREV``.
    * ``tree``: the leaves ``[start, end)`` folded onto the tree the range was started with.
    * ``last_leaf``: the leaf hash of entry ``end - 1`` (None when no entry passed).
    """

    start: int
    end: int
    broken: bool
    first_prev: Any
    tree: CompactRange
    last_leaf: bytes | None


def replay_range(
    origin: str,
    rows: Iterable[Row],
    start: int,
    *,
    prev: Any,
    tree: CompactRange,
    sizes: Container[int],
    sink: RangeSink,
) -> RangeEnd:
    """Check ``rows`` (index order, from ``start`` on) and their links; see the module docstring.

    ``prev`` is the leaf hash of entry ``start - 1`` (None before entry 0) or ``UNKNOWN_PREV``.
    ``tree`` is extended in place; ``sink.tree`` is called at every size in ``sizes``.
    """
    want: Any = prev if prev is None or prev is UNKNOWN_PREV else DIGEST_PREFIX + prev.hex()
    first_prev: Any = UNKNOWN_PREV
    expected = start
    broken = False
    leaf: bytes | None = None
    append = tree.append
    for row in rows:
        idx = row[0]
        if idx != expected:
            sink.finding(
                Severity.TAMPERED,
                f"entry {expected} is missing (the next stored entry is {idx}): an entry was "
                "deleted",
                expected,
            )
            broken = True
            break
        row_leaf, header_prev, fatal, notes, header, absent = check_row(origin, row)
        if fatal is not None:
            sink.finding(Severity.TAMPERED, fatal, idx)
            broken = True
            break
        if header_prev is HASH_ONLY:
            sink.finding(Severity.INFO, "pruned: hash only", idx)
        else:
            if header_prev != want:
                if want is not UNKNOWN_PREV:
                    sink.finding(Severity.TAMPERED, BROKEN_LINK.format(idx - 1), idx)
                    broken = True
                    break
                first_prev = header_prev
            if header is not None:
                if header["kind"] in SHARD_KINDS:
                    sink.shard_entry(idx, header)
                if absent:
                    retention = header.get("retention") or {}
                    sink.absent(idx, retention.get("until"))
            for note in notes:
                sink.finding(Severity.TAMPERED, note, idx)
        leaf = row_leaf
        append(leaf)
        want = DIGEST_PREFIX + leaf.hex()
        expected += 1
        if expected in sizes:
            sink.tree(expected, tree, leaf)
    return RangeEnd(
        start,
        expected,
        broken,
        first_prev,
        tree,
        leaf if expected > start else None,
    )


@dataclass
class Recording:
    """A ``RangeSink`` that keeps the calls, for a worker to send back and the parent to replay."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def finding(self, severity: Severity, message: str, index: int | None) -> None:
        """Keep a finding."""
        self.calls.append(("finding", severity, message, index))

    def shard_entry(self, index: int, header: dict[str, Any]) -> None:
        """Keep a shard-level header."""
        self.calls.append(("shard_entry", index, header))

    def absent(self, index: int, until: str | None) -> None:
        """Keep an absent payload."""
        self.calls.append(("absent", index, until))

    def tree(self, size: int, tree: CompactRange, leaf: bytes) -> None:
        """Keep a copy of the tree at ``size``."""
        self.calls.append(("tree", size, tree.copy(), leaf))

    def replay(self, sink: RangeSink, below: CompactRange | None) -> None:
        """Make the kept calls on ``sink``, trees joined onto ``below`` (the leaves before them)."""
        for call in self.calls:
            if call[0] == "tree" and below is not None:
                sink.tree(call[1], joined(below, call[2]), call[3])
            else:
                getattr(sink, call[0])(*call[1:])


def joined(left: CompactRange, right: CompactRange) -> CompactRange:
    """The compact range of ``left``'s leaves followed by ``right``'s.

    ``right`` covers the leaves from ``left.size`` on, folded as if they started at 0; its
    subtrees are the same subtrees of the whole tree when ``left.size`` is a multiple of
    ``right``'s largest subtree, which is how ranges are cut (``shard.py``). Each subtree is
    merged in like a leaf, one level up: O(log n) hashes per join, none per leaf.
    """
    size, hashes = left.size, left.hashes
    bits = right.size.bit_length()
    heights = [b for b in range(bits - 1, -1, -1) if right.size >> b & 1]
    for height, node in zip(heights, right.hashes, strict=True):
        if size & ((1 << height) - 1):
            raise ValueError(f"a subtree of {1 << height} leaves cannot start at leaf {size}")
        level = size >> height
        while level & 1:  # a subtree of equal height ends where this one starts: merge them
            node = node_hash(hashes.pop(), node)
            level >>= 1
        hashes.append(node)
        size += 1 << height
    return CompactRange(size, hashes)
