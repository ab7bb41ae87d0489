"""The core guard against a real gate: permit runs, everything else never reaches the tool."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.integration.integrations.kit import (
    APPROVER,
    DeadSidecar,
    approve,
    claim_token,
    decisions_in_log,
    operator_thread,
    outcomes_for,
)

from clearance.cli.runtime import Runtime
from clearance.errors import ConfigError
from clearance.gate.clock import SystemClock
from clearance.integrations.errors import ApprovalPending, Denied, GateUnavailable, SandboxRequired
from clearance.integrations.guard import CallOptions, Guard
from clearance.integrations.mapping import SessionHandle, approval_link
from clearance.integrations.transport import InProcessTransport
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.sandbox import Job, JobResult


class Bank:
    """The tool's side effects, so a test can prove a call never happened."""

    def __init__(self) -> None:
        self.transfers: list[tuple[float, str]] = []


@pytest.fixture
def guard(runtime: Runtime, session: SessionHandle) -> Guard:
    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals, poll_s=0.05)
    return Guard(transport, session, approval_url=approval_link("http://127.0.0.1:8787"))


def make_transfer(guard: Guard, bank: Bank) -> Any:
    @guard.tool()
    def transfer_funds(amount: float, to_account: str) -> str:
        bank.transfers.append((amount, to_account))
        return f"sent {amount} to {to_account}"

    return transfer_funds


def test_permitted_call_runs_and_its_outcome_reaches_the_audit_log(
    guard: Guard, runtime: Runtime
) -> None:
    bank = Bank()
    transfer = make_transfer(guard, bank)
    assert transfer(10.0, "acc-1") == "sent 10.0 to acc-1"
    assert bank.transfers == [(10.0, "acc-1")]
    decision = decisions_in_log(runtime)[-1]
    assert decision["outcome"] == "PERMIT"
    outcome = outcomes_for(runtime, decision["decision_id"])
    assert len(outcome) == 1
    assert outcome[0]["success"] is True
    assert outcome[0]["output_size"] == len("sent 10.0 to acc-1")


def test_denied_call_never_reaches_the_tool_and_names_the_rule(guard: Guard) -> None:
    deleted: list[str] = []

    @guard.tool()
    def delete_records(table: str) -> None:
        deleted.append(table)

    with pytest.raises(Denied) as caught:
        delete_records(table="payees")
    assert deleted == []
    assert caught.value.rule == "never-delete"
    assert "never deletes" in caught.value.reason


def test_a_default_argument_is_gated_like_an_explicit_one(guard: Guard) -> None:
    bank = Bank()

    @guard.tool("transfer_funds")
    def pay_rent(to_account: str, amount: float = 5000.0) -> None:
        bank.transfers.append((amount, to_account))

    with pytest.raises(ApprovalPending):
        pay_rent("acc-1")
    assert bank.transfers == []


def test_approval_round_trip_through_the_real_approval_service(
    guard: Guard, runtime: Runtime, session: SessionHandle
) -> None:
    bank = Bank()
    transfer = make_transfer(guard, bank)
    with pytest.raises(ApprovalPending) as pending:
        transfer(5000.0, "acc-2")
    assert bank.transfers == []
    err = pending.value
    assert err.url == f"http://127.0.0.1:8787/approvals/{err.approval_id}"
    assert err.expires_at
    assert err.decision is not None
    approve(runtime, err.approval_id)
    token = claim_token(runtime, err.decision, session)
    assert transfer(5000.0, "acc-2", clearance=CallOptions(approval_token=token)) == (
        "sent 5000.0 to acc-2"
    )
    assert bank.transfers == [(5000.0, "acc-2")]
    with pytest.raises(Denied) as replayed:
        transfer(5000.0, "acc-2", clearance=CallOptions(approval_token=token))
    assert replayed.value.rule == "invalid-token"
    assert len(bank.transfers) == 1


def test_arguments_changed_after_approval_are_refused(
    guard: Guard, runtime: Runtime, session: SessionHandle
) -> None:
    bank = Bank()
    transfer = make_transfer(guard, bank)
    with pytest.raises(ApprovalPending) as pending:
        transfer(5000.0, "acc-2")
    assert pending.value.decision is not None
    approve(runtime, pending.value.approval_id)
    token = claim_token(runtime, pending.value.decision, session)
    with pytest.raises(Denied) as swapped:
        transfer(9999.0, "acc-666", clearance=CallOptions(approval_token=token))
    assert swapped.value.rule == "invalid-token"
    assert bank.transfers == []


def test_waiting_guard_runs_the_call_once_a_human_approves(
    runtime: Runtime, session: SessionHandle
) -> None:
    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals, poll_s=0.05)
    waiting = Guard(transport, session, approval_wait_s=10.0)
    bank = Bank()
    transfer = make_transfer(waiting, bank)

    approver = operator_thread(runtime, lambda approval_id: approve(runtime, approval_id))
    assert transfer(5000.0, "acc-2") == "sent 5000.0 to acc-2"
    approver.join()
    assert bank.transfers == [(5000.0, "acc-2")]


def test_a_human_denial_while_waiting_is_a_denied_with_the_reviewers_reason(
    runtime: Runtime, session: SessionHandle
) -> None:
    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals, poll_s=0.05)
    waiting = Guard(transport, session, approval_wait_s=10.0)
    bank = Bank()
    transfer = make_transfer(waiting, bank)

    denier = operator_thread(
        runtime,
        lambda approval_id: runtime.approvals.deny(
            approval_id, APPROVER, SystemClock().now(), comment="not this month"
        ),
    )
    with pytest.raises(Denied) as denied:
        transfer(5000.0, "acc-2")
    denier.join()
    assert denied.value.reason == "not this month"
    assert bank.transfers == []


def test_gate_unreachable_means_the_tool_is_not_called(session: SessionHandle) -> None:
    dead = DeadSidecar()
    bank = Bank()
    transfer = make_transfer(Guard(dead, session), bank)
    with pytest.raises(GateUnavailable) as caught:
        transfer(1.0, "acc-1")
    assert dead.calls == 1
    assert bank.transfers == []
    assert "connection refused" in caught.value.reason


def test_silence_is_gate_unavailable(guard: Guard) -> None:
    launched: list[int] = []

    @guard.tool()
    def launch_rocket(count: int) -> None:
        launched.append(count)

    with pytest.raises(GateUnavailable) as caught:
        launch_rocket(1)
    assert caught.value.rule == "unknown-tool"
    assert launched == []


class RebindingTransport:
    """A confused sidecar: answers every request with a PERMIT it got for another request."""

    def __init__(self, inner: InProcessTransport, permit: Decision) -> None:
        self.inner = inner
        self.permit = permit

    def decide(self, request: Request) -> Decision:
        return self.permit

    def report(self, result: ActionResult, *, agent_id: str) -> None:
        self.inner.report(result, agent_id=agent_id)

    def wait_for_approval(self, pending: Any, *, timeout_s: float) -> Any:
        return self.inner.wait_for_approval(pending, timeout_s=timeout_s)


def test_a_permit_for_another_request_is_refused(runtime: Runtime, session: SessionHandle) -> None:
    inner = InProcessTransport(runtime.gate, approvals=runtime.approvals)
    small = Guard(inner, session).authorize(
        "transfer_funds", {"amount": 1.0, "to_account": "acc-1"}
    )
    assert small.outcome is Outcome.PERMIT
    bank = Bank()
    transfer = make_transfer(Guard(RebindingTransport(inner, small), session), bank)
    with pytest.raises(GateUnavailable) as caught:
        transfer(900000.0, "acc-9")
    assert caught.value.rule == "digest-mismatch"
    assert bank.transfers == []


def test_async_tools_are_gated(guard: Guard) -> None:
    bank = Bank()

    @guard.tool("transfer_funds")
    async def transfer(amount: float, to_account: str) -> str:
        bank.transfers.append((amount, to_account))
        return "ok"

    assert asyncio.run(transfer(5.0, "acc-1")) == "ok"
    with pytest.raises(ApprovalPending):
        asyncio.run(transfer(5000.0, "acc-1"))
    assert bank.transfers == [(5.0, "acc-1")]


def test_context_manager_reports_a_failing_block(guard: Guard, runtime: Runtime) -> None:
    def failing_block() -> None:
        with guard.call("transfer_funds", {"amount": 3.0, "to_account": "acc-1"}):
            raise RuntimeError("bank offline")

    with pytest.raises(RuntimeError, match="bank offline"):
        failing_block()
    decision = decisions_in_log(runtime)[-1]
    assert decision["outcome"] == "PERMIT"
    recorded = outcomes_for(runtime, decision["decision_id"])
    assert recorded[0]["success"] is False
    assert "bank offline" in recorded[0]["error"]


def test_context_manager_skips_the_block_on_deny(guard: Guard) -> None:
    ran: list[bool] = []
    with pytest.raises(Denied), guard.call("delete_records", {"table": "payees"}):
        ran.append(True)
    assert ran == []


def test_async_context_manager(guard: Guard, runtime: Runtime) -> None:
    async def use() -> str:
        async with guard.acall("read_account", {"account_id": "acc-7"}) as call:
            call.output = {"balance": 12}
        return call.decision.decision_id

    decision_id = asyncio.run(use())
    assert outcomes_for(runtime, decision_id)[0]["success"] is True


def test_sandbox_obligation_refuses_an_in_process_tool(guard: Guard) -> None:
    ran: list[str] = []

    @guard.tool()
    def run_code(code: str) -> None:
        ran.append(code)

    with pytest.raises(SandboxRequired):
        run_code("print(1)")
    assert ran == []
    with pytest.raises(SandboxRequired), guard.call("run_code", {"code": "print(1)"}):
        ran.append("block")
    assert ran == []


@pytest.mark.sandbox
def test_sandbox_obligation_runs_a_job_tool_in_the_sandbox(guard: Guard) -> None:
    @guard.tool(job=True)
    def run_code(code: str) -> Job:
        return Job(kind="python", code=code)

    result = run_code("print(6 * 7)")
    assert isinstance(result, JobResult)
    assert (result.exit_code, result.stdout) == (0, b"42\n")


def test_a_parameter_named_clearance_is_refused(guard: Guard) -> None:
    with pytest.raises(ConfigError):

        @guard.tool()
        def read_account(account_id: str, clearance: str) -> None:
            del account_id, clearance
