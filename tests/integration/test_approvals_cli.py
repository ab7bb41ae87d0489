"""``clearance approvals`` and ``clearance breakglass`` against an initialised data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.approvals_kit import APPROVAL_POLICY
from typer.testing import CliRunner

from clearance.cli.commands import approvals as approvals_cli
from clearance.cli.commands import breakglass as breakglass_cli
from clearance.cli.main import app as main_app
from clearance.cli.runtime import open_runtime
from clearance.model.decision import Outcome
from clearance.model.request import Request

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text(APPROVAL_POLICY, "utf-8")
    d = tmp_path / "data"
    result = runner.invoke(main_app, ["init", "--data-dir", str(d), "--policy", str(policy)])
    assert result.exit_code == 0, result.output
    return d


def _pending(data_dir: Path) -> str:
    rt = open_runtime(data_dir)
    try:
        s = rt.gate.open_session(agent_id="fin-1", task="payments", environment="staging")
        d = rt.gate.decide(
            Request(
                agent_id="fin-1",
                session_id=s.session_id,
                tool="pay_vendor",
                args={"amount": 12, "from_account": "chk-0001234", "vendor": "acme"},
            )
        )
    finally:
        rt.close()
    assert d.outcome is Outcome.APPROVAL
    assert d.approval_id is not None
    return d.approval_id


def test_list_show_explain_approve(data_dir: Path) -> None:
    approval_id = _pending(data_dir)
    listed = runner.invoke(
        approvals_cli.app, ["list", "--operator", "alice", "--json", "-d", str(data_dir)]
    )
    assert listed.exit_code == 0, listed.output
    (item,) = json.loads(listed.output)
    assert item["approval_id"] == approval_id
    assert item["request"]["args"]["from_account"] == "*1234"
    explained = runner.invoke(
        approvals_cli.app,
        ["explain", approval_id, "which invoice?", "--operator", "carol", "-d", str(data_dir)],
    )
    assert explained.exit_code == 0, explained.output
    approved = runner.invoke(
        approvals_cli.app,
        ["approve", approval_id, "--operator", "alice", "-m", "ok", "-d", str(data_dir)],
    )
    assert approved.exit_code == 0, approved.output
    assert "[approved]" in approved.output
    shown = runner.invoke(
        approvals_cli.app, ["show", approval_id, "--operator", "bob", "-d", str(data_dir)]
    )
    detail = json.loads(shown.output)
    assert detail["state"] == "approved"
    assert [m["kind"] for m in detail["messages"]] == ["question"]


def test_deny_by_an_operator_outside_the_group_fails(data_dir: Path) -> None:
    approval_id = _pending(data_dir)
    result = runner.invoke(
        approvals_cli.app, ["deny", approval_id, "--operator", "dora", "-d", str(data_dir)]
    )
    assert result.exit_code != 0
    assert "approver group" in str(result.exception)


def test_breakglass_open_list_close(data_dir: Path) -> None:
    opened = runner.invoke(
        breakglass_cli.app,
        [
            "open",
            "--operator",
            "alice",
            "--tool",
            "wire_abroad",
            "--tier",
            "write-broad",
            "--minutes",
            "10",
            "--reason",
            "INC-1 payroll stuck",
            "-d",
            str(data_dir),
        ],
    )
    assert opened.exit_code == 0, opened.output
    override_id = opened.output.split()[1]
    listed = runner.invoke(
        breakglass_cli.app, ["list", "--operator", "alice", "--json", "-d", str(data_dir)]
    )
    assert [r["override_id"] for r in json.loads(listed.output)] == [override_id]
    closed = runner.invoke(
        breakglass_cli.app, ["close", override_id, "--operator", "alice", "-d", str(data_dir)]
    )
    assert closed.exit_code == 0, closed.output
    listed = runner.invoke(
        breakglass_cli.app, ["list", "--operator", "alice", "--json", "-d", str(data_dir)]
    )
    assert json.loads(listed.output) == []
    refused = runner.invoke(
        breakglass_cli.app,
        [
            "open",
            "--operator",
            "bob",
            "--tool",
            "wire_abroad",
            "--tier",
            "write-broad",
            "--minutes",
            "10",
            "--reason",
            "INC-2 not allowed",
            "-d",
            str(data_dir),
        ],
    )
    assert refused.exit_code != 0
