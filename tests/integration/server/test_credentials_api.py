"""``POST /v1/credentials`` over real HTTP: a PERMIT or a token buys one short-lived credential.

Attacks tried: another agent's decision, a DENY decision, a staging session asking for a
production-only credential, replaying a used grant, presenting a grant after it expired, and
exchanging a PERMIT received just before the agent was halted. The secret must appear only in the
one response that hands it over: never in the audit shard and never in the service's logs.
"""

from __future__ import annotations

import logging

import pytest

from clearance.cli.runtime import Runtime
from clearance.gate.clock import FixedClock
from clearance.model.session import Environment

from .conftest import SECRETS, World  # noqa: TID252 - sibling fixture module


def _read(session_id: str) -> dict[str, object]:
    return {"session_id": session_id, "tool": "read_account", "args": {"account_id": "acc-1"}}


def _permit(world: World, session_id: str, key: str | None = None) -> str:
    with world.agent(key) as client:
        response = client.post("/v1/decide", json=_read(session_id))
    assert response.status_code == 200, response.text
    return str(response.json()["decision_id"])


def _exchange(world: World, body: dict[str, object], key: str | None = None):  # type: ignore[no-untyped-def]
    with world.agent(key) as client:
        return client.post("/v1/credentials", json=body)


def _staging_session(world: World, task: str = "transfer") -> str:
    session = world.gate.open_session(
        agent_id="staging-bot", task=task, environment=Environment.STAGING
    )
    return str(session.session_id)


def test_permit_buys_the_production_secret_once_and_it_is_never_logged(
    brokered_world: World, brokered_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    session_id = brokered_world.open_session(task="balance_check")
    decision_id = _permit(brokered_world, session_id)
    grant = {"session_id": session_id, "tool": "read_account", "decision_id": decision_id}

    first = _exchange(brokered_world, grant)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["secret"] == SECRETS["production"]["ledger_api"]
    assert body["environment"] == "production"
    assert body["lease_id"].startswith("lse_")
    assert body["expires_at"] == "2026-03-01T12:05:00.000000Z"  # the policy's 5 minute ttl

    replay = _exchange(brokered_world, grant)
    assert replay.status_code == 403
    assert "secret" not in replay.json()

    brokered_runtime.audit_log.checkpoint_now()
    data_dir = brokered_runtime.data_dir
    shard = b"".join(p.read_bytes() for p in data_dir.glob("*.db*"))
    assert b"credential.issued" in shard
    assert body["lease_id"].encode() in shard
    for values in SECRETS.values():
        for value in values.values():
            assert value.encode() not in shard
            assert value not in caplog.text


def test_another_agents_decision_buys_nothing(brokered_world: World) -> None:
    session_id = brokered_world.open_session(task="balance_check")
    decision_id = _permit(brokered_world, session_id)
    stolen = _exchange(
        brokered_world,
        {"session_id": session_id, "tool": "read_account", "decision_id": decision_id},
        key=brokered_world.staging_agent_key,
    )
    assert stolen.status_code == 403
    own_session = _staging_session(brokered_world, task="balance_check")
    borrowed = _exchange(
        brokered_world,
        {"session_id": own_session, "tool": "read_account", "decision_id": decision_id},
        key=brokered_world.staging_agent_key,
    )
    assert borrowed.status_code == 403
    # The rightful owner can still use it: the refusals spent nothing.
    mine = _exchange(
        brokered_world,
        {"session_id": session_id, "tool": "read_account", "decision_id": decision_id},
    )
    assert mine.status_code == 200


def test_a_deny_decision_buys_nothing(brokered_world: World) -> None:
    session_id = brokered_world.open_session(task="cleanup")
    with brokered_world.agent() as client:
        denied = client.post(
            "/v1/decide",
            json={"session_id": session_id, "tool": "delete_records", "args": {"table": "t"}},
        )
    assert denied.status_code == 403
    response = _exchange(
        brokered_world,
        {
            "session_id": session_id,
            "tool": "delete_records",
            "decision_id": denied.json()["decision_id"],
        },
    )
    assert response.status_code == 403
    assert response.json()["code"] == "credential_error"
    assert SECRETS["production"]["db_admin"] not in response.text


def test_staging_session_never_gets_a_production_credential(brokered_world: World) -> None:
    key = brokered_world.staging_agent_key
    session_id = _staging_session(brokered_world)
    # transfer_funds has a credential in production only.
    with brokered_world.agent(key) as client:
        permitted = client.post(
            "/v1/decide",
            json={
                "session_id": session_id,
                "tool": "transfer_funds",
                "args": {"amount": 5.0, "to_account": "acc-1"},
            },
        )
    assert permitted.status_code == 200, permitted.text
    refused = _exchange(
        brokered_world,
        {
            "session_id": session_id,
            "tool": "transfer_funds",
            "decision_id": permitted.json()["decision_id"],
        },
        key=key,
    )
    assert refused.status_code == 403
    assert "no credential in staging" in refused.json()["message"]
    # A tool with a credential in both environments: the staging value, never production's.
    granted = _exchange(
        brokered_world,
        {
            "session_id": session_id,
            "tool": "read_account",
            "decision_id": _permit(brokered_world, session_id, key),
        },
        key=key,
    )
    assert granted.status_code == 200
    assert granted.json()["secret"] == SECRETS["staging"]["ledger_api"]
    assert granted.json()["environment"] == "staging"


def test_a_decision_presented_after_it_expired_buys_nothing(
    brokered_world: World, clock: FixedClock
) -> None:
    session_id = brokered_world.open_session(task="balance_check")
    decision_id = _permit(brokered_world, session_id)
    clock.advance(3 * 60)
    late = _exchange(
        brokered_world,
        {"session_id": session_id, "tool": "read_account", "decision_id": decision_id},
    )
    assert late.status_code == 403


def _approved_token(world: World, session_id: str) -> str:
    call = {
        "session_id": session_id,
        "tool": "transfer_funds",
        "args": {"amount": 5000.0, "to_account": "acc-1"},
    }
    with world.agent() as client:
        asked = client.post("/v1/decide", json=call).json()
    operator, csrf = world.operator("ana")
    approved = operator.post(
        f"/v1/ops/approvals/{asked['approval_id']}/approve",
        json={},
        headers={"X-CSRF-Token": csrf},
    )
    assert approved.status_code == 200, approved.text
    with world.agent() as client:
        status = client.post(
            f"/v1/approvals/{asked['approval_id']}/status",
            json={"session_id": session_id, "intent": asked["intent"]},
        ).json()
    return str(status["token"])


def test_execution_token_buys_one_credential_and_not_after_expiry(
    brokered_world: World, clock: FixedClock
) -> None:
    session_id = brokered_world.open_session()
    token = _approved_token(brokered_world, session_id)
    grant = {"session_id": session_id, "tool": "transfer_funds", "approval_token": token}
    got = _exchange(brokered_world, grant)
    assert got.status_code == 200, got.text
    assert got.json()["secret"] == SECRETS["production"]["bank_api"]
    assert _exchange(brokered_world, grant).status_code == 403

    expiring = _approved_token(brokered_world, session_id)
    clock.advance(24 * 3600)
    late = _exchange(
        brokered_world,
        {"session_id": session_id, "tool": "transfer_funds", "approval_token": expiring},
    )
    assert late.status_code == 403


def test_halt_revokes_leases_and_refuses_a_permit_from_before_the_halt(
    brokered_world: World, brokered_runtime: Runtime
) -> None:
    session_id = brokered_world.open_session(task="balance_check")
    leased = _exchange(
        brokered_world,
        {
            "session_id": session_id,
            "tool": "read_account",
            "decision_id": _permit(brokered_world, session_id),
        },
    )
    assert leased.status_code == 200
    unused_permit = _permit(brokered_world, session_id)
    broker = brokered_runtime.credentials
    assert [lease.lease_id for lease in broker.store.active_leases("payments-bot")] == [
        leased.json()["lease_id"]
    ]

    operator, csrf = brokered_world.operator("ana")
    halted = operator.post(
        "/v1/ops/control/kill-switch",
        json={"engaged": True, "agent_id": "payments-bot", "reason": "leaking data"},
        headers={"X-CSRF-Token": csrf},
    )
    assert halted.status_code == 200, halted.text
    assert "credentials.revoked" in halted.json()["summary"]
    assert broker.store.active_leases("payments-bot") == []

    after = _exchange(
        brokered_world,
        {"session_id": session_id, "tool": "read_account", "decision_id": unused_permit},
    )
    assert after.status_code == 403
    assert "stop is in force" in after.json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"session_id": "s", "tool": "read_account"},
        {"session_id": "s", "tool": "read_account", "decision_id": "d", "approval_token": "t"},
        {"session_id": "s", "tool": "read_account", "decision_id": "d", "agent_id": "x"},
    ],
)
def test_a_request_naming_no_grant_or_two_is_refused(
    brokered_world: World, body: dict[str, object]
) -> None:
    response = _exchange(brokered_world, body)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_an_operator_cookie_or_orchestrator_key_cannot_exchange(brokered_world: World) -> None:
    body = {"session_id": "s", "tool": "read_account", "decision_id": "d"}
    operator, _ = brokered_world.operator("ana")
    assert operator.post("/v1/credentials", json=body).status_code == 401
    with brokered_world.orchestrator() as client:
        assert client.post("/v1/credentials", json=body).status_code == 403


def test_a_halt_typed_into_the_cli_revokes_the_leases_the_service_issued(
    brokered_world: World, brokered_runtime: Runtime
) -> None:
    from typer.testing import CliRunner

    from clearance.cli.commands.control import app

    session_id = brokered_world.open_session(task="balance_check")
    leased = _exchange(
        brokered_world,
        {
            "session_id": session_id,
            "tool": "read_account",
            "decision_id": _permit(brokered_world, session_id),
        },
    )
    assert leased.status_code == 200
    data_dir = brokered_runtime.data_dir
    result = CliRunner().invoke(
        app,
        [
            "kill",
            "agent:payments-bot",
            "--reason",
            "credential leak",
            "--operator",
            "alice",
            "--data-dir",
            str(data_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "credentials.revoked=1" in result.output
    assert brokered_runtime.credentials.store.active_leases("payments-bot") == []
