"""OCSF and ECS mappings of export events: ids per entry kind, and the field names SIEMs index."""

from __future__ import annotations

from typing import Any

import pytest

from clearance.audit.siem import OCSF_VERSION, to_ecs, to_ocsf

V = "9.9.9"
DIGEST = "sha256:" + "ab" * 32
POLICY = "sha256:" + "cd" * 32


def _event(kind: str = "decision", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "timestamp": "2026-03-01T12:00:00.250000Z",
        "kind": kind,
        "log": "d/node/2026",
        "index": 7,
        "leaf_hash": "sha256:" + "11" * 32,
        "id": None,
        "payload_pruned": False,
    }
    if kind == "decision":
        base.update(
            id="01JDECISION",
            decision_id="01JDECISION",
            agent_id="fin-1",
            session_id="ses_1",
            principal="carol@example.com",
            tool="pay_vendor",
            action="call",
            risk_tier="write-limited",
            rule="vendor-payments",
            reason="vendor payments need a human",
            policy=POLICY,
            request_digest=DIGEST,
            target="acct-9",
            tool_input={"amount": 12, "note": None},
            shadow=False,
        )
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("outcome", "action_id", "disposition_id", "ecs_type", "ecs_outcome"),
    [
        ("PERMIT", 1, 1, "allowed", "success"),
        ("DENY", 2, 2, "denied", "failure"),
        ("APPROVAL", 1, 14, "info", "unknown"),
        ("SILENCE", 2, 27, "denied", "failure"),
    ],
)
def test_each_decision_outcome_maps_to_its_control_ids(
    outcome: str, action_id: int, disposition_id: int, ecs_type: str, ecs_outcome: str
) -> None:
    event = _event(outcome=outcome)
    ocsf = to_ocsf(event, product_version=V)
    assert (ocsf["action_id"], ocsf["disposition_id"]) == (action_id, disposition_id)
    assert ocsf["authorizations"] == [
        {"decision": outcome, "policy": {"uid": POLICY, "name": "vendor-payments"}}
    ]
    ecs = to_ecs(event, product_version=V)
    assert ecs["event"]["type"] == [ecs_type]
    assert ecs["event"]["outcome"] == ecs_outcome


@pytest.mark.parametrize(
    ("kind", "outcome", "action_id", "disposition_id", "ecs_type"),
    [
        ("approval.created", None, 1, 14, "creation"),
        ("approval.approved", "PERMIT", 1, 8, "allowed"),
        ("approval.denied", "DENY", 2, 25, "denied"),
        ("approval.expired", "DENY", 2, 2, "denied"),
        ("approval.token-rejected", None, 2, 26, "denied"),
    ],
)
def test_approval_life_maps_to_delayed_approved_rejected(
    kind: str, outcome: str | None, action_id: int, disposition_id: int, ecs_type: str
) -> None:
    event = _event(kind, outcome=outcome, approval_id="apr_1", agent_id="fin-1", rule="r")
    ocsf = to_ocsf(event, product_version=V)
    assert (ocsf["action_id"], ocsf["disposition_id"]) == (action_id, disposition_id)
    assert ocsf["metadata"]["correlation_uid"] == "apr_1"
    assert ocsf["activity_id"] == 99
    assert ocsf["type_uid"] == 600399
    assert to_ecs(event, product_version=V)["event"]["type"] == [ecs_type]


def test_shadow_decision_is_reported_as_allowed_with_the_would_be_outcome() -> None:
    event = _event(outcome="DENY", shadow=True)
    ocsf = to_ocsf(event, product_version=V)
    assert (ocsf["action_id"], ocsf["disposition_id"]) == (1, 1)
    assert ocsf["authorizations"][0]["decision"] == "DENY"
    assert ocsf["unmapped"]["clearance"]["shadow"] is True


def test_entries_without_a_control_decision_claim_no_disposition() -> None:
    for kind in ("genesis", "approval.vote", "policy.activated", "prune"):
        ocsf = to_ocsf(_event(kind), product_version=V)
        assert "action_id" not in ocsf
        assert "disposition_id" not in ocsf
        assert ocsf["activity_name"] == kind
        assert ocsf["metadata"]["uid"] == "d/node/2026#7"
    assert to_ecs(_event("policy.activated"), product_version=V)["event"]["type"] == ["change"]
    assert to_ecs(_event("genesis"), product_version=V)["event"]["type"] == ["info"]


def test_outcome_entry_carries_execution_status() -> None:
    ok = to_ocsf(_event("outcome", decision_id="01JD", success=True), product_version=V)
    assert (ok["status_id"], ok["status"]) == (1, "Success")
    assert ok["metadata"]["correlation_uid"] == "01JD"
    failed = _event("outcome", decision_id="01JD", success=False, error="timeout")
    ocsf = to_ocsf(failed, product_version=V)
    assert (ocsf["status_id"], ocsf["status_detail"]) == (2, "timeout")
    ecs = to_ecs(failed, product_version=V)
    assert (ecs["event"]["type"], ecs["event"]["outcome"]) == (["end"], "failure")


def test_kill_switch_and_break_glass_are_high_severity() -> None:
    for kind in ("killswitch", "breakglass"):
        assert to_ocsf(_event(kind), product_version=V)["severity_id"] == 4
        assert to_ecs(_event(kind), product_version=V)["event"]["severity"] == 4
    assert to_ocsf(_event(outcome="SILENCE"), product_version=V)["severity_id"] == 3
    assert to_ocsf(_event(outcome="PERMIT"), product_version=V)["severity_id"] == 1


def test_activity_follows_the_action_verb_then_the_tier() -> None:
    assert to_ocsf(_event(outcome="PERMIT", action="delete"), product_version=V)["activity_id"] == 4
    read = _event(outcome="PERMIT", risk_tier="read-only")
    assert to_ocsf(read, product_version=V)["activity_id"] == 2
    assert to_ocsf(_event(outcome="PERMIT"), product_version=V)["type_uid"] == 600303


def test_ocsf_golden_field_names() -> None:
    """The attribute names OCSF 1.6 API Activity and the Security Control profile define."""
    ocsf = to_ocsf(_event(outcome="DENY"), product_version=V)
    assert ocsf == {
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": 3,
        "activity_name": "Update",
        "type_uid": 600303,
        "time": 1772366400250,
        "severity_id": 1,
        "severity": "Informational",
        "message": "vendor payments need a human",
        "metadata": {
            "version": OCSF_VERSION,
            "uid": "01JDECISION",
            "correlation_uid": "ses_1",
            "log_name": "d/node/2026",
            "sequence": 7,
            "profiles": ["security_control"],
            "product": {"name": "clearance", "vendor_name": "clearance", "version": V},
        },
        "actor": {
            "app_name": "fin-1",
            "app_uid": "fin-1",
            "user": {"uid": "carol@example.com", "name": "carol@example.com"},
            "session": {"uid": "ses_1"},
        },
        "src_endpoint": {"name": "fin-1"},
        "api": {
            "operation": "pay_vendor",
            "service": {"name": "clearance"},
            "request": {"uid": DIGEST, "data": {"amount": 12, "note": None}},
        },
        "resources": [{"name": "acct-9", "type": "target", "uid": "acct-9"}],
        "action_id": 2,
        "action": "Denied",
        "disposition_id": 2,
        "disposition": "Blocked",
        "policy": {"uid": POLICY, "name": "vendor-payments", "version": POLICY},
        "authorizations": [
            {"decision": "DENY", "policy": {"uid": POLICY, "name": "vendor-payments"}}
        ],
        "unmapped": {
            "clearance": {
                "kind": "decision",
                "log": "d/node/2026",
                "index": 7,
                "leaf_hash": "sha256:" + "11" * 32,
                "decision_id": "01JDECISION",
                "outcome": "DENY",
                "shadow": False,
                "tier": "write-limited",
                "payload_pruned": False,
            }
        },
    }


def test_ecs_golden_field_names_and_no_shipper_agent_fields() -> None:
    ecs = to_ecs(_event(outcome="PERMIT"), product_version=V)
    assert set(ecs) == {
        "@timestamp",
        "ecs",
        "message",
        "event",
        "rule",
        "user",
        "service",
        "related",
        "clearance",
    }
    assert "agent" not in ecs  # ECS agent.* is the log shipper, never the AI agent
    assert ecs["@timestamp"] == "2026-03-01T12:00:00.250000Z"
    assert ecs["event"] == {
        "kind": "event",
        "category": ["api"],
        "type": ["allowed"],
        "action": "pay_vendor",
        "outcome": "success",
        "id": "01JDECISION",
        "reason": "vendor payments need a human",
        "severity": 1,
        "sequence": 7,
        "dataset": "clearance.audit",
        "module": "clearance",
        "provider": "d/node/2026",
    }
    assert ecs["rule"] == {"id": "vendor-payments", "name": "vendor-payments", "version": POLICY}
    assert ecs["user"] == {"id": "carol@example.com", "name": "carol@example.com"}
    assert ecs["service"] == {"name": "clearance", "version": V}
    assert ecs["related"]["hash"] == [DIGEST, "sha256:" + "11" * 32]
    assert ecs["clearance"]["agent_id"] == "fin-1"
    assert ecs["clearance"]["tool_input"] == {"amount": 12, "note": None}
