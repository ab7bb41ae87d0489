"""`clearance audit export --format ocsf|ecs` over the audit shard a real gate wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.approvals_kit import ALICE, APPROVAL_POLICY, BOB
from typer.testing import CliRunner

from clearance.audit.export import FORMATS
from clearance.cli.commands import audit as audit_cli
from clearance.cli.main import app as main_app
from clearance.cli.runtime import open_runtime
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.model.result import ActionResult

runner = CliRunner()
AWS_KEY = "AKIAQWERTYUIOPASDFGH"
ACCOUNT = "chk-0009876543"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gate that permitted, denied, asked for approval twice (granted, refused) and failed once."""
    tmp = tmp_path_factory.mktemp("siem")
    policy = tmp / "policy.yaml"
    policy.write_text(APPROVAL_POLICY, "utf-8")
    d = tmp / "data"
    result = runner.invoke(main_app, ["init", "--data-dir", str(d), "--policy", str(policy)])
    assert result.exit_code == 0, result.output
    rt = open_runtime(d)
    try:
        gate, now = rt.gate, rt.gate.clock.now
        s = gate.open_session(
            agent_id="fin-1", task="payments", environment="staging", principal="carol@example.com"
        )

        def decide(tool: str, **args: Any) -> Any:
            return gate.decide(
                Request(agent_id="fin-1", session_id=s.session_id, tool=tool, args=args)
            )

        permitted = decide("read_account", account_id=f"note {AWS_KEY}")
        assert permitted.outcome is Outcome.PERMIT
        gate.report(
            ActionResult(decision_id=permitted.decision_id, success=False, error="bank timeout"),
            agent_id="fin-1",
        )
        assert decide("wire_abroad", amount=5).outcome is Outcome.DENY
        granted = decide("pay_vendor", amount=12, from_account=ACCOUNT, vendor=AWS_KEY)
        refused = decide("pay_vendor", amount=13, from_account=ACCOUNT, vendor="acme")
        assert granted.approval_id is not None
        assert refused.approval_id is not None
        rt.approvals.approve(granted.approval_id, ALICE, now())
        rt.approvals.deny(refused.approval_id, BOB, now())
        assert decide("no_such_tool").outcome is Outcome.SILENCE
    finally:
        rt.close()
    return d


def _export(data_dir: Path, shape: str) -> tuple[str, list[dict[str, Any]]]:
    result = runner.invoke(
        audit_cli.app, ["export", "--data-dir", str(data_dir), "--format", shape]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    return result.output, [json.loads(line) for line in lines]


def test_ocsf_lines_carry_the_control_ids_of_each_entry(data_dir: Path) -> None:
    _, records = _export(data_dir, "ocsf")
    assert all(r["class_uid"] == 6003 and r["metadata"]["version"] for r in records)
    ids = {
        (r["unmapped"]["clearance"]["kind"], r["unmapped"]["clearance"].get("outcome")): (
            r.get("action_id"),
            r.get("disposition_id"),
        )
        for r in records
    }
    assert ids[("decision", "PERMIT")] == (1, 1)
    assert ids[("decision", "DENY")] == (2, 2)
    assert ids[("decision", "APPROVAL")] == (1, 14)
    assert ids[("approval.created", None)] == (1, 14)
    assert ids[("approval.approved", "PERMIT")] == (1, 8)
    assert ids[("approval.denied", "DENY")] == (2, 25)
    assert ids[("decision", "SILENCE")] == (2, 27)
    assert ids[("approval.vote", None)] == (None, None)  # a vote is not a control decision
    outcome = next(r for r in records if r["unmapped"]["clearance"]["kind"] == "outcome")
    assert (outcome["status_id"], outcome["status_detail"]) == (2, "bank timeout")
    decisions = [r for r in records if r["unmapped"]["clearance"]["kind"] == "decision"]
    assert {r["actor"]["app_name"] for r in decisions} == {"fin-1"}
    assert {r["actor"]["user"]["uid"] for r in decisions} == {"carol@example.com"}
    assert all(r["api"]["request"]["uid"].startswith("sha256:") for r in decisions)
    assert all(r["time"] > 1_700_000_000_000 for r in records)


def test_ecs_lines_are_api_events_without_shipper_fields(data_dir: Path) -> None:
    _, docs = _export(data_dir, "ecs")
    assert all(d["event"]["kind"] == "event" and d["event"]["category"] == ["api"] for d in docs)
    assert all("agent" not in d for d in docs)
    by_outcome = {
        d["clearance"].get("outcome"): d for d in docs if d["clearance"]["kind"] == "decision"
    }
    assert by_outcome["PERMIT"]["event"]["type"] == ["allowed"]
    assert by_outcome["DENY"]["event"]["type"] == ["denied"]
    assert by_outcome["DENY"]["rule"]["id"] == "no-wires"
    assert by_outcome["DENY"]["user"]["id"] == "carol@example.com"
    assert by_outcome["DENY"]["clearance"]["agent_id"] == "fin-1"


@pytest.mark.parametrize("shape", ["ocsf", "ecs", "clearance"])
def test_a_secret_in_the_original_args_never_reaches_the_export(data_dir: Path, shape: str) -> None:
    text, records = _export(data_dir, shape)
    assert records, "the export is not empty"
    assert AWS_KEY not in text  # detected and masked before storage
    assert ACCOUNT not in text  # a field the policy hashes
    assert "redacted:aws-access-key" in text  # the masked form is what travels


def test_unknown_format_is_refused_with_the_known_ones(data_dir: Path) -> None:
    result = runner.invoke(
        audit_cli.app, ["export", "--data-dir", str(data_dir), "--format", "cef"]
    )
    assert result.exit_code != 0
    assert "ocsf" in result.output


def test_cli_choices_are_the_export_formats() -> None:
    assert {f.value for f in audit_cli.ExportFormat} == set(FORMATS)


def test_the_audit_field_set_names_who_approved_and_who_denied(data_dir: Path) -> None:
    _, records = _export(data_dir, "clearance")
    ends = {r["kind"]: r for r in records if r["kind"] in ("approval.approved", "approval.denied")}
    assert ends["approval.approved"]["approver"] == ALICE.id
    assert ends["approval.denied"]["approver"] == BOB.id
