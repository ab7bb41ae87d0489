"""Incident bundles: the evidence of one session (or agent, or period) in one self-contained file.

An operator exports a bundle with ``clearance incident export --session ID``; an auditor checks it
offline with only the deployment's public key::

    python -m clearance.audit.verify bundle incident.json --key "$VKEY"

This module holds the bundle format, the timeline rendering and the offline check. Like the rest
of the standalone verifier it imports nothing of clearance but ``clearance.formats`` (and the
verifier's own findings), so checking a bundle needs neither the gate nor its store.

Bundle (JSON, ``format`` = ``clearance.incident/v1``)::

    {"format": ..., "subject": {"session": .., "agent": .., "since": ..}, "exported_at": ..,
     "entries":  [{"log", "index", "header", "salt", "payload", "proof"}],   # log order per shard
     "receipts": [{"decision_id", "envelope"}],                               # DSSE envelopes
     "policies": [{"digest", "source_name", "canonical"}],                    # bundles in force
     "timeline": "<Markdown>"}

``header`` is the entry's canonical header bytes and ``payload`` its masked JCS body (both as
UTF-8 text, byte-exact), ``salt`` the payload salt in base64, ``proof`` a c2sp tlog-proof against
a signed checkpoint. What the check establishes: every entry is the leaf its signed checkpoint
commits to, every payload matches its header's commitment, every receipt is signed and bound to an
entry of the bundle, every policy bundle hashes to the digest its decisions name, and the timeline
says exactly what the verified entries say. What it cannot establish: that the exporter left no
entry of the session out (entries of a session are not contiguous in the log); verify the whole
shard with ``log`` for that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clearance.audit.verify.errors import Finding, Severity
from clearance.formats.entry import EntryError, parse_header, payload_commitment
from clearance.formats.merkle import leaf_hash
from clearance.formats.note import ALG_COSIGNATURE_V1, VerifierKey
from clearance.formats.proof import ProofFileError, verify_inclusion_proof
from clearance.formats.receipt import ReceiptError, ReceiptSignatureError, verify_receipt

FORMAT = "clearance.incident/v1"
#: Header fields a receipt signs that its entry must repeat.
_RECEIPT_BOUND_FIELDS = ("decision_id", "request_digest", "policy", "outcome", "rule", "shadow")


@dataclass(frozen=True, slots=True)
class BundleEntry:
    """One audit entry as carried by a bundle: its exact header and masked payload bytes."""

    log: str
    index: int
    header: bytes
    salt: bytes | None
    payload: bytes | None
    proof: bytes | None

    def to_json(self) -> dict[str, Any]:
        """The bundle's JSON form of this entry."""
        return {
            "log": self.log,
            "index": self.index,
            "header": self.header.decode("utf-8"),
            "salt": None if self.salt is None else base64.b64encode(self.salt).decode(),
            "payload": None if self.payload is None else self.payload.decode("utf-8"),
            "proof": None if self.proof is None else self.proof.decode("utf-8"),
        }


def build_bundle(
    *,
    subject: Mapping[str, str | None],
    exported_at: str,
    entries: Sequence[BundleEntry],
    receipts: Sequence[tuple[str, Mapping[str, Any]]],
    policies: Sequence[tuple[str, str, bytes]],
) -> dict[str, Any]:
    """Assemble a bundle document; ``policies`` are ``(digest, source name, canonical bytes)``."""
    parsed = [(parse_header(e.header), _payload_json(e.payload)) for e in entries]
    return {
        "format": FORMAT,
        "subject": dict(subject),
        "exported_at": exported_at,
        "entries": [e.to_json() for e in entries],
        "receipts": [{"decision_id": d, "envelope": dict(env)} for d, env in receipts],
        "policies": [
            {"digest": d, "source_name": name, "canonical": data.decode("utf-8")}
            for d, name, data in policies
        ],
        "timeline": render_timeline(subject, parsed),
    }


def _payload_json(body: bytes | None) -> dict[str, Any] | None:
    if body is None:
        return None
    value = json.loads(body)
    return value if isinstance(value, dict) else None


def _cell(value: Any) -> str:
    """A Markdown table cell: no pipes or newlines from masked free text can break the table."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_timeline(
    subject: Mapping[str, str | None],
    entries: Sequence[tuple[dict[str, Any], dict[str, Any] | None]],
) -> str:
    """The human-readable timeline: one row per entry, from header and masked payload only.

    It is a pure function of the entries, so the verifier re-renders it and proves the text a
    reader sees says what the signed entries say.
    """
    what = ", ".join(f"{k} `{v}`" for k, v in subject.items() if v) or "everything"
    lines = [
        f"# Incident timeline: {what}",
        "",
        f"{len(entries)} audit entries, masked as stored.",
        "",
        "| time | log index | event | agent | tool | outcome | rule | detail |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for header, payload in entries:
        body = payload or {}
        detail = body.get("reason") or body.get("summary") or body.get("error") or ""
        if header.get("payload") is not None and payload is None:
            detail = "(payload pruned)"
        if body.get("taint"):
            detail = f"{detail} [taint: {', '.join(map(str, body['taint']))}]"
        lines.append(
            "| "
            + " | ".join(
                _cell(v)
                for v in (
                    header["time"],
                    header["index"],
                    header["kind"],
                    body.get("agent_id"),
                    header.get("tool", body.get("tool")),
                    header.get("outcome"),
                    header.get("rule", body.get("rule")),
                    detail,
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


# -- offline check --------------------------------------------------------------------------------


class _Check:
    """Collects findings while walking a bundle."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def add(self, severity: Severity, message: str, index: int | None = None) -> None:
        self.findings.append(Finding(severity, message, "bundle", index))


def _text(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string")
    return value.encode("utf-8")


def _entry_from_json(item: Any) -> BundleEntry:
    if not isinstance(item, dict):
        raise TypeError("an entry must be an object")
    index = item.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise TypeError("an entry index must be a non-negative integer")
    salt = item.get("salt")
    return BundleEntry(
        log=str(item.get("log")),
        index=index,
        header=_text(item.get("header"), "header"),
        salt=None if salt is None else base64.b64decode(_text(salt, "salt"), validate=True),
        payload=None if item.get("payload") is None else _text(item["payload"], "payload"),
        proof=None if item.get("proof") is None else _text(item["proof"], "proof"),
    )


def verify_bundle(data: bytes, keys: Sequence[VerifierKey]) -> tuple[list[Finding], int]:
    """Check an incident bundle offline; return the findings and how many entries were checked.

    Any finding of severity TAMPERED means the bundle is not the evidence the log signed.
    """
    check = _Check()
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise TypeError(f"not an incident bundle (format must be `{FORMAT}`)")
        entries = [_entry_from_json(item) for item in doc["entries"]]
        receipts = doc.get("receipts", [])
        policies = doc.get("policies", [])
        subject = doc.get("subject", {})
        if not isinstance(receipts, list) or not isinstance(policies, list):
            raise TypeError("`receipts` and `policies` must be lists")
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        check.add(Severity.UNUSABLE, f"cannot read the bundle: {exc}")
        return check.findings, 0
    log_keys = [k for k in keys if k.alg != ALG_COSIGNATURE_V1]
    parsed = _check_entries(check, entries, keys)
    headers = {(e.log, e.index): h for e, (h, _) in zip(entries, parsed, strict=True) if h}
    _check_receipts(check, receipts, headers, log_keys)
    _check_policies(check, policies, headers)
    if all(h for h, _ in parsed):
        timeline = render_timeline(subject, [(h, p) for h, p in parsed if h is not None])
        if doc.get("timeline") != timeline:
            check.add(
                Severity.TAMPERED,
                "the timeline does not say what the verified entries say: it was edited",
            )
    return check.findings, len(entries)


def _check_entries(
    check: _Check, entries: Sequence[BundleEntry], keys: Sequence[VerifierKey]
) -> list[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    parsed: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = []
    last: dict[str, tuple[int, bytes]] = {}
    for entry in entries:
        header = _check_header(check, entry, keys)
        if header is None:
            parsed.append((None, None))
            continue
        payload = _check_payload(check, entry, header)
        previous = last.get(entry.log)
        if previous is not None:
            if entry.index <= previous[0]:
                check.add(Severity.TAMPERED, "entries are out of log order", entry.index)
            elif entry.index == previous[0] + 1 and header["prev"] != "sha256:" + previous[1].hex():
                check.add(Severity.TAMPERED, "hash chain broken: `prev` is not the entry before")
        last[entry.log] = (entry.index, leaf_hash(entry.header))
        parsed.append((header, payload))
    return parsed


def _check_header(
    check: _Check, entry: BundleEntry, keys: Sequence[VerifierKey]
) -> dict[str, Any] | None:
    if entry.proof is None:
        check.add(
            Severity.INSUFFICIENT,
            "no inclusion proof (no signed checkpoint covered it at export)",
            entry.index,
        )
        try:
            return parse_header(entry.header)
        except EntryError as exc:
            check.add(Severity.TAMPERED, f"header: {exc}", entry.index)
            return None
    try:
        result = verify_inclusion_proof(entry.proof, keys, origin=entry.log)
    except ProofFileError as exc:
        check.add(Severity.TAMPERED, f"inclusion proof: {exc}", entry.index)
        return None
    if result.index != entry.index or result.header_bytes != entry.header:
        check.add(
            Severity.TAMPERED,
            "the entry's header is not the one its signed checkpoint includes",
            entry.index,
        )
        return None
    return result.header


def _check_payload(
    check: _Check, entry: BundleEntry, header: dict[str, Any]
) -> dict[str, Any] | None:
    ref = header.get("payload")
    if entry.payload is None:
        if ref is not None:
            check.add(Severity.INFO, "payload pruned; the header still verifies", entry.index)
        return None
    if ref is None or entry.salt is None:
        check.add(Severity.TAMPERED, "a payload the header does not commit to", entry.index)
        return None
    commit = "sha256:" + payload_commitment(entry.salt, entry.payload).hex()
    if not hmac.compare_digest(commit, ref["commit"]) or len(entry.payload) != ref["size"]:
        check.add(Severity.TAMPERED, "payload does not match its header commitment", entry.index)
        return None
    try:
        return _payload_json(entry.payload)
    except ValueError as exc:
        check.add(Severity.TAMPERED, f"payload is not JSON: {exc}", entry.index)
        return None


def _check_receipts(
    check: _Check,
    receipts: Sequence[Any],
    headers: Mapping[tuple[str, int], dict[str, Any]],
    keys: Sequence[VerifierKey],
) -> None:
    for item in receipts:
        envelope = item.get("envelope") if isinstance(item, dict) else None
        if not isinstance(envelope, dict):
            check.add(Severity.UNUSABLE, "a receipt without an envelope")
            continue
        try:
            statement = verify_receipt(envelope, keys)
        except ReceiptError as exc:
            severity = (
                Severity.TAMPERED if isinstance(exc, ReceiptSignatureError) else Severity.UNUSABLE
            )
            check.add(severity, f"receipt {item.get('decision_id')}: {exc}")
            continue
        header = headers.get((statement["log"], statement["index"]))
        if header is None:
            check.add(
                Severity.TAMPERED,
                f"receipt {statement['decision_id']} names entry {statement['index']}, "
                "which the bundle does not hold verified",
            )
            continue
        for name in _RECEIPT_BOUND_FIELDS:
            if header.get(name) != statement.get(name):
                check.add(
                    Severity.TAMPERED,
                    f"receipt field `{name}` is `{statement.get(name)}`, "
                    f"the entry says `{header.get(name)}`",
                    statement["index"],
                )


def _check_policies(
    check: _Check, policies: Sequence[Any], headers: Mapping[tuple[str, int], dict[str, Any]]
) -> None:
    held: set[str] = set()
    for item in policies:
        try:
            digest = item["digest"]
            data = _text(item["canonical"], "canonical")
        except (TypeError, KeyError) as exc:
            check.add(Severity.UNUSABLE, f"a policy without digest or bytes: {exc}")
            continue
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            check.add(
                Severity.TAMPERED,
                f"policy bundle {digest} hashes to {actual}: its bytes were changed",
            )
            continue
        held.add(digest)
    named = {h["policy"] for h in headers.values() if h["kind"] == "decision" and "policy" in h}
    for digest in sorted(named - held):
        check.add(Severity.INSUFFICIENT, f"policy {digest} decided but is not in the bundle")


__all__ = ["FORMAT", "BundleEntry", "build_bundle", "render_timeline", "verify_bundle"]
