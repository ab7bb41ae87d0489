"""Attack: a receipt re-bound to another request, or forged with another key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from clearance.audit.log import AuditLog
from clearance.audit.sign import AuditKey
from clearance.audit.testing import DEPLOYMENT, ORIGIN, StepClock
from clearance.audit.verify.verify import main
from clearance.formats.canonical import request_digest
from clearance.formats.receipt import build_statement
from clearance.store.audit_sqlite import SQLiteAuditStorage

KEY = AuditKey(DEPLOYMENT, bytes(32))
REQUEST = {
    "agent_id": "agent-7",
    "session_id": "ses_x",
    "tool": "payments.refund",
    "action": "call",
    "args": {"amount": 10},
    "target": None,
}


def _issue(tmp_path: Path, key: AuditKey, request: dict[str, object]) -> tuple[Path, Path]:
    log = AuditLog(
        SQLiteAuditStorage(tmp_path / "clearance.db"),
        KEY,
        ORIGIN,
        StepClock(datetime(2026, 3, 1, tzinfo=UTC)),
    )
    digest = request_digest(**request)  # type: ignore[arg-type]
    fields = {
        "decision_id": "01JDECISION0000000000000001",
        "request_digest": digest,
        "policy": "sha256:" + "11" * 32,
        "outcome": "PERMIT",
        "rule": "r",
        "shadow": False,
    }
    entry = log.append("decision", fields, dict(request))
    statement = build_statement(
        log=entry.log,
        index=entry.index,
        leaf=entry.leaf_hash,
        time=entry.time,
        decision_id=fields["decision_id"],
        request_digest=digest,
        policy=fields["policy"],
        outcome="PERMIT",
        rule="r",
        shadow=False,
    )
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps(key.sign_receipt(statement)))
    proof = tmp_path / "proof.tlog-proof"
    proof.write_text(log.inclusion_proof(entry.index))
    log.close()
    return receipt, proof


def test_genuine_receipt_with_proof_and_request(tmp_path: Path) -> None:
    receipt, proof = _issue(tmp_path, KEY, REQUEST)
    request = tmp_path / "request.json"
    request.write_text(json.dumps(REQUEST))
    assert (
        main(
            [
                "receipt",
                str(receipt),
                "--proof",
                str(proof),
                "--request",
                str(request),
                "--key",
                KEY.vkey,
            ]
        )
        == 0
    )


def test_receipt_rebound_to_another_request(tmp_path: Path) -> None:
    receipt, _ = _issue(tmp_path, KEY, REQUEST)
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps(REQUEST | {"args": {"amount": 10000}}))
    assert main(["receipt", str(receipt), "--request", str(swapped), "--key", KEY.vkey]) == 1


def test_receipt_rebound_to_another_entry(tmp_path: Path) -> None:
    receipt, _ = _issue(tmp_path / "a", KEY, REQUEST)
    _, other_proof = _issue(tmp_path / "b", KEY, REQUEST | {"session_id": "ses_other"})
    assert main(["receipt", str(receipt), "--proof", str(other_proof), "--key", KEY.vkey]) == 1


def test_receipt_forged_with_another_key(tmp_path: Path) -> None:
    receipt, _ = _issue(tmp_path, AuditKey(DEPLOYMENT, bytes(range(32))), REQUEST)
    assert main(["receipt", str(receipt), "--key", KEY.vkey]) == 1


def test_receipt_with_edited_statement(tmp_path: Path) -> None:
    receipt, _ = _issue(tmp_path, KEY, REQUEST)
    env = json.loads(receipt.read_text())
    import base64

    statement = base64.b64decode(env["payload"]).replace(b"PERMIT", b"DENY")
    env["payload"] = base64.b64encode(statement).decode()
    receipt.write_text(json.dumps(env))
    assert main(["receipt", str(receipt), "--key", KEY.vkey]) == 1
