"""Receipts with inclusion proofs, and the audit verification status, over real HTTP.

The proof is checked with the standalone verifier (``clearance.audit.verify``) and the deployment's
public key only, as an auditor who trusts nothing of the gate would.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from clearance.audit.verify.errors import ExitCode
from clearance.audit.verify.verify import verify_receipt_bundle
from clearance.cli.runtime import Runtime
from clearance.formats.note import VerifierKey

from .conftest import World  # noqa: TID252 - sibling fixture module


def _decide(world: World, session_id: str, account: str = "acc-1") -> str:
    with world.agent() as client:
        response = client.post(
            "/v1/decide",
            json={
                "session_id": session_id,
                "tool": "read_account",
                "args": {"account_id": account},
            },
        )
    assert response.status_code == 200, response.text
    return str(response.json()["decision_id"])


def _public_key(runtime: Runtime) -> list[VerifierKey]:
    return [VerifierKey.parse((runtime.data_dir / "keys" / "audit.pub").read_text().strip())]


def test_receipt_and_proof_verify_with_the_public_key_alone(
    full_world: World, runtime: Runtime
) -> None:
    session_id = full_world.open_session(task="balance_check")
    decision_id = _decide(full_world, session_id)
    with full_world.agent() as client:
        response = client.get(f"/v1/receipts/{decision_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision_id"] == decision_id
    receipt = json.dumps(body["receipt"]).encode()
    report = verify_receipt_bundle(receipt, _public_key(runtime), proof=body["proof"].encode())
    assert report.exit_code is ExitCode.VERIFIED, report.findings
    assert any("included in checkpoint" in f.message for f in report.findings)


def test_the_verifier_command_accepts_the_served_evidence(
    full_world: World, runtime: Runtime, tmp_path: Path
) -> None:
    session_id = full_world.open_session(task="balance_check")
    decision_id = _decide(full_world, session_id)
    with full_world.agent() as client:
        body = client.get(f"/v1/receipts/{decision_id}").json()
    (tmp_path / "receipt.json").write_text(json.dumps(body["receipt"]))
    (tmp_path / "proof.txt").write_text(body["proof"])
    command = [
        sys.executable,
        "-m",
        "clearance.audit.verify",
        "receipt",
        str(tmp_path / "receipt.json"),
        "--keys",
        str(runtime.data_dir / "keys" / "audit.pub"),
        "--proof",
        str(tmp_path / "proof.txt"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    (tmp_path / "proof.txt").write_text(body["proof"].replace("A", "B", 1))
    tampered = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert tampered.returncode != 0


def test_a_proof_bound_to_another_receipt_is_caught(full_world: World, runtime: Runtime) -> None:
    session_id = full_world.open_session(task="balance_check")
    first, second = _decide(full_world, session_id), _decide(full_world, session_id, "acc-2")
    with full_world.agent() as client:
        a = client.get(f"/v1/receipts/{first}").json()
        b = client.get(f"/v1/receipts/{second}").json()
    swapped = verify_receipt_bundle(
        json.dumps(a["receipt"]).encode(), _public_key(runtime), proof=b["proof"].encode()
    )
    assert swapped.tampered


def test_receipts_are_only_for_the_agent_that_was_decided(full_world: World) -> None:
    session_id = full_world.open_session(task="balance_check")
    decision_id = _decide(full_world, session_id)
    with full_world.agent(full_world.staging_agent_key) as other:
        assert other.get(f"/v1/receipts/{decision_id}").status_code == 404
    operator, _ = full_world.operator("ana")
    assert operator.get(f"/v1/receipts/{decision_id}").status_code == 401


def test_audit_status_verifies_and_then_catches_a_rewritten_leaf(
    full_world: World, runtime: Runtime
) -> None:
    session_id = full_world.open_session(task="balance_check")
    _decide(full_world, session_id)
    operator, _ = full_world.operator("vic")
    first = operator.get("/v1/ops/audit/status")
    assert first.status_code == 200, first.text
    detail = first.json()["detail"]
    assert detail["verified"] is True, detail
    assert detail["checkpoint_size"] >= 2
    _decide(full_world, session_id, "acc-2")
    again = operator.get("/v1/ops/audit/status").json()["detail"]
    assert again["verified"] is True
    assert any("extends the size" in c for c in again["checks"])

    # Rewrite an early leaf hash in the shard, as an attacker with database access would.
    runtime.audit_log.checkpoint_now()
    with sqlite3.connect(runtime.data_dir / "audit.db") as db:
        db.execute("UPDATE audit_entry SET leaf_hash = ? WHERE idx = 1", (b"\x00" * 32,))
    _decide(full_world, session_id, "acc-3")
    broken = operator.get("/v1/ops/audit/status").json()["detail"]
    assert broken["verified"] is False
    assert broken["problem"]


def test_agent_key_cannot_read_audit_status(full_world: World) -> None:
    with full_world.agent() as client:
        response = client.get("/v1/ops/audit/status")
    assert response.status_code == 403


def test_dashboard_audit_page_shows_the_verification_result(full_world: World) -> None:
    session_id = full_world.open_session(task="balance_check")
    _decide(full_world, session_id)
    operator, _ = full_world.operator("vic")
    page = operator.get("/audit")
    assert page.status_code == 200
    assert "<strong>Verified</strong> with the deployment" in page.text
    assert "is included under the signed root" in page.text
