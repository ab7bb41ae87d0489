"""The sidecar transport against a served gate on loopback: real uvicorn, real HTTP, real approvals.

Every adapter takes a transport; these tests drive the core guard through ``SidecarTransport`` so
that what they prove holds for any adapter given the sidecar.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from tests.integration.integrations.kit import (
    APPROVER,
    approve,
    decisions_in_log,
    operator_thread,
    outcomes_for,
)
from tests.integration.integrations.served import Sidecar, sidecar

from clearance.approvals.waiting import PendingApproval
from clearance.cli.runtime import Runtime
from clearance.client import GateClientError
from clearance.gate.clock import SystemClock
from clearance.integrations.errors import ApprovalPending, Denied, GateUnavailable
from clearance.integrations.guard import CallOptions, Guard
from clearance.integrations.mapping import SessionHandle, build_request
from clearance.integrations.sidecar import SidecarTransport, status_from_wire
from clearance.integrations.transport import authorize, decide

__all__ = ["sidecar"]


@pytest.fixture
def transport(sidecar: Sidecar) -> Iterator[SidecarTransport]:
    with SidecarTransport.connect(sidecar.base_url, api_key=sidecar.agent_key, poll_s=0.05) as t:
        yield t


def make_transfer(guard: Guard, sent: list[tuple[float, str]]) -> Any:
    @guard.tool()
    def transfer_funds(amount: float, to_account: str) -> str:
        sent.append((amount, to_account))
        return f"sent {amount} to {to_account}"

    return transfer_funds


def test_permit_runs_and_the_outcome_reaches_the_audit_log_over_http(
    transport: SidecarTransport, session: SessionHandle, runtime: Runtime
) -> None:
    sent: list[tuple[float, str]] = []
    transfer = make_transfer(Guard(transport, session), sent)
    assert transfer(10.0, "acc-1") == "sent 10.0 to acc-1"
    assert sent == [(10.0, "acc-1")]
    decision = decisions_in_log(runtime)[-1]
    assert decision["outcome"] == "PERMIT"
    outcome = outcomes_for(runtime, decision["decision_id"])
    assert [o["success"] for o in outcome] == [True]


def test_deny_refuses_and_names_the_rule(
    transport: SidecarTransport, session: SessionHandle
) -> None:
    deleted: list[str] = []

    @Guard(transport, session).tool()
    def delete_records(table: str) -> None:
        deleted.append(table)

    with pytest.raises(Denied) as caught:
        delete_records("payees")
    assert caught.value.rule == "never-delete"
    assert deleted == []


def test_approval_round_trip_waits_then_redeems_the_token_over_http(
    transport: SidecarTransport, session: SessionHandle, runtime: Runtime
) -> None:
    sent: list[tuple[float, str]] = []
    transfer = make_transfer(Guard(transport, session, approval_wait_s=10.0), sent)
    approver = operator_thread(runtime, lambda approval_id: approve(runtime, approval_id))
    assert transfer(5000.0, "acc-2") == "sent 5000.0 to acc-2"
    approver.join()
    assert sent == [(5000.0, "acc-2")]
    permit = decisions_in_log(runtime)[-1]
    assert permit["outcome"] == "PERMIT"
    assert permit["rule"].startswith("approval:")


def test_a_pending_approval_is_not_a_permit_and_the_token_is_bound_to_the_arguments(
    transport: SidecarTransport, session: SessionHandle, runtime: Runtime
) -> None:
    sent: list[tuple[float, str]] = []
    transfer = make_transfer(Guard(transport, session), sent)
    with pytest.raises(ApprovalPending) as pending:
        transfer(5000.0, "acc-2")
    approve(runtime, pending.value.approval_id)
    request = build_request(session, "transfer_funds", {"amount": 5000.0, "to_account": "acc-2"})
    assert pending.value.decision is not None
    status = transport.wait_for_approval(
        PendingApproval.from_decision(pending.value.decision, request), timeout_s=1.0
    )
    assert status.token is not None
    with pytest.raises(Denied) as swapped:
        transfer(9999.0, "acc-666", clearance=CallOptions(approval_token=status.token))
    assert swapped.value.rule == "invalid-token"
    assert sent == []


def test_a_human_denial_reaches_the_agent_with_the_reviewers_reason(
    transport: SidecarTransport, session: SessionHandle, runtime: Runtime
) -> None:
    request = build_request(session, "transfer_funds", {"amount": 5000.0, "to_account": "acc-2"})
    denier = operator_thread(
        runtime,
        lambda approval_id: runtime.approvals.deny(
            approval_id, APPROVER, SystemClock().now(), comment="not this month"
        ),
    )
    with pytest.raises(Denied) as denied:
        authorize(transport, request, wait_s=10.0)
    denier.join()
    assert denied.value.reason == "not this month"


def test_a_handle_naming_another_agent_gets_no_decision(
    transport: SidecarTransport, session: SessionHandle
) -> None:
    """The key is the identity: a request claiming another agent is answered for the key's agent,
    and that decision's digest does not match, so the adapter refuses it."""
    forged = SessionHandle(agent_id="someone-else", session_id=session.session_id)
    with pytest.raises(GateUnavailable) as caught:
        decide(transport, build_request(forged, "read_account", {"account_id": "acc-1"}))
    assert caught.value.rule == "digest-mismatch"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_sidecar_down_means_gate_unavailable_and_the_tool_is_not_called(
    session: SessionHandle,
) -> None:
    sent: list[tuple[float, str]] = []
    down = SidecarTransport.connect(f"http://127.0.0.1:{free_port()}", api_key="k", timeout=2.0)
    with down:
        transfer = make_transfer(Guard(down, session), sent)
        with pytest.raises(GateUnavailable) as caught:
            transfer(1.0, "acc-1")
    assert sent == []
    assert "could not be reached" in caught.value.reason


def test_a_wrong_key_is_gate_unavailable(sidecar: Sidecar, session: SessionHandle) -> None:
    sent: list[tuple[float, str]] = []
    with SidecarTransport.connect(sidecar.base_url, api_key="not-a-key") as wrong:
        transfer = make_transfer(Guard(wrong, session), sent)
        with pytest.raises(GateUnavailable):
            transfer(1.0, "acc-1")
    assert sent == []


def test_grants_are_listed_only_for_the_keys_own_sessions(
    transport: SidecarTransport, session: SessionHandle, runtime: Runtime
) -> None:
    assert transport.granted_tools(session.session_id) == frozenset(
        {"read_account", "transfer_funds", "delete_records", "run_code"}
    )
    other = runtime.gate.open_session(agent_id="someone-else", task="ops", environment="staging")
    assert transport.granted_tools(other.session_id) == frozenset()
    assert transport.granted_tools("ses_unknown") == frozenset()
    with pytest.raises(GateClientError) as caught:
        transport.client.grants(other.session_id)
    assert "no session" in str(caught.value)


def test_grants_show_nothing_when_the_sidecar_cannot_answer(session: SessionHandle) -> None:
    with SidecarTransport.connect(
        f"http://127.0.0.1:{free_port()}", api_key="k", timeout=2.0
    ) as down:
        assert down.granted_tools(session.session_id) == frozenset()


@pytest.mark.parametrize(
    "body",
    [
        {"approval_id": "a", "state": "granted", "expires_at": "x"},
        {"approval_id": "a", "expires_at": "x"},
        {"approval_id": "a", "state": "approved", "expires_at": "x", "token": 7},
    ],
)
def test_a_garbled_status_never_reads_as_approved(body: dict[str, Any]) -> None:
    with pytest.raises(GateClientError):
        status_from_wire(body)
