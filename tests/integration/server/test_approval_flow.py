"""APPROVAL over HTTP: 202 with an approval id, operator approves, the token redeems once."""

from __future__ import annotations

from clearance.gate.clock import FixedClock
from clearance.policy import load_policy

from .conftest import World  # noqa: TID252 - sibling fixture module


def big_transfer(session_id: str) -> dict[str, object]:
    return {
        "session_id": session_id,
        "tool": "transfer_funds",
        "args": {"amount": 5000.0, "to_account": "acc-1"},
        "reasoning": "the invoice is due today",
    }


def ask(world: World, call: dict[str, object]) -> dict[str, object]:
    with world.agent() as client:
        response = client.post("/v1/decide", json=call)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["outcome"] == "APPROVAL"
    assert body["approval_id"]
    assert body["intent"]
    return body


def claim(world: World, decision: dict[str, object], session_id: str) -> dict[str, object]:
    with world.agent() as client:
        response = client.post(
            f"/v1/approvals/{decision['approval_id']}/status",
            json={"session_id": session_id, "intent": decision["intent"]},
        )
    assert response.status_code == 200, response.text
    return response.json()


def test_approve_then_the_token_redeems_exactly_once(full_world: World) -> None:
    session_id = full_world.open_session()
    call = big_transfer(session_id)
    decision = ask(full_world, call)
    assert claim(full_world, decision, session_id)["state"] == "pending"

    operator, csrf = full_world.operator("ana")
    listed = operator.get("/v1/ops/approvals").json()
    assert [a["approval_id"] for a in listed] == [decision["approval_id"]]
    assert listed[0]["context"]["reasoning"] == "the invoice is due today"
    voted = operator.post(
        f"/v1/ops/approvals/{decision['approval_id']}/approve",
        json={},
        headers={"X-CSRF-Token": csrf},
    )
    assert voted.status_code == 200, voted.text
    assert voted.json()["state"] == "approved"

    status = claim(full_world, decision, session_id)
    token = status["token"]
    assert token
    with full_world.agent() as client:
        first = client.post("/v1/tokens/redeem", json={**call, "approval_token": token})
        again = client.post("/v1/tokens/redeem", json={**call, "approval_token": token})
    assert first.status_code == 200
    assert first.json()["outcome"] == "PERMIT"
    assert again.status_code == 403


def test_token_does_not_cover_changed_arguments(full_world: World) -> None:
    session_id = full_world.open_session()
    call = big_transfer(session_id)
    decision = ask(full_world, call)
    operator, csrf = full_world.operator("ana")
    operator.post(
        f"/v1/ops/approvals/{decision['approval_id']}/approve",
        json={},
        headers={"X-CSRF-Token": csrf},
    )
    token = claim(full_world, decision, session_id)["token"]
    swapped = {**call, "args": {"amount": 900000.0, "to_account": "acc-1"}, "approval_token": token}
    with full_world.agent() as client:
        response = client.post("/v1/tokens/redeem", json=swapped)
    assert response.status_code == 403
    assert response.json()["outcome"] == "DENY"


def test_write_without_csrf_token_is_refused_and_changes_nothing(full_world: World) -> None:
    session_id = full_world.open_session()
    decision = ask(full_world, big_transfer(session_id))
    operator, _ = full_world.operator("ana")
    refused = operator.post(f"/v1/ops/approvals/{decision['approval_id']}/approve", json={})
    wrong = operator.post(
        f"/v1/ops/approvals/{decision['approval_id']}/approve",
        json={},
        headers={"X-CSRF-Token": "guess"},
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    assert wrong.status_code == 403
    assert claim(full_world, decision, session_id)["state"] == "pending"


def test_viewer_cannot_approve(full_world: World) -> None:
    session_id = full_world.open_session()
    decision = ask(full_world, big_transfer(session_id))
    viewer, csrf = full_world.operator("vic")
    response = viewer.post(
        f"/v1/ops/approvals/{decision['approval_id']}/approve",
        json={},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


CRITICAL_POLICY = """\
version: "1"
name: critical
tools:
  delete_records:
    tier: destructive
    params:
      table: {type: string, required: true}
tasks:
  cleanup: {tools: [delete_records]}
environments:
  staging: {}
  production: {}
rules:
  - id: deletes-need-people
    tools: [delete_records]
    outcome: approval
    reason: deleting needs two people
"""


def test_critical_action_needs_two_distinct_approvers(full_world: World) -> None:
    full_world.gate.activate(load_policy(CRITICAL_POLICY, source_name="critical.yaml"), by="test")
    session_id = full_world.open_session(task="cleanup")
    call = {"session_id": session_id, "tool": "delete_records", "args": {"table": "t"}}
    decision = ask(full_world, call)
    path = f"/v1/ops/approvals/{decision['approval_id']}/approve"
    ana, ana_csrf = full_world.operator("ana")
    first = ana.post(path, json={}, headers={"X-CSRF-Token": ana_csrf})
    assert first.json()["state"] == "pending"
    assert first.json()["required"] == 2
    twice = ana.post(path, json={}, headers={"X-CSRF-Token": ana_csrf})
    assert twice.status_code == 403
    assert claim(full_world, decision, session_id)["token"] is None
    bo, bo_csrf = full_world.operator("bo")
    second = bo.post(path, json={}, headers={"X-CSRF-Token": bo_csrf})
    assert second.json()["state"] == "approved"
    token = claim(full_world, decision, session_id)["token"]
    with full_world.agent() as client:
        redeemed = client.post("/v1/tokens/redeem", json={**call, "approval_token": token})
    assert redeemed.json()["outcome"] == "PERMIT"


def test_deny_reason_reaches_the_agent(full_world: World) -> None:
    session_id = full_world.open_session()
    decision = ask(full_world, big_transfer(session_id))
    operator, csrf = full_world.operator("ana")
    operator.post(
        f"/v1/ops/approvals/{decision['approval_id']}/deny",
        json={"comment": "pay it from the other account"},
        headers={"X-CSRF-Token": csrf},
    )
    status = claim(full_world, decision, session_id)
    assert status["state"] == "denied"
    assert status["reason"] == "pay it from the other account"
    assert status["token"] is None


def test_expired_approval_leaves_the_list_and_is_denied(
    full_world: World, clock: FixedClock
) -> None:
    session_id = full_world.open_session()
    decision = ask(full_world, big_transfer(session_id))
    clock.advance(16 * 60)
    operator, csrf = full_world.operator("ana")
    assert operator.get("/v1/ops/approvals").json() == []
    late = operator.post(
        f"/v1/ops/approvals/{decision['approval_id']}/approve",
        json={},
        headers={"X-CSRF-Token": csrf},
    )
    assert late.status_code >= 400
    assert claim(full_world, decision, session_id)["state"] == "expired"


def test_kill_switch_halts_an_agent_over_http(full_world: World) -> None:
    session_id = full_world.open_session()
    read = {"session_id": session_id, "tool": "read_account", "args": {"account_id": "acc-1"}}
    admin, csrf = full_world.operator("root")
    halted = admin.post(
        "/v1/ops/control/kill-switch",
        json={"engaged": True, "agent_id": "payments-bot", "reason": "refund loop"},
        headers={"X-CSRF-Token": csrf},
    )
    assert halted.status_code == 200, halted.text
    with full_world.agent() as client:
        response = client.post("/v1/decide", json=read)
    assert response.status_code == 403
    assert response.json()["rule"] == "kill-switch"
    approver, approver_csrf = full_world.operator("ana")
    release = approver.post(
        "/v1/ops/control/kill-switch",
        json={"engaged": False, "agent_id": "payments-bot", "reason": "fixed"},
        headers={"X-CSRF-Token": approver_csrf},
    )
    assert release.status_code == 403


def _kill_switch(full_world: World, body: dict[str, object]) -> int:
    admin, csrf = full_world.operator("root")
    response = admin.post(
        "/v1/ops/control/kill-switch",
        json={"reason": "incident 42", **body},
        headers={"X-CSRF-Token": csrf},
    )
    return response.status_code


def test_kill_switch_halts_a_tool_or_an_environment_over_http(full_world: World) -> None:
    session_id = full_world.open_session()  # payments-bot works in production
    read = {"session_id": session_id, "tool": "read_account", "args": {"account_id": "acc-1"}}
    pay = {
        "session_id": session_id,
        "tool": "transfer_funds",
        "args": {"amount": 5.0, "to_account": "acc-1"},
    }

    def rule(call: dict[str, object]) -> str:
        with full_world.agent() as client:
            return str(client.post("/v1/decide", json=call).json()["rule"])

    assert _kill_switch(full_world, {"engaged": True, "tool": "transfer_funds"}) == 200
    assert (rule(read), rule(pay)) == ("reads", "kill-switch")
    assert _kill_switch(full_world, {"engaged": False, "tool": "transfer_funds"}) == 200
    assert rule(pay) != "kill-switch"

    assert _kill_switch(full_world, {"engaged": True, "environment": "staging"}) == 200
    assert rule(read) == "reads"  # another environment's halt does not reach production
    assert _kill_switch(full_world, {"engaged": True, "environment": "production"}) == 200
    assert rule(read) == "kill-switch"


def test_kill_switch_refuses_two_scopes_or_an_unknown_environment(full_world: World) -> None:
    both = {"engaged": True, "agent_id": "payments-bot", "tool": "transfer_funds"}
    assert _kill_switch(full_world, both) == 422
    assert _kill_switch(full_world, {"engaged": True, "environment": "moon"}) == 422
