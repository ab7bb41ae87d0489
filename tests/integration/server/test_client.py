"""The Python client against the served gate: decisions are values, refusals of the caller raise."""

from __future__ import annotations

import asyncio
import socket

import pytest

from clearance.client import AsyncGateClient, GateClient, GateClientError
from clearance.model.decision import Outcome
from clearance.model.result import ActionResult

from .conftest import World  # noqa: TID252 - sibling fixture module


def test_sync_client_decides_reports_and_fetches(world: World) -> None:
    with GateClient(world.base_url, api_key=world.orchestrator_key) as orchestrator:
        session = orchestrator.open_session("payments-bot", "transfer")
    with GateClient(world.base_url, api_key=world.agent_key) as gate:
        permit = gate.decide(session.session_id, "read_account", {"account_id": "acc-1"})
        deny = gate.decide(session.session_id, "delete_records", {"table": "t"})
        gate.report(ActionResult(decision_id=permit.decision_id, success=True))
        fetched = gate.decision(permit.decision_id)
    assert permit.outcome is Outcome.PERMIT
    assert deny.outcome is Outcome.DENY
    assert not deny.permitted
    assert fetched.decision_id == permit.decision_id


def test_async_client_decides(world: World) -> None:
    session_id = world.open_session()

    async def go() -> Outcome:
        async with AsyncGateClient(world.base_url, api_key=world.agent_key) as gate:
            decision = await gate.decide(session_id, "read_account", {"account_id": "acc-1"})
            return decision.outcome

    assert asyncio.run(go()) is Outcome.PERMIT


def test_refused_caller_raises_with_the_service_code(world: World) -> None:
    with (
        GateClient(world.base_url, api_key="clr_agent_" + "B" * 43) as gate,
        pytest.raises(GateClientError) as refused,
    ):
        gate.decide("ses_x", "read_account", {})
    assert refused.value.code == "unauthenticated"
    assert refused.value.status == 401


def test_unreachable_gate_raises_never_permits() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        GateClient(f"http://127.0.0.1:{port}", api_key="clr_agent_x", timeout=2) as gate,
        pytest.raises(GateClientError),
    ):
        gate.decide("ses_x", "read_account", {})


def test_clients_fetch_receipts_and_exchange_credentials(brokered_world: World) -> None:
    from .conftest import SECRETS  # noqa: TID252 - sibling fixture module

    session_id = brokered_world.open_session(task="balance_check")
    with GateClient(brokered_world.base_url, api_key=brokered_world.agent_key) as gate:
        first = gate.decide(session_id, "read_account", {"account_id": "acc-1"})
        second = gate.decide(session_id, "read_account", {"account_id": "acc-2"})
        evidence = gate.receipt(first.decision_id)
        credential = gate.credential(session_id, "read_account", decision_id=first.decision_id)
        with pytest.raises(GateClientError) as replayed:
            gate.credential(session_id, "read_account", decision_id=first.decision_id)
    assert evidence["receipt"] == first.receipt
    assert evidence["proof"]
    assert credential.secret.reveal() == SECRETS["production"]["ledger_api"]
    assert "prod-ledger" not in repr(credential)
    assert replayed.value.status == 403
    assert replayed.value.code == "credential_error"

    async def go() -> str:
        async with AsyncGateClient(
            brokered_world.base_url, api_key=brokered_world.agent_key
        ) as gate:
            await gate.receipt(second.decision_id)
            got = await gate.credential(session_id, "read_account", decision_id=second.decision_id)
            return got.secret.reveal()

    assert asyncio.run(go()) == SECRETS["production"]["ledger_api"]
