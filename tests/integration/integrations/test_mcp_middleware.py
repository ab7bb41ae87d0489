"""The server middleware gates a hand-written ``mcp`` 2.x server, with a real gate and client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import mcp.types as types
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from tests.integration.integrations.kit import (
    AGENT,
    DeadSidecar,
    approve,
    claim_token,
    decisions_in_log,
    first_pending,
    outcomes_for,
)
from tests.integration.integrations.mcp_bank_server import bank_server
from tests.integration.integrations.mcp_kit import (
    DASHBOARD,
    ledger,
    ledger_lines,
    mcp_runtime,
    mcp_session,
    text,
)

from clearance.cli.runtime import Runtime
from clearance.integrations.mapping import SessionHandle, approval_link, build_request
from clearance.integrations.mcp_admission import TOKEN_META_KEY, Admission, fixed_session
from clearance.integrations.mcp_gateway import session_grants
from clearance.integrations.mcp_middleware import gate_server
from clearance.integrations.transport import InProcessTransport, Transport

__all__ = ["ledger", "mcp_runtime", "mcp_session"]  # fixtures


def hand_written_server(calls: list[tuple[str, dict[str, Any]]]) -> MCPServer:
    """A server someone wrote with the SDK; ``calls`` is its side effect."""
    server = MCPServer("payments")

    @server.tool()
    def transfer_funds(amount: float, to_account: str) -> str:
        """Move money."""
        calls.append(("transfer_funds", {"amount": amount, "to_account": to_account}))
        return f"sent {amount} to {to_account}"

    @server.tool()
    def delete_records(table: str) -> str:
        """Delete a table."""
        calls.append(("delete_records", {"table": table}))
        return "deleted"

    @server.tool()
    def run_code(code: str) -> str:
        """Run code in this process (the policy demands the sandbox)."""
        calls.append(("run_code", {"code": code}))
        return "ran"

    @server.tool()
    def wire_abroad(amount: float) -> str:
        """Not in the policy's inventory."""
        calls.append(("wire_abroad", {"amount": amount}))
        return "wired"

    return server


def gated(
    transport: Transport, session: SessionHandle, calls: list[tuple[str, dict[str, Any]]]
) -> MCPServer:
    server = hand_written_server(calls)
    grants = session_grants(transport) if isinstance(transport, InProcessTransport) else None
    admission = Admission(transport, approval_url=approval_link(DASHBOARD))
    gate_server(server, admission, fixed_session(session), grants=grants)
    return server


def test_the_middleware_gates_every_call_of_a_hand_written_server(
    runtime: Runtime, session: SessionHandle
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
    server = gated(transport, session, calls)
    big = {"amount": 5000.0, "to_account": "acc-2"}

    async def script() -> dict[str, Any]:
        async with Client(server) as client:
            out: dict[str, Any] = {
                "names": sorted(t.name for t in (await client.list_tools()).tools)
            }
            out["small"] = await client.call_tool(
                "transfer_funds", {"amount": 10.0, "to_account": "acc-1"}
            )
            out["delete"] = await client.call_tool("delete_records", {"table": "payees"})
            out["code"] = await client.call_tool("run_code", {"code": "print(1)"})
            out["unknown"] = await client.call_tool("wire_abroad", {"amount": 1.0})
            out["pending"] = await client.call_tool("transfer_funds", big)
            approval_id = first_pending(runtime)
            assert approval_id is not None
            approve(runtime, approval_id)
            out["swapped"] = await client.call_tool(
                "transfer_funds", {"amount": 9000.0, "to_account": "acc-6"}
            )
            out["approved"] = await client.call_tool("transfer_funds", big)
            return out

    out = asyncio.run(script())
    assert out["names"] == ["delete_records", "run_code", "transfer_funds"]
    assert text(out["small"]) == "sent 10.0 to acc-1"
    assert out["delete"].is_error
    assert text(out["delete"]) == "denied by rule `never-delete`: the agent never deletes records"
    assert out["code"].is_error
    assert "sandbox" in text(out["code"])
    assert out["unknown"].is_error
    assert out["pending"].is_error
    assert f"{DASHBOARD}/approvals/apr_" in text(out["pending"])
    assert out["swapped"].is_error
    assert not out["approved"].is_error
    assert calls == [
        ("transfer_funds", {"amount": 10.0, "to_account": "acc-1"}),
        ("transfer_funds", big),
    ]
    permits = [
        d
        for d in decisions_in_log(runtime)
        if d["outcome"] == "PERMIT" and d["tool"] == "transfer_funds"
    ]
    assert len(permits) == 2
    for permit in permits:
        assert outcomes_for(runtime, permit["decision_id"])[0]["success"] is True


def test_the_middleware_fails_closed_when_the_gate_is_unreachable(session: SessionHandle) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    dead = DeadSidecar()
    server = gated(dead, session, calls)

    async def script() -> types.CallToolResult:
        async with Client(server) as client:
            return await client.call_tool("transfer_funds", {"amount": 1.0, "to_account": "acc-1"})

    result = asyncio.run(script())
    assert result.is_error
    assert "could not be reached" in text(result)
    assert dead.calls == 1
    assert calls == []


def test_malformed_call_parameters_never_reach_the_handler(
    runtime: Runtime, session: SessionHandle
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
    server = gated(transport, session, calls)

    async def script() -> types.CallToolResult:
        async with Client(server) as client:
            return await client.call_tool("transfer_funds", {"amount": "ten", "to_account": 7})

    result = asyncio.run(script())
    assert result.is_error
    assert calls == []


def test_a_forged_or_foreign_token_in_meta_runs_nothing(
    runtime: Runtime, session: SessionHandle
) -> None:
    """A client that invents a token, or replays one minted for other arguments, gets a refusal."""
    calls: list[tuple[str, dict[str, Any]]] = []
    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
    server = gated(transport, session, calls)
    approved = {"amount": 5000.0, "to_account": "acc-2"}
    pending = runtime.gate.decide(build_request(session, "transfer_funds", approved))
    assert pending.approval_id is not None
    approve(runtime, pending.approval_id)
    token = claim_token(runtime, pending, session)

    async def script() -> list[types.CallToolResult]:
        async with Client(server) as client:
            forged = await client.call_tool(
                "transfer_funds", approved, meta=cast(Any, {TOKEN_META_KEY: "apt_forged"})
            )
            foreign = await client.call_tool(
                "transfer_funds",
                {"amount": 5000.0, "to_account": "acc-666"},
                meta=cast(Any, {TOKEN_META_KEY: token}),
            )
            return [forged, foreign]

    forged, foreign = asyncio.run(script())
    assert forged.is_error
    assert foreign.is_error
    assert "invalid-token" in text(foreign)
    assert calls == []


# resources and prompts of a hand-written server ------------------------------------------------
def gated_bank(runtime: Runtime, session: SessionHandle, ledger: Path) -> MCPServer:
    """The test bank (``MCPServer("bank")``) gated in place: its surfaces are ``bank:*``."""
    server = bank_server(ledger)
    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
    admission = Admission(transport, approval_url=approval_link(DASHBOARD))
    gate_server(server, admission, fixed_session(session), grants=session_grants(transport))
    return server


def test_the_middleware_gates_resource_reads_and_prompt_gets_of_its_server(
    mcp_runtime: Runtime, mcp_session: SessionHandle, ledger: Path
) -> None:
    async def script() -> dict[str, Any]:
        async with Client(gated_bank(mcp_runtime, mcp_session, ledger)) as client:
            out: dict[str, Any] = {
                "welcome": await client.read_resource("bank://notices/welcome"),
                "summary": await client.get_prompt("summarize", {"account_id": "acc-1"}),
            }
            for name, request in (
                ("staff", client.read_resource("bank://branch/vault-codes")),
                ("sweep", client.get_prompt("wire_everything", {"to_account": "acc-evil"})),
            ):
                with pytest.raises(MCPError) as caught:
                    await request
                out[name] = caught.value
            out["injected"] = await client.read_resource("bank://accounts/acc-666")
            return out

    out = asyncio.run(script())
    assert out["welcome"].contents[0].text == "Welcome to the bank."
    assert out["summary"].messages[0].content.text == "Summarize the account acc-1 for its owner."
    assert out["staff"].message == "denied by rule `staff-only`: branch files are for staff"
    assert out["sweep"].message.startswith("approval `apr_")
    assert ledger_lines(ledger) == [
        {"resource": "bank://notices/welcome"},
        {"prompt": "summarize", "account_id": "acc-1"},
        {"resource": "bank://accounts/acc-666"},
    ]
    welcome = next(d for d in decisions_in_log(mcp_runtime) if d["outcome"] == "PERMIT")
    assert outcomes_for(mcp_runtime, welcome["decision_id"])[0]["output"] == "Welcome to the bank."
    state = mcp_runtime.store.session_state(mcp_session.session_id)
    assert state is not None
    assert "untrusted:injection:bank:resources" in state.taint


def test_a_session_without_the_grant_sees_no_resources_or_prompts_and_reads_none(
    mcp_runtime: Runtime, ledger: Path
) -> None:
    opened = mcp_runtime.gate.open_session(agent_id=AGENT, task="auditing", environment="staging")
    session = SessionHandle(agent_id=opened.agent_id, session_id=opened.session_id)

    async def script() -> tuple[list[Any], list[Any], list[Any], MCPError]:
        async with Client(gated_bank(mcp_runtime, session, ledger)) as client:
            resources = (await client.list_resources()).resources
            templates = (await client.list_resource_templates()).resource_templates
            prompts = (await client.list_prompts()).prompts
            with pytest.raises(MCPError) as caught:
                await client.read_resource("bank://notices/welcome")
            return resources, templates, prompts, caught.value

    resources, templates, prompts, refused = asyncio.run(script())
    assert (resources, templates, prompts) == ([], [], [])
    assert "denied by rule `scope`" in refused.message
    assert ledger_lines(ledger) == []
