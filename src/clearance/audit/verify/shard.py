"""Replaying one shard of a store: chain, leaf hashes, dense indexes, roots, payloads, anchors.

The entries are replayed as index ranges (``ranges.replay_range``: each row's own checks, dense
indexes and the ``prev`` links inside the range), in this process or in worker processes
(``parallel.py``). What needs the whole shard is checked here, in index order: the links between
ranges, the tree root at every checkpoint and at the saved state, pruning against prune and
erasure entries. Cross-shard anchors are collected per shard and checked once every shard has been
replayed.
"""

from __future__ import annotations

import base64
import bisect
import itertools
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from clearance.audit.verify.entries import as_bytes
from clearance.audit.verify.errors import Report, Severity
from clearance.audit.verify.parallel import WorkerPool, result
from clearance.audit.verify.ranges import (
    BROKEN_LINK,
    ROWS_FROM,
    UNKNOWN_PREV,
    RangeEnd,
    Recording,
    joined,
    replay_range,
)
from clearance.formats.canonical import DIGEST_PREFIX
from clearance.formats.checkpoint import CheckpointError, SignedCheckpoint, verify_checkpoint
from clearance.formats.merkle import CompactRange
from clearance.formats.note import VerifierKey

#: Worker ranges hold ``2**RANGE_BITS`` entries: large enough that a range's fixed cost (a task
#: round trip, one query, one join here: about a millisecond) stays a few percent of its checks,
#: small enough that the last ranges of a store of some ten thousand entries keep every worker busy.
RANGE_BITS = 11


class Reader(Protocol):
    """A read-only database connection with ``sqlite3``'s ``execute`` and ``?`` placeholders.

    Implementations raise ``ReadError`` when the database cannot be read.
    """

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any:
        """Run a query; the result iterates over rows and has ``fetchone``."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class ReadError(Exception):
    """A store could not be opened or read (the message says which and why)."""


@dataclass
class _Pruning:
    """Prune and erasure entries seen, to tell pruning from premature deletion."""

    ranges: list[tuple[int, int, str]] = field(default_factory=list)  # start, end (incl.), cutoff
    erased: set[int] = field(default_factory=set)
    absent: list[tuple[int, str | None]] = field(default_factory=list)  # index, retention until

    def note_entry(self, header: dict[str, Any]) -> None:
        pruned = header.get("pruned")
        if header["kind"] == "prune" and isinstance(pruned, dict):
            cutoff = pruned.get("cutoff")
            ranges = pruned.get("ranges")
            for r in ranges if isinstance(ranges, list) else []:
                # integers only: a tampered range of strings must not crash ``explain``
                if (
                    isinstance(r, list)
                    and len(r) == 2
                    and all(type(i) is int for i in r)
                    and isinstance(cutoff, str)
                ):
                    self.ranges.append((r[0], r[1], cutoff))
        erased = header.get("erased")
        if header["kind"] == "erasure" and isinstance(erased, list):
            self.erased.update(i for i in erased if isinstance(i, int))

    def explain(self, index: int, until: str | None) -> bool:
        if index in self.erased:
            return True
        return until is not None and any(s <= index <= e and until < c for s, e, c in self.ranges)


class ShardVerifier:
    """Replays one shard: chain, leaf hashes, dense indexes, roots at every checkpoint, payloads."""

    def __init__(
        self,
        conn: Reader,
        origin: str,
        keys: Sequence[VerifierKey],
        report: Report,
        state: dict[str, Any] | None,
        *,
        full: bool,
        pool: WorkerPool | None = None,
        hint: int = 0,
    ) -> None:
        self.conn = conn
        self.pool = pool
        self.hint = hint
        self.origin = origin
        self.keys = keys
        self.report = report
        self.state = state
        self.full = full or state is None
        self.checkpoints: dict[int, SignedCheckpoint] = {}
        self.pruning = _Pruning()
        self.latest: SignedCheckpoint | None = None
        self.latest_compact: CompactRange | None = None
        self.latest_head: bytes | None = None
        self.anchors: list[Anchor] = []

    def fail(
        self, message: str, index: int | None = None, severity: Severity = Severity.TAMPERED
    ) -> None:
        self.report.add(severity, message, self.origin, index)

    def load_checkpoints(self) -> None:
        for size, note in self.conn.execute(
            "SELECT size, note FROM audit_checkpoint WHERE origin = ? ORDER BY size", (self.origin,)
        ):
            try:
                signed = verify_checkpoint(as_bytes(note) or b"", self.keys, origin=self.origin)
            except CheckpointError as exc:
                self.fail(f"checkpoint at size {size}: {exc} (a checkpoint was forged or altered)")
                continue
            if signed.checkpoint.size != size:
                self.fail(
                    f"checkpoint stored under size {size} is signed for size {signed.checkpoint.size}"
                )
                continue
            self.checkpoints[size] = signed

    def run(self) -> None:
        self.load_checkpoints()
        if self.state is not None and self.state["size"] in self.checkpoints:
            signed = self.checkpoints[self.state["size"]]
            if signed.checkpoint.root != base64.b64decode(self.state["root"]):
                self.fail(
                    f"two different signed roots for size {self.state['size']} (saved state and store): "
                    "the log forked"
                )
                return
        start, cr, prev = 0, CompactRange(), None
        if self.state is not None and not self.full:
            start = self.state["size"]
            cr = CompactRange.from_bytes(start, bytes.fromhex(self.state["compact"]))
            prev = bytes.fromhex(self.state["head"]) if self.state["head"] else None
            if start:
                row = self.conn.execute(
                    "SELECT leaf_hash FROM audit_entry WHERE origin = ? AND idx = ?",
                    (self.origin, start - 1),
                ).fetchone()
                if row is None or as_bytes(row[0]) != prev:
                    self.fail(
                        f"entry {start - 1} no longer has the leaf hash verified earlier: the log was "
                        "rolled back or rewritten (fork)",
                        start - 1,
                    )
                    return
        size = self._replay(start, cr, prev)
        if size is None:
            return
        self._finish(size)

    def _replay(self, start: int, cr: CompactRange, prev: bytes | None) -> int | None:
        """Replay the entries from ``start`` in index order; the size reached, or None on a break.

        Without workers this is one range read in this snapshot. With them, the entries below
        ``hint`` are cut into ranges that the workers read and check (``_worker_ranges``); here
        each range's first link is checked and its tree joined on, in order, and the entries from
        the last range's end on are read in this snapshot (normally none).
        """
        sizes = sorted(self.checkpoints)
        if self.state is not None and self.full:
            sizes = sorted({*sizes, self.state["size"]})
        expected, last = start, prev
        tasks = self._worker_ranges(start, cr, prev, sizes)
        try:
            for planned_end, future, joins in tasks:
                done, recording = result(future)
                if joins and not _links(done.first_prev, last):
                    self.finding(Severity.TAMPERED, BROKEN_LINK.format(expected - 1), expected)
                    return None
                recording.replay(self, cr if joins else None)
                expected = done.end
                if done.broken:
                    return None
                cr = joined(cr, done.tree) if joins else done.tree
                last = done.last_leaf or last
                if expected < planned_end:
                    break  # the rows ran out early: the next stored one, if any, is read below
            rows = self.conn.execute(ROWS_FROM, (self.origin, expected))
            done = replay_range(
                self.origin, rows, expected, prev=last, tree=cr, sizes=set(sizes), sink=self
            )
            expected = done.end
            return None if done.broken else expected
        finally:
            for _, future, _ in tasks:
                future.cancel()
            self.report.entries_checked += expected - start

    def _worker_ranges(
        self, start: int, cr: CompactRange, prev: bytes | None, sizes: list[int]
    ) -> list[tuple[int, Future[tuple[RangeEnd, Recording]], bool]]:
        """Hand the entries ``[start, hint)`` to the workers: ``(end, future, joins)`` per range.

        Ranges after the first start at a multiple of ``2**RANGE_BITS`` and hold at most that
        many entries, so a worker's tree of its own leaves joins onto the shard's (``joined``)
        and its first link is checked here (``joins``). The first range starts wherever the
        replay starts (after a saved state, anywhere) and is given the tree and the leaf before
        it. Each range is told the checkpoint sizes inside it.
        """
        if self.pool is None or self.hint <= start:
            return []
        span = 1 << RANGE_BITS
        cuts = [start, *range((start // span + 1) * span, self.hint, span), self.hint]
        tasks = []
        for lo, hi in itertools.pairwise(cuts):
            inside = sizes[bisect.bisect_right(sizes, lo) : bisect.bisect_right(sizes, hi)]
            if lo == start:
                future = self.pool.check(self.origin, lo, hi, inside, base=cr.copy(), prev=prev)
            else:
                future = self.pool.check(self.origin, lo, hi, inside)
            tasks.append((hi, future, lo != start))
        return tasks

    # -- what the ranges report (``ranges.RangeSink``) -------------------------------------------

    def finding(self, severity: Severity, message: str, index: int | None) -> None:
        """A finding about entry ``index`` of this shard."""
        self.report.add(severity, message, self.origin, index)

    def shard_entry(self, index: int, header: dict[str, Any]) -> None:
        """Prune and erasure records, anchors."""
        self.pruning.note_entry(header)
        if header["kind"] == "anchor":
            self._note_anchors(index, header)

    def absent(self, index: int, until: str | None) -> None:
        """A payload not stored: explained by a prune or erasure entry, or premature (``_finish``)."""
        self.pruning.absent.append((index, until))

    def tree(self, size: int, tree: CompactRange, leaf: bytes) -> None:
        """The tree at a checkpoint size, or at the saved state's size."""
        if size in self.checkpoints:
            self._check_root(size, tree, leaf)
        if self.state is not None and self.full and size == self.state["size"]:
            self._check_state_root(tree)

    def _note_anchors(self, idx: int, h: dict[str, Any]) -> None:
        claims = h.get("anchors")
        if not isinstance(claims, list):
            self.fail("anchor entry has no `anchors` list", idx)
            return
        for claim in claims:
            try:
                peer, size, root = claim["log"], claim["size"], claim["root"]
                if not (isinstance(peer, str) and isinstance(size, int) and size > 0):
                    raise TypeError("log must be a string and size a positive integer")
                digest = bytes.fromhex(root.removeprefix("sha256:"))
                if not root.startswith("sha256:") or len(digest) != 32:
                    raise ValueError("root must be sha256:<64 hex digits>")
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self.fail(f"anchor entry names a malformed checkpoint ({exc})", idx)
                continue
            self.anchors.append(Anchor(self.origin, idx, peer, size, digest))

    def _check_root(self, size: int, cr: CompactRange, head: bytes) -> None:
        signed = self.checkpoints[size]
        if cr.root() != signed.checkpoint.root:
            self.fail(
                f"checkpoint at size {size} signs root "
                f"{base64.b64encode(signed.checkpoint.root).decode()} but entries 0..{size - 1} hash to "
                f"{base64.b64encode(cr.root()).decode()}: entries were altered or a fork was signed"
            )
            return
        self.latest = signed
        self.latest_compact = cr.copy()
        self.latest_head = head

    def _check_state_root(self, cr: CompactRange) -> None:
        if self.state is not None and cr.root() != base64.b64decode(self.state["root"]):
            self.fail(
                f"the store's tree at size {self.state['size']} differs from the one verified before "
                "(saved state): the log was forked or rewritten"
            )

    def _finish(self, size: int) -> None:
        for cp_size in sorted(self.checkpoints):
            if cp_size > size:
                self.fail(
                    f"checkpoint at size {cp_size} but only {size} entries are stored: the log was "
                    "truncated"
                )
        row = self.conn.execute(
            "SELECT size FROM audit_shard WHERE origin = ?", (self.origin,)
        ).fetchone()
        if row is not None and row[0] > size:
            self.fail(
                f"the shard head records {row[0]} entries but only {size} are stored: the log was "
                "truncated"
            )
        if self.state is not None and size < self.state["size"]:
            self.fail(
                f"the store holds {size} entries but {self.state['size']} were verified before: the "
                "log was rolled back (saved state)"
            )
        for idx, until in self.pruning.absent:
            if not self.pruning.explain(idx, until):
                self.fail(
                    f"payload is missing but no prune entry covers it (retention until {until}): the "
                    "payload was deleted prematurely",
                    idx,
                )
        covered = self.latest.checkpoint.size if self.latest is not None else 0
        if self.latest is None and self.state is not None and not self.full:
            covered = self.state["size"]
        if size and not covered:
            self.fail(
                f"{size} entries but no checkpoint signs them yet", severity=Severity.INSUFFICIENT
            )
        elif covered < size:
            self.report.add(
                Severity.INFO,
                f"entries {covered}..{size - 1} are not yet covered by a checkpoint",
                self.origin,
            )

    def new_state(self) -> dict[str, Any] | None:
        if self.latest is None or self.latest_compact is None:
            return self.state
        cp = self.latest.checkpoint
        return {
            "size": cp.size,
            "root": base64.b64encode(cp.root).decode(),
            "compact": self.latest_compact.to_bytes().hex(),
            "head": self.latest_head.hex() if self.latest_head else "",
            "checkpoint": self.latest.raw.decode(),
        }


def _links(first_prev: Any, last: bytes | None) -> bool:
    """Whether a worker range's first entry links to ``last``, the leaf before the range.

    A range whose first entry is hash-only (no ``prev`` to compare) or broke before its link
    was compared reports ``UNKNOWN_PREV``; a break reports itself.
    """
    if first_prev is UNKNOWN_PREV:
        return True
    return last is not None and first_prev == DIGEST_PREFIX + last.hex()


@dataclass(frozen=True, slots=True)
class Anchor:
    """One shard's claim, in its entry ``index``, that ``peer`` had ``root`` at ``size``."""

    origin: str
    index: int
    peer: str
    size: int
    root: bytes


def check_anchors(conn: Reader, anchors: list[Anchor], origins: set[str], report: Report) -> None:
    """Each anchored shard is present and its leaves hash to the anchored root at that size.

    One pass over each anchored shard's leaf hashes (in index order) checks all its claims.
    """
    by_peer: dict[str, list[Anchor]] = {}
    for a in anchors:
        by_peer.setdefault(a.peer, []).append(a)
    for peer, claims in sorted(by_peer.items()):
        if peer not in origins:
            for a in claims:
                report.add(
                    Severity.TAMPERED,
                    f"anchors shard `{peer}` at size {a.size}, but that shard is not in the store: "
                    "a shard was deleted or hidden from the registry",
                    a.origin,
                    a.index,
                )
            continue
        claims.sort(key=lambda a: a.size)
        rows = conn.execute(
            "SELECT leaf_hash FROM audit_entry WHERE origin = ? AND idx < ? ORDER BY idx",
            (peer, claims[-1].size),
        )
        cr, pos = CompactRange(), 0
        for (leaf,) in rows:
            cr.append(as_bytes(leaf) or b"")
            while pos < len(claims) and claims[pos].size == cr.size:
                _check_claim(claims[pos], cr.root(), report)
                pos += 1
        for a in claims[pos:]:
            report.add(
                Severity.TAMPERED,
                f"anchors shard `{peer}` at size {a.size}, but it holds only {cr.size} entries: "
                "that shard was truncated or rolled back",
                a.origin,
                a.index,
            )
        if pos:
            report.add(
                Severity.INFO, f"{pos} anchors of this shard by other shards check out", peer
            )


def _check_claim(a: Anchor, root: bytes, report: Report) -> None:
    if root != a.root:
        report.add(
            Severity.TAMPERED,
            f"anchors shard `{a.peer}` at size {a.size} with root "
            f"{base64.b64encode(a.root).decode()}, but its entries hash to "
            f"{base64.b64encode(root).decode()}: that shard was rewritten or forked",
            a.origin,
            a.index,
        )
