"""Replaying one shard of a store: chain, leaf hashes, dense indexes, roots, payloads, anchors.

Each row's own checks (``entries.check_rows``) run in batches, optionally in worker processes;
what only the order proves (dense indexes, the ``prev`` chain, the tree root at every checkpoint,
the saved state, pruning against prune and erasure entries) is checked here, in one pass, in index
order. Cross-shard anchors are collected per shard and checked once every shard has been replayed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from clearance.audit.verify.entries import HASH_ONLY, Checked, Row, as_bytes, check_rows
from clearance.audit.verify.errors import Report, Severity
from clearance.audit.verify.parallel import parallel_batches
from clearance.formats.canonical import DIGEST_PREFIX
from clearance.formats.checkpoint import CheckpointError, SignedCheckpoint, verify_checkpoint
from clearance.formats.merkle import CompactRange
from clearance.formats.note import VerifierKey

#: Rows read and checked per batch: large enough to amortise the per-batch cost (a worker
#: round trip), small enough to keep memory flat on a store of any size.
_BATCH = 2048


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
        jobs: int = 1,
    ) -> None:
        self.conn = conn
        self.jobs = jobs
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
        """Consume the rows from ``start`` in index order; the size reached, or None on a break.

        Rows are read in batches inside the caller's snapshot and ``check_rows`` runs on each
        batch (``self.jobs`` worker processes when asked); only the links between entries are
        checked here, in order.
        """
        rows = self.conn.execute(
            "SELECT e.idx, e.leaf_hash, e.header, p.salt, p.body FROM audit_entry e"
            " LEFT JOIN audit_payload p ON p.origin = e.origin AND p.idx = e.idx"
            " WHERE e.origin = ? AND e.idx >= ? ORDER BY e.idx",
            (self.origin, start),
        )
        expected = start
        want_prev = None if prev is None else DIGEST_PREFIX + prev.hex()
        checkpoints = self.checkpoints
        state_size = self.state["size"] if self.state is not None and self.full else None
        try:
            for batch, checked in self._checked_batches(rows):
                for row, (leaf, header_prev, fatal, notes, header, absent) in zip(
                    batch, checked, strict=True
                ):
                    idx = row[0]
                    if idx != expected:
                        self.fail(
                            f"entry {expected} is missing (the next stored entry is {idx}): an "
                            "entry was deleted",
                            expected,
                        )
                        return None
                    if fatal is not None:
                        self.fail(fatal, idx)
                        return None
                    if header_prev is HASH_ONLY:
                        self.report.add(Severity.INFO, "pruned: hash only", self.origin, idx)
                    elif header_prev != want_prev:
                        self.fail(
                            f"prev does not match the leaf hash of entry {idx - 1}: the entry or "
                            "its predecessor was altered, removed or reordered",
                            idx,
                        )
                        return None
                    else:
                        if header is not None:
                            self._note_header(idx, header, absent=absent)
                        for note in notes:
                            self.fail(note, idx)
                    cr.append(leaf)
                    want_prev = DIGEST_PREFIX + leaf.hex()
                    expected += 1
                    if expected in checkpoints:
                        self._check_root(expected, cr, leaf)
                    if expected == state_size:
                        self._check_state_root(cr)
        finally:
            self.report.entries_checked += expected - start
        return expected

    def _checked_batches(self, rows: Any) -> Iterator[tuple[list[Row], list[Checked]]]:
        """``(rows, check_rows(rows))`` per batch, in order; checked in workers when ``jobs > 1``."""
        batches: Iterator[list[Row]] = iter(lambda: list(islice(rows, _BATCH)), [])
        if self.jobs <= 1:
            for batch in batches:
                yield batch, check_rows(self.origin, batch)
            return
        yield from parallel_batches(self.origin, batches, self.jobs)

    def _note_header(self, idx: int, header: dict[str, Any], *, absent: bool) -> None:
        """Shard-level facts from an entry: prune and erasure records, anchors, absent payloads."""
        self.pruning.note_entry(header)
        if header["kind"] == "anchor":
            self._note_anchors(idx, header)
        if absent:
            retention = header.get("retention") or {}
            self.pruning.absent.append((idx, retention.get("until")))

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
