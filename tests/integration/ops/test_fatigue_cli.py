"""``clearance approvals fatigue`` on a real history: a rubber-stamper is flagged, a careful one not.

The history is made the way a deployment makes it: the gate asks for approvals, two operators vote
through the approval service, the agent redeems one token and reports that the call failed. The
command reads the approvals from the store and the failure from the audit log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from tests.integration.integrations.kit import AGENT, POLICY, init_data_dir
from typer.testing import CliRunner

from clearance.approvals.rules import Operator
from clearance.cli.main import app
from clearance.cli.runtime import open_runtime
from clearance.gate.clock import FixedClock, SystemClock
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.model.result import ActionResult

STAMP, CAREFUL = Operator("op-stamp"), Operator("op-careful")
ROUNDS = 12


def _history(data_dir: Path) -> None:
    clock = FixedClock(SystemClock().now())
    rt = open_runtime(data_dir, clock=clock)
    try:
        session = rt.gate.open_session(agent_id=AGENT, task="ops", environment="staging")
        for i in range(2 * ROUNDS):
            request = Request(
                agent_id=AGENT,
                session_id=session.session_id,
                tool="transfer_funds",
                args={"amount": 2000.0 + i, "to_account": f"acc-{i}"},
            )
            decision = rt.gate.decide(request)
            assert decision.outcome is Outcome.APPROVAL
            assert decision.approval_id
            if i < ROUNDS:  # the rubber-stamper: every request approved one second later
                clock.advance(1)
                rt.approvals.approve(decision.approval_id, STAMP, clock.now())
            else:  # the careful one: reads for three minutes, denies one request in four
                clock.advance(180)
                vote = rt.approvals.deny if i % 4 == 0 else rt.approvals.approve
                vote(decision.approval_id, CAREFUL, clock.now())
            if i == 0:
                status = rt.approvals.status(
                    decision.approval_id,
                    intent=decision.intent or "",
                    agent_id=AGENT,
                    session_id=session.session_id,
                    now=clock.now(),
                )
                redeemed = rt.gate.decide(
                    request.model_copy(update={"approval_token": status.token})
                )
                assert redeemed.outcome is Outcome.PERMIT
                rt.gate.report(
                    ActionResult(decision_id=redeemed.decision_id, success=False, error="bounced"),
                    agent_id=AGENT,
                )
    finally:
        rt.close()


@pytest.fixture
def history(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    init_data_dir(
        data_dir, POLICY.replace("finance: [op-alice]", "finance: [op-stamp, op-careful]")
    )
    _history(data_dir)
    return data_dir


def test_rubber_stamper_is_flagged_with_the_failure_that_followed(history: Path) -> None:
    result = CliRunner().invoke(
        app, ["approvals", "fatigue", "--format", "json", "-d", str(history)]
    )
    assert result.exit_code == 1, result.output
    body = json.loads(result.output)
    approvers = {a["key"]: a for a in body["approvers"]}
    assert body["flagged"] == ["op-stamp"]
    assert approvers["op-stamp"]["fast"] == ROUNDS
    assert approvers["op-stamp"]["failed_after_approval"] == 1
    assert approvers["op-careful"]["flags"] == []
    assert approvers["op-careful"]["approval_rate"] == 0.75
    assert approvers["op-careful"]["median_seconds"] >= 180


def test_the_markdown_report_and_the_alert(history: Path, caplog: pytest.LogCaptureFixture) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["alerts", "--log", "-d", str(history)]).exit_code == 0
    with caplog.at_level(logging.WARNING, logger="clearance.alerts"):
        result = runner.invoke(app, ["approvals", "fatigue", "--alert", "-d", str(history)])
    assert result.exit_code == 1, result.output
    assert "| op-stamp | 12 | 100% |" in result.output
    alerts = [r.getMessage() for r in caplog.records if r.name == "clearance.alerts"]
    assert len(alerts) == 1
    assert alerts[0].startswith("[WARNING] approval fatigue: op-stamp: fast: 12 of 12 votes")


def test_a_quiet_period_flags_nobody(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    init_data_dir(data_dir)
    result = CliRunner().invoke(app, ["approvals", "fatigue", "-d", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "No votes in the period." in result.output


def test_a_serving_gate_alerts_on_the_rubber_stamper_once_per_round(history: Path) -> None:
    """The watchdog of ``clearance serve`` runs the analysis at most once an hour."""
    from clearance.cli.commands.serve import watch
    from clearance.control.alerts import Alert, CallbackSink
    from clearance.server.settings import load_settings

    clock = FixedClock(SystemClock().now())
    rt = open_runtime(history, clock=clock)
    alerts: list[Alert] = []
    rt.control.alerts.sinks = (CallbackSink(alerts.append),)
    dog = watch(rt, load_settings(data_dir=history), None, interval_s=3600)
    try:
        dog.run_once()
        dog.run_once()  # not due again yet: no second analysis
        rt.control.alerts.flush()
        fatigue = [a for a in alerts if a.key.startswith("approval-fatigue:")]
        assert [a.key for a in fatigue] == ["approval-fatigue:op-stamp"]
        clock.advance(3601)
        dog.run_once()
        rt.control.alerts.flush()
    finally:
        dog.stop()
        rt.close()
    # due again after an hour: a standing problem is reported once an hour, not every round
    assert sum(a.key == "approval-fatigue:op-stamp" for a in alerts) == 2
