"""Receipts: the worked example, DSSE details and the ways a receipt can be forged."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from clearance.audit.sign import AuditKey
from clearance.formats.note import VerifierKey
from clearance.formats.receipt import (
    PAYLOAD_TYPE,
    ReceiptError,
    build_statement,
    pae,
    verify_receipt,
)

EXAMPLE = Path(__file__).parents[2] / "vectors" / "clearance" / "worked-example"
DEPLOYMENT = VerifierKey.parse(
    "clearance.example/audit+4e6f271a+AbiPvv2TdDXnrB+/lgwcqLt4Qtv4W7NbyveB4DhgwFxs"
)
EXAMPLE_KEY = AuditKey(
    "clearance.example/audit", hashlib.sha256(b"clearance example audit key (TEST ONLY)").digest()
)


def _statement(**over: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "log": "clearance.example/audit/gate-a/2026",
        "index": 1,
        "leaf": "sha256:19eb766b9e83efe983a0dc9008c152765124e2e4240c878abda012c6575330e1",
        "decision_id": "01JEXAMPLE0000000000000001",
        "request_digest": "sha256:81415dea33b426d24064aa34077151531be56750bc6073adac1e184c3cad5b31",
        "policy": "sha256:18f4733f4c5d67ca5063252b3e809de9570228464b4c6f6fc2923e6239533944",
        "outcome": "PERMIT",
        "rule": "example-rule",
        "shadow": False,
        "time": "2026-03-01T12:00:01.000000Z",
    }
    fields.update(over)
    return build_statement(**fields)  # type: ignore[arg-type]


def test_worked_example_receipt_is_reproduced_byte_for_byte() -> None:
    data = (EXAMPLE / "receipt-1.json").read_bytes()
    assert len(data) == 873
    env = EXAMPLE_KEY.sign_receipt(_statement())
    assert json.dumps(env, separators=(",", ":")).encode() == data
    assert env["signatures"][0]["sig"].startswith("sS+2XDADzvJT")
    assert verify_receipt(data, [DEPLOYMENT]) == _statement()


def test_dsse_pae_vector() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_url_safe_base64_is_accepted() -> None:
    env = json.loads((EXAMPLE / "receipt-1.json").read_bytes())
    env["payload"] = base64.urlsafe_b64encode(base64.b64decode(env["payload"])).decode().rstrip("=")
    env["signatures"][0]["sig"] = base64.urlsafe_b64encode(
        base64.b64decode(env["signatures"][0]["sig"])
    ).decode()
    assert verify_receipt(env, [DEPLOYMENT])["index"] == 1


def test_signature_by_other_key_rejected() -> None:
    env = AuditKey("clearance.example/audit", bytes(32)).sign_receipt(_statement())
    with pytest.raises(ReceiptError, match="no receipt signature verifies"):
        verify_receipt(env, [DEPLOYMENT])


def test_non_canonical_payload_rejected_even_when_signed() -> None:
    payload = json.dumps(_statement(), indent=1).encode()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = hashlib.sha256(b"clearance example audit key (TEST ONLY)").digest()
    sig = Ed25519PrivateKey.from_private_bytes(seed).sign(pae(PAYLOAD_TYPE, payload))
    env = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "x", "sig": base64.b64encode(sig).decode()}],
    }
    with pytest.raises(ReceiptError, match="canonical"):
        verify_receipt(env, [DEPLOYMENT])


def test_wrong_payload_type_rejected() -> None:
    env = json.loads((EXAMPLE / "receipt-1.json").read_bytes())
    env["payloadType"] = "application/json"
    with pytest.raises(ReceiptError, match="payloadType"):
        verify_receipt(env, [DEPLOYMENT])


def test_approval_statement_needs_approval_fields() -> None:
    with pytest.raises(ReceiptError, match="approval_id"):
        _statement(outcome="APPROVAL")
    st = _statement(
        outcome="APPROVAL", approval_id="01JAPPROVAL", expires="2026-03-01T13:00:00.000000Z"
    )
    assert (
        verify_receipt(EXAMPLE_KEY.sign_receipt(st), [DEPLOYMENT])["approval_id"] == "01JAPPROVAL"
    )


@pytest.mark.parametrize(
    "over",
    [{"outcome": "MAYBE"}, {"index": -1}, {"leaf": "sha256:00"}, {"shadow": "no"}, {"time": "now"}],
)
def test_statement_field_rules(over: dict[str, object]) -> None:
    with pytest.raises(ReceiptError):
        _statement(**over)
