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
import binascii
import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from clearance.audit.verify.errors import ExitCode, Report, Severity
from clearance.audit.verify.incident import verify_bundle
from clearance.audit.verify.parallel import WorkerError, WorkerPool
from clearance.audit.verify.shard import Anchor, Reader, ReadError, ShardVerifier, check_anchors
from clearance.formats.canonical import request_digest
from clearance.formats.checkpoint import CheckpointError, verify_checkpoint
from clearance.formats.entry import EntryError, parse_header
from clearance.formats.merkle import ProofError
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


def is_postgres_url(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` is a PostgreSQL URL (the store of several replicas)."""
    return str(target).startswith(("postgresql://", "postgres://"))


def store_file(path: str | os.PathLike[str]) -> Path:
    """The SQLite file of a clearance store: ``path`` itself, or the audit file in a data directory."""
    p = Path(path)
    if p.is_dir():
        p = p / "audit.db" if (p / "audit.db").is_file() else p / "clearance.db"
    if not p.is_file():
        raise FileNotFoundError(f"no audit database at `{p}`")
    return p


def open_store_readonly(path: str | os.PathLike[str], *, begin: bool = True) -> sqlite3.Connection:
    """Open a clearance SQLite store read-only: the audit file, or a data directory holding it.

    The connection reads inside one transaction (``begin``), so every shard is seen at one instant
    even while the gate appends; without ``begin`` each statement reads the latest state.
    """
    conn = sqlite3.connect(f"file:{store_file(path)}?mode=ro", uri=True, isolation_level=None)
    if begin:
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


def _open_with_workers(
    target: str | os.PathLike[str], jobs: int
) -> tuple[Reader, WorkerPool, dict[str, int]]:
    """A snapshot of a SQLite store taken after ``jobs`` workers took theirs (``parallel.py``).

    Also returns a size per shard, read before the workers started: the entries below it are in
    every worker's snapshot, so the workers may be given ranges below it. It is only a hint for
    cutting ranges (``_range_hint``); entries beyond it are read in the returned snapshot.
    """
    path = store_file(target)
    conn = open_store_readonly(path, begin=False)
    try:
        hints = {
            origin: _range_hint(size, last)
            for origin, size, last in conn.execute(
                "SELECT s.origin, s.size, (SELECT e.idx FROM audit_entry e"
                " WHERE e.origin = s.origin AND e.idx < ? ORDER BY e.idx DESC LIMIT 1)"
                " FROM audit_shard s",
                (_INT64_MAX,),
            )
        }
        pool = WorkerPool(str(path), jobs)
    except BaseException:
        conn.close()
        raise
    conn.execute("BEGIN")
    return conn, pool, hints


_INT64_MAX = 2**63 - 1


def _range_hint(size: object, last: object) -> int:
    """Where worker ranges end: the head's size, but never past the last stored index + 1.

    Both come from the store an attacker may have edited: a head claiming a trillion entries
    must not become a trillion ranges. The last index is looked up below the largest integer,
    which skips a text index (SQLite sorts text after every number): such rows are read in the
    caller's snapshot after the ranges, like any entry past the hint.
    """
    if type(size) is not int or type(last) is not int:
        return 0
    return max(min(size, last + 1), 0)


def verify_log(
    path: str | os.PathLike[str],
    keys: Sequence[VerifierKey],
    *,
    state: dict[str, Any] | None = None,
    full: bool = False,
    origin_prefix: str | None = None,
    open_db: Callable[[str], Reader] | None = None,
    jobs: int = 1,
) -> Report:
    """Verify every shard of a store and their anchors of each other.

    ``path`` is a SQLite file, a data directory, or a PostgreSQL URL opened with ``open_db``;
    ``report.state`` is the state to save if nothing failed. ``jobs`` > 1 reads and checks the
    entries of a SQLite store in that many worker processes (``parallel.py``); the findings are
    the same. A PostgreSQL store is read in one snapshot by this process.
    """
    report = Report()
    source = _redact_url(str(path))
    pool: WorkerPool | None = None
    hints: dict[str, int] = {}
    try:
        if jobs > 1 and not is_postgres_url(path):
            conn, pool, hints = _open_with_workers(path, jobs)
        else:
            conn = _open_reader(path, open_db)
            if jobs > 1:
                report.add(
                    Severity.INFO,
                    "--jobs applies to SQLite stores: this store is read in one snapshot by this "
                    "process",
                    source,
                )
        origins = [r[0] for r in conn.execute("SELECT origin FROM audit_shard ORDER BY origin")]
    except (OSError, sqlite3.Error, ReadError) as exc:
        report.add(Severity.UNUSABLE, f"cannot read the audit store: {exc}", source)
        if pool is not None:
            pool.close()
        return report
    except WorkerError as exc:
        report.add(Severity.UNUSABLE, f"cannot verify the audit store: {exc}", source)
        return report
    shards_state = dict((state or {}).get("shards", {}))
    prefixes = [origin_prefix] if origin_prefix else [k.name + "/" for k in _log_keys(keys)]
    for missing in sorted(set(shards_state) - set(origins)):
        report.add(Severity.TAMPERED, "a shard verified before is gone from the store", missing)
    anchors: list[Anchor] = []
    try:
        for origin in origins:
            if not any(origin.startswith(p) for p in prefixes):
                report.add(
                    Severity.UNUSABLE, "shard origin is not under a trusted deployment name", origin
                )
                continue
            verifier = ShardVerifier(
                conn,
                origin,
                keys,
                report,
                shards_state.get(origin),
                full=full,
                pool=pool,
                hint=hints.get(origin, 0),
            )
            verifier.run()
            anchors.extend(verifier.anchors)
            new = verifier.new_state()
            if new is not None:
                shards_state[origin] = new
        check_anchors(conn, anchors, set(origins), report)
    except (sqlite3.Error, ReadError, ValueError, binascii.Error, ProofError) as exc:
        report.add(Severity.UNUSABLE, f"cannot read the audit store: {exc}", source)
    except WorkerError as exc:
        report.add(Severity.UNUSABLE, f"cannot verify the audit store: {exc}", source)
    finally:
        if pool is not None:
            pool.close()
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
_MAX_JOBS = 64


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
    lg.add_argument(
        "--jobs",
        type=_jobs,
        default=1,
        help="read and check entries in N worker processes (SQLite stores); same findings",
    )
    lg.add_argument("--origin-prefix")
    return parser


def _jobs(text: str) -> int:
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if not 1 <= jobs <= _MAX_JOBS:
        raise argparse.ArgumentTypeError(
            f"`{text[:20]}` is not a number of workers from 1 to {_MAX_JOBS}"
        )
    return jobs


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
        jobs=args.jobs,
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
