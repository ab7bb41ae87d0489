"""Verification of receipts, proofs, consistency proofs and whole audit stores.

Every check names the evidence and, where there is one, the entry index, and says what a failure
means. Results are ``Report`` objects (findings plus an exit code); nothing here returns a bare
``False``. Reads are read-only and see one snapshot: the SQLite store is opened with ``mode=ro``
inside one transaction. A PostgreSQL store (``--db postgresql://...``, the shards of several
replicas) is read through a ``Reader`` the caller supplies (``open_db``): this package needs no
database driver, so ``clearance audit verify`` passes one (a read-only ``REPEATABLE READ``
transaction), while the standalone verifier reads SQLite files only.

Cross-shard anchors (AUDIT.md 3.11): each ``anchor`` entry names other shards' checkpoints
``(log, size, root)``. After every shard is replayed, each anchored shard must still be in the
store, hold at least the anchored number of entries, and its leaf hashes must give the anchored
root at that size; otherwise a shard was deleted, truncated or forked.

State file (``--state``): JSON kept **outside** the store, holding per shard the last verified
checkpoint (size, root) and the compact range and head at that size. A later run proves the store
still extends it (rollback and fork detection) and, unless ``--full``, only re-reads newer entries.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from clearance.audit.verify.errors import ExitCode, Finding, Severity, exit_code
from clearance.audit.verify.incident import verify_bundle
from clearance.formats.canonical import request_digest
from clearance.formats.checkpoint import CheckpointError, SignedCheckpoint, verify_checkpoint
from clearance.formats.entry import PAYLOAD_DOMAIN, EntryError, parse_header
from clearance.formats.merkle import CompactRange, ProofError
from clearance.formats.note import ALG_COSIGNATURE_V1, NoteError, VerifierKey
from clearance.formats.proof import ProofFileError, verify_consistency_proof, verify_inclusion_proof
from clearance.formats.receipt import ReceiptError, ReceiptSignatureError, verify_receipt

STATE_VERSION = 1
_RECEIPT_BOUND_FIELDS = (
    "decision_id",
    "request_digest",
    "policy",
    "outcome",
    "rule",
    "shadow",
    "time",
)


@dataclass
class Report:
    """Findings of one verification run and, for ``log``, the state to save."""

    findings: list[Finding] = field(default_factory=list)
    state: dict[str, Any] | None = None
    entries_checked: int = 0

    def add(
        self, severity: Severity, message: str, source: str = "", index: int | None = None
    ) -> None:
        """Record a finding."""
        self.findings.append(Finding(severity, message, source, index))

    @property
    def exit_code(self) -> ExitCode:
        """Exit code of the worst finding."""
        return exit_code(self.findings)

    @property
    def tampered(self) -> bool:
        """True if any finding is evidence of tampering."""
        return self.exit_code == ExitCode.TAMPERED


def _blob(value: object) -> bytes | None:
    """Column value as bytes: an attacker may have written TEXT or numbers where BLOBs belong."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return str(value).encode()


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


def _log_keys(keys: Sequence[VerifierKey]) -> list[VerifierKey]:
    return [k for k in keys if k.alg != ALG_COSIGNATURE_V1]


# -- receipt / proof / consistency ----------------------------------------------------------------


def verify_receipt_bundle(
    receipt: bytes,
    keys: Sequence[VerifierKey],
    *,
    proof: bytes | None = None,
    entry: bytes | None = None,
    request: bytes | None = None,
    policy_bundle: bytes | None = None,
    min_witnesses: int = 0,
    source: str = "receipt",
) -> Report:
    """Verify a receipt and, when given, bind it to a proof, an entry, a request and a policy."""
    report = Report()
    try:
        statement = verify_receipt(receipt, _log_keys(keys))
    except ReceiptError as exc:
        report.add(_receipt_severity(exc), f"{exc}", source)
        return report
    index = statement["index"]
    report.add(
        Severity.INFO,
        f"signature verifies; {statement['outcome']} by rule `{statement['rule']}`",
        source,
        index,
    )
    if proof is not None:
        _bind_proof(report, statement, proof, keys, min_witnesses, source)
    if entry is not None:
        _bind_entry(report, statement, entry, source)
    if request is not None:
        _bind_request(report, statement, request, source)
    if policy_bundle is not None:
        digest = "sha256:" + hashlib.sha256(policy_bundle).hexdigest()
        if digest != statement["policy"]:
            report.add(
                Severity.TAMPERED,
                f"policy bundle digest {digest} is not the receipt's "
                f"{statement['policy']}: this bundle did not decide",
                source,
                index,
            )
    return report


def _receipt_severity(exc: ReceiptError) -> Severity:
    return Severity.TAMPERED if isinstance(exc, ReceiptSignatureError) else Severity.UNUSABLE


def _bind_proof(
    report: Report,
    statement: dict[str, Any],
    proof: bytes,
    keys: Sequence[VerifierKey],
    min_witnesses: int,
    source: str,
) -> None:
    index = statement["index"]
    try:
        result = verify_inclusion_proof(proof, keys, origin=statement["log"])
    except ProofFileError as exc:
        report.add(_proof_severity(exc), f"proof: {exc}", source, index)
        return
    leaf = "sha256:" + result.leaf_hash.hex()
    if result.index != index or leaf != statement["leaf"]:
        report.add(
            Severity.TAMPERED,
            f"proof is for entry {result.index} ({leaf}), the receipt names "
            f"{statement['leaf']}: the receipt is re-bound to another entry",
            source,
            index,
        )
        return
    _compare_fields(report, statement, result.header, source)
    cosigs = len(result.checkpoint.note.cosignature_times)
    if cosigs < min_witnesses:
        report.add(
            Severity.INSUFFICIENT,
            f"{cosigs} witness cosignatures, {min_witnesses} required",
            source,
            index,
        )
    report.add(
        Severity.INFO,
        f"included in checkpoint of size {result.checkpoint.checkpoint.size}",
        source,
        index,
    )


def _proof_severity(exc: Exception) -> Severity:
    text = str(exc)
    if any(
        s in text
        for s in ("does not verify", "does not match", "header names", "too many", "too few")
    ):
        return Severity.TAMPERED
    return Severity.UNUSABLE


def _compare_fields(
    report: Report, statement: dict[str, Any], header: dict[str, Any], source: str
) -> None:
    for name in (*_RECEIPT_BOUND_FIELDS, "log"):
        if header.get(name) != statement.get(name):
            report.add(
                Severity.TAMPERED,
                f"field `{name}` is `{header.get(name)}` in the entry but "
                f"`{statement.get(name)}` in the receipt",
                source,
                statement["index"],
            )


def _bind_entry(report: Report, statement: dict[str, Any], entry: bytes, source: str) -> None:
    leaf = "sha256:" + hashlib.sha256(b"\x00" + entry).hexdigest()
    if leaf != statement["leaf"]:
        report.add(
            Severity.TAMPERED,
            "entry does not hash to the receipt's leaf",
            source,
            statement["index"],
        )
        return
    try:
        _compare_fields(report, statement, parse_header(entry), source)
    except EntryError as exc:
        report.add(Severity.TAMPERED, f"entry: {exc}", source, statement["index"])


def _bind_request(report: Report, statement: dict[str, Any], request: bytes, source: str) -> None:
    try:
        req = json.loads(request)
        digest = request_digest(
            agent_id=req["agent_id"],
            session_id=req["session_id"],
            tool=req["tool"],
            action=req.get("action", "call"),
            args=req["args"],
            target=req.get("target"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        report.add(Severity.UNUSABLE, f"request file is not a request object: {exc}", source)
        return
    if digest != statement["request_digest"]:
        report.add(
            Severity.TAMPERED,
            f"request digest {digest} differs from the receipt's "
            f"{statement['request_digest']}: the receipt is for another request",
            source,
            statement["index"],
        )
    else:
        report.add(Severity.INFO, "request digest matches", source, statement["index"])


def verify_proof_file(
    proof: bytes, keys: Sequence[VerifierKey], *, source: str = "proof"
) -> Report:
    """Verify a tlog-proof on its own; the entry header is reported as an info finding."""
    report = Report()
    try:
        result = verify_inclusion_proof(proof, keys)
    except ProofFileError as exc:
        report.add(_proof_severity(exc), str(exc), source)
        return report
    report.add(
        Severity.INFO,
        f"included in `{result.checkpoint.checkpoint.origin}` size "
        f"{result.checkpoint.checkpoint.size}: {result.header_bytes.decode()}",
        source,
        result.index,
    )
    return report


def verify_consistency_file(
    old: bytes, proof: bytes, keys: Sequence[VerifierKey], *, source: str = "consistency"
) -> Report:
    """Verify that the checkpoint in ``proof`` extends the signed checkpoint ``old``."""
    report = Report()
    try:
        old_cp = verify_checkpoint(old, keys).checkpoint
        new = verify_consistency_proof(old_cp, proof, keys)
    except (CheckpointError, ProofFileError) as exc:
        report.add(_proof_severity(exc), str(exc), source)
        return report
    report.add(
        Severity.INFO, f"size {new.checkpoint.size} is consistent with size {old_cp.size}", source
    )
    return report


# -- whole store --------------------------------------------------------------------------------


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
            for r in pruned.get("ranges", []):
                if isinstance(r, list) and len(r) == 2 and isinstance(cutoff, str):
                    self.ranges.append((r[0], r[1], cutoff))
        erased = header.get("erased")
        if header["kind"] == "erasure" and isinstance(erased, list):
            self.erased.update(i for i in erased if isinstance(i, int))

    def explain(self, index: int, until: str | None) -> bool:
        if index in self.erased:
            return True
        return until is not None and any(s <= index <= e and until < c for s, e, c in self.ranges)


class _ShardVerifier:
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
    ) -> None:
        self.conn = conn
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
        self.anchors: list[_Anchor] = []

    def fail(
        self, message: str, index: int | None = None, severity: Severity = Severity.TAMPERED
    ) -> None:
        self.report.add(severity, message, self.origin, index)

    def load_checkpoints(self) -> None:
        for size, note in self.conn.execute(
            "SELECT size, note FROM audit_checkpoint WHERE origin = ? ORDER BY size", (self.origin,)
        ):
            try:
                signed = verify_checkpoint(_blob(note) or b"", self.keys, origin=self.origin)
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
                if row is None or _blob(row[0]) != prev:
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
        expected = start
        rows = self.conn.execute(
            "SELECT e.idx, e.leaf_hash, e.header, p.salt, p.body FROM audit_entry e"
            " LEFT JOIN audit_payload p ON p.origin = e.origin AND p.idx = e.idx"
            " WHERE e.origin = ? AND e.idx >= ? ORDER BY e.idx",
            (self.origin, start),
        )
        check_state_root = self.state is not None and self.full
        for idx, stored_leaf, header, salt, body in rows:
            if idx != expected:
                self.fail(
                    f"entry {expected} is missing (the next stored entry is {idx}): an entry was "
                    "deleted",
                    expected,
                )
                return None
            lh = self._entry(
                idx, _blob(stored_leaf) or b"", _blob(header), _blob(salt), _blob(body), prev
            )
            if lh is None:
                return None
            cr.append(lh)
            prev = lh
            expected += 1
            self.report.entries_checked += 1
            if expected in self.checkpoints:
                self._check_root(expected, cr, prev)
            if check_state_root and self.state is not None and expected == self.state["size"]:
                self._check_state_root(cr)
        return expected

    def _entry(
        self,
        idx: int,
        stored_leaf: bytes,
        header: bytes | None,
        salt: bytes | None,
        body: bytes | None,
        prev: bytes | None,
    ) -> bytes | None:
        if header is None:
            self.report.add(Severity.INFO, "pruned: hash only", self.origin, idx)
            return stored_leaf
        raw = header
        lh = hashlib.sha256(b"\x00" + raw).digest()
        if lh != stored_leaf:
            self.fail(
                "stored leaf hash does not match the header: the header or its hash was altered",
                idx,
            )
            return None
        try:
            h = parse_header(raw)
        except EntryError as exc:
            self.fail(f"header is not a valid canonical v1 entry: {exc}", idx)
            return None
        if h["log"] != self.origin or h["index"] != idx:
            self.fail(
                f"header names log `{h['log']}` index {h['index']}: entries were reordered or moved "
                "between logs",
                idx,
            )
            return None
        want_prev = None if prev is None else "sha256:" + prev.hex()
        if h["prev"] != want_prev:
            self.fail(
                f"prev does not match the leaf hash of entry {idx - 1}: the entry or its predecessor "
                "was altered, removed or reordered",
                idx,
            )
            return None
        self.pruning.note_entry(h)
        if h["kind"] == "anchor":
            self._note_anchors(idx, h)
        self._payload(idx, h, salt, body)
        return lh

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
            self.anchors.append(_Anchor(self.origin, idx, peer, size, digest))

    def _payload(self, idx: int, h: dict[str, Any], salt: bytes | None, body: bytes | None) -> None:
        ref = h.get("payload")
        if ref is None:
            if body is not None:
                self.fail("a payload is stored for an entry that commits to none", idx)
            return
        if body is None or salt is None:
            retention = h.get("retention") or {}
            self.pruning.absent.append((idx, retention.get("until")))
            return
        commit = hmac.new(salt, PAYLOAD_DOMAIN + body, hashlib.sha256).hexdigest()
        if "sha256:" + commit != ref["commit"] or len(body) != ref["size"]:
            self.fail("stored payload does not match its commitment: the payload was edited", idx)

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
class _Anchor:
    """One shard's claim, in its entry ``index``, that ``peer`` had ``root`` at ``size``."""

    origin: str
    index: int
    peer: str
    size: int
    root: bytes


def _check_anchors(conn: Reader, anchors: list[_Anchor], origins: set[str], report: Report) -> None:
    """Each anchored shard is present and its leaves hash to the anchored root at that size.

    One pass over each anchored shard's leaf hashes (in index order) checks all its claims.
    """
    by_peer: dict[str, list[_Anchor]] = {}
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
            cr.append(_blob(leaf) or b"")
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


def _check_claim(a: _Anchor, root: bytes, report: Report) -> None:
    if root != a.root:
        report.add(
            Severity.TAMPERED,
            f"anchors shard `{a.peer}` at size {a.size} with root "
            f"{base64.b64encode(a.root).decode()}, but its entries hash to "
            f"{base64.b64encode(root).decode()}: that shard was rewritten or forked",
            a.origin,
            a.index,
        )


def is_postgres_url(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` is a PostgreSQL URL (the store of several replicas)."""
    return str(target).startswith(("postgresql://", "postgres://"))


def open_store_readonly(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open a clearance SQLite store read-only: the audit file, or a data directory holding it.

    The connection reads inside one transaction, so every shard is seen at one instant even while
    the gate appends.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "audit.db" if (p / "audit.db").is_file() else p / "clearance.db"
    if not p.is_file():
        raise FileNotFoundError(f"no audit database at `{p}`")
    conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, isolation_level=None)
    conn.execute("BEGIN")
    return conn


def _open_reader(target: str | os.PathLike[str], open_db: Callable[[str], Reader] | None) -> Reader:
    if not is_postgres_url(target):
        return open_store_readonly(target)
    if open_db is None:
        raise ReadError(
            "this verifier reads SQLite stores; verify a PostgreSQL store with "
            "`clearance audit verify --db URL` (it brings the database driver)"
        )
    return open_db(str(target))


def verify_log(
    path: str | os.PathLike[str],
    keys: Sequence[VerifierKey],
    *,
    state: dict[str, Any] | None = None,
    full: bool = False,
    origin_prefix: str | None = None,
    open_db: Callable[[str], Reader] | None = None,
) -> Report:
    """Verify every shard of a store and their anchors of each other.

    ``path`` is a SQLite file, a data directory, or a PostgreSQL URL opened with ``open_db``;
    ``report.state`` is the state to save if nothing failed.
    """
    report = Report()
    source = _redact_url(str(path))
    try:
        conn = _open_reader(path, open_db)
        origins = [r[0] for r in conn.execute("SELECT origin FROM audit_shard ORDER BY origin")]
    except (OSError, sqlite3.Error, ReadError) as exc:
        report.add(Severity.UNUSABLE, f"cannot read the audit store: {exc}", source)
        return report
    shards_state = dict((state or {}).get("shards", {}))
    prefixes = [origin_prefix] if origin_prefix else [k.name + "/" for k in _log_keys(keys)]
    for missing in sorted(set(shards_state) - set(origins)):
        report.add(Severity.TAMPERED, "a shard verified before is gone from the store", missing)
    anchors: list[_Anchor] = []
    try:
        for origin in origins:
            if not any(origin.startswith(p) for p in prefixes):
                report.add(
                    Severity.UNUSABLE, "shard origin is not under a trusted deployment name", origin
                )
                continue
            verifier = _ShardVerifier(
                conn, origin, keys, report, shards_state.get(origin), full=full
            )
            verifier.run()
            anchors.extend(verifier.anchors)
            new = verifier.new_state()
            if new is not None:
                shards_state[origin] = new
        _check_anchors(conn, anchors, set(origins), report)
    except (sqlite3.Error, ReadError, ValueError, binascii.Error, ProofError) as exc:
        report.add(Severity.UNUSABLE, f"cannot read the audit store: {exc}", source)
    finally:
        conn.close()
    if not report.tampered:
        report.state = {"version": STATE_VERSION, "shards": shards_state}
    return report


def _redact_url(target: str) -> str:
    """``target`` with any password in a database URL replaced by ``***`` (findings are printed)."""
    scheme, sep, rest = target.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return target
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def load_state(path: Path) -> dict[str, Any] | None:
    """Read a state file; a missing file means a first run."""
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ValueError(f"state file `{path}` is not a version {STATE_VERSION} verifier state")
    return state


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Replace the state file atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    tmp.replace(path)


# -- command line -------------------------------------------------------------------------------

COMMANDS = ("receipt", "proof", "consistency", "log", "bundle")


def load_keys(texts: Iterable[str], files: Iterable[str]) -> list[VerifierKey]:
    """Parse vkeys given inline and in files (one per line, ``#`` comments allowed)."""
    lines = list(texts)
    for f in files:
        lines.extend(
            line.strip()
            for line in Path(f).read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
    return [VerifierKey.parse(line) for line in lines]


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--key",
        "--public-key",
        action="append",
        default=[],
        dest="key",
        help="trusted vkey (repeatable): the deployment key, witness keys",
    )
    common.add_argument("--keys", action="append", default=[], help="file of vkeys, one per line")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    parser = argparse.ArgumentParser(
        prog="clearance-verify",
        parents=[common],
        description="Verify clearance audit evidence with only a public key.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "receipt", parents=[common], help="verify a receipt (optionally bound to a proof)"
    )
    r.add_argument("receipt")
    r.add_argument("--proof")
    r.add_argument("--entry")
    r.add_argument("--request")
    r.add_argument("--policy-bundle")
    r.add_argument("--at-least-witnesses", type=int, default=0)
    p = sub.add_parser("proof", parents=[common], help="verify a tlog-proof file")
    p.add_argument("proof")
    c = sub.add_parser("consistency", parents=[common], help="verify a consistency proof")
    c.add_argument("old_checkpoint")
    c.add_argument("proof")
    b = sub.add_parser("bundle", parents=[common], help="verify an incident bundle offline")
    b.add_argument("bundle")
    lg = sub.add_parser("log", parents=[common], help="verify a whole store")
    lg.add_argument("path", nargs="?", help="data directory or SQLite file")
    lg.add_argument(
        "--db", help="SQLite file, or postgresql://... URL of the replicas' store (all shards)"
    )
    lg.add_argument("--state", help="state file outside the store (rollback and fork detection)")
    lg.add_argument("--full", action="store_true", help="re-verify from entry 0")
    lg.add_argument("--origin-prefix")
    return parser


def _read(path: str | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def run(args: argparse.Namespace, open_db: Callable[[str], Reader] | None = None) -> Report:
    """Execute a parsed command line and return its report (I/O errors become findings)."""
    try:
        keys = load_keys(args.key, args.keys)
    except (OSError, NoteError) as exc:
        report = Report()
        report.add(Severity.UNUSABLE, f"cannot load the trusted keys: {exc}")
        return report
    if not keys:
        report = Report()
        report.add(Severity.UNUSABLE, "no trusted key given (use --key VKEY or --keys FILE)")
        return report
    try:
        return _dispatch(args, keys, open_db)
    except (OSError, ValueError) as exc:
        report = Report()
        report.add(Severity.UNUSABLE, f"cannot read the input: {exc}")
        return report


def _dispatch(
    args: argparse.Namespace, keys: list[VerifierKey], open_db: Callable[[str], Reader] | None
) -> Report:
    if args.command == "receipt":
        return verify_receipt_bundle(
            Path(args.receipt).read_bytes(),
            keys,
            proof=_read(args.proof),
            entry=_read(args.entry),
            request=_read(args.request),
            policy_bundle=_read(args.policy_bundle),
            min_witnesses=args.at_least_witnesses,
            source=args.receipt,
        )
    if args.command == "proof":
        return verify_proof_file(Path(args.proof).read_bytes(), keys, source=args.proof)
    if args.command == "consistency":
        return verify_consistency_file(
            Path(args.old_checkpoint).read_bytes(),
            Path(args.proof).read_bytes(),
            keys,
            source=args.proof,
        )
    if args.command == "bundle":
        findings, checked = verify_bundle(Path(args.bundle).read_bytes(), keys)
        return Report(findings=findings, entries_checked=checked)
    target = args.db or args.path
    if target is None:
        report = Report()
        report.add(Severity.UNUSABLE, "give a data directory, --db FILE or --db postgresql://...")
        return report
    state_path = Path(args.state) if args.state else None
    state = load_state(state_path) if state_path else None
    report = verify_log(
        target,
        keys,
        state=state,
        full=args.full,
        origin_prefix=args.origin_prefix,
        open_db=open_db,
    )
    if state_path is not None and report.state is not None:
        save_state(state_path, report.state)
    return report


def main(
    argv: Sequence[str] | None = None, *, open_db: Callable[[str], Reader] | None = None
) -> int:
    """Command-line entry point; returns the exit code (0, 1, 2 or 3).

    ``open_db`` opens ``--db postgresql://...`` stores (``clearance audit verify`` supplies it).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not any(a in (*COMMANDS, "-h", "--help") for a in args_list):
        args_list = ["log", *args_list]  # `clearance-verify <store> --key K` means `log`
    try:
        args = _parser().parse_args(args_list)
    except SystemExit as exc:
        return int(exc.code or 0) and int(ExitCode.UNUSABLE)
    report = run(args, open_db)
    code = report.exit_code
    if args.json:
        sys.stdout.write(
            json.dumps(
                {
                    "exit": int(code),
                    "entries_checked": report.entries_checked,
                    "findings": [f.to_dict() for f in report.findings],
                }
            )
            + "\n"
        )
    else:
        for f in report.findings:
            if f.severity != Severity.INFO or f.index is None:
                sys.stdout.write(f.to_line() + "\n")
        summary = {
            ExitCode.VERIFIED: "verified",
            ExitCode.TAMPERED: "EVIDENCE OF TAMPERING",
            ExitCode.UNUSABLE: "unusable input",
            ExitCode.INSUFFICIENT: "not enough evidence yet",
        }[code]
        sys.stdout.write(f"{summary} ({report.entries_checked} entries checked)\n")
    return int(code)


__all__ = [
    "ReadError",
    "Reader",
    "Report",
    "main",
    "verify_consistency_file",
    "verify_log",
    "verify_proof_file",
    "verify_receipt_bundle",
]
