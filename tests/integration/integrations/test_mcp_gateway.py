"""The MCP gateway against a real downstream MCP server over stdio and a real MCP client."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, cast

import mcp.types as types
from mcp import Client
from tests.integration.integrations.kit import (
    APPROVER,
    DeadSidecar,
    approve,
    claim_token,
    decisions_in_log,
    first_pending,
    operator_thread,
    outcomes_for,
)
from tests.integration.integrations.mcp_kit import (
    DASHBOARD,
    ledger,
    ledger_lines,
    mcp_json,
    mcp_runtime,
    mcp_session,
    text,
)
from tests.integration.integrations.served import serve_sidecar

__all__ = ["ledger", "mcp_json", "mcp_runtime", "mcp_session"]  # fixtures

from clearance.cli.runtime import Runtime
from clearance.gate.clock import SystemClock
from clearance.integrations.mapping import SessionHandle, approval_link, build_request
from clearance.integrations.mcp_admission import TOKEN_META_KEY, Admission, fixed_session
from clearance.integrations.mcp_downstream import load_upstreams
from clearance.integrations.mcp_gateway import Gateway, session_grants
from clearance.integrations.transport import InProcessTransport


def gateway(
    runtime: Runtime, session: SessionHandle, mcp_json: Path, *, elicitation_wait_s: float = 30.0
) -> Gateway:
    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
    admission = Admission(
        transport, approval_url=approval_link(DASHBOARD), elicitation_wait_s=elicitation_wait_s
    )
    return Gateway(
        admission,
        fixed_session(session),
        load_upstreams(mcp_json),
        grants=session_grants(transport),
    )


def run(gw: Gateway, script: Any) -> Any:
    async def main() -> Any:
        async with Client(gw.server()) as client:
            return await script(client)

    return asyncio.run(main())


def test_tools_are_namespaced_and_filtered_by_the_sessions_grants(
    mcp_runtime: Runtime, mcp_session: SessionHandle, mcp_json: Path
) -> None:
    async def script(client: Client) -> list[str]:
        return sorted(t.name for t in (await client.list_tools()).tools)

    names = run(gateway(mcp_runtime, mcp_session, mcp_json), script)
    assert names == [
        "bank__add_notice",
        "bank__add_tool",
        "bank__delete_records",
        "bank__read_account",
        "bank__touch",
        "bank__transfer_funds",
    ]


def test_permit_reaches_downstream_and_the_outcome_is_audited(
    mcp_runtime: Runtime, mcp_session: SessionHandle, mcp_json: Path, ledger: Path
) -> None:
    async def script(client: Client) -> types.CallToolResult:
        return await client.call_tool(
            "bank__transfer_funds", {"amount": 10.0, "to_account": "acc-1"}
        )

    result = run(gateway(mcp_runtime, mcp_session, mcp_json), script)
    assert not result.is_error
    assert text(result) == "sent 10.0 to acc-1"
    assert ledger_lines(ledger) == [
        {"tool": "transfer_funds", "amount": 10.0, "to_account": "acc-1"}
    ]
    rec = mcp_runtime.store.session_state(mcp_session.session_id)
    assert rec is not None
    assert rec.calls == {"bank__transfer_funds": 1}
    decision_id = decisions_in_log(mcp_runtime)[-1]["decision_id"]
    assert outcomes_for(mcp_runtime, decision_id)[0]["success"] is True


def test_deny_is_a_tool_error_naming_rule_and_reason_and_never_reaches_downstream(
    mcp_runtime: Runtime, mcp_session: SessionHandle, mcp_json: Path, ledger: Path
) -> None:
    async def script(client: Client) -> list[types.CallToolResult]:
        return [
            await client.call_tool("bank__delete_records", {"table": "payees"}),
            await client.call_tool("bank__audit_trail", {"account_id": "acc-1"}),
            await client.call_tool("bank__launch", {}),
        ]

    deleted, ungranted, unknown = run(gateway(mcp_runtime, mcp_session, mcp_json), script)
    assert deleted.is_error
    assert text(deleted) == "denied by rule `never-delete`: the agent never deletes records"
    assert ungranted.is_error
    assert "scope" in text(ungranted)
    assert unknown.is_error
    assert ledger_lines(ledger) == []


def test_approval_round_trip_by_retrying_the_identical_call(
    mcp_runtime: Runtime, mcp_session: SessionHandle, mcp_json: Path, ledger: Path
) -> None:
    args = {"amount": 5000.0, "to_account": "acc-2"}

    async def script(client: Client) -> list[types.CallToolResult]:
        first = await client.call_tool("bank__transfer_funds", args)
        again = await client.call_tool("bank__transfer_funds", args)
        approval_id = first_pending(mcp_runtime)
        assert approval_id is not None
        approve(mcp_runtime, approval_id)
        swapped = await client.call_tool(
            "bank__transfer_funds", {"amount": 9000.0, "to_account": "acc-6"}
        )
        approved = await client.call_tool("bank__transfer_funds", args)
        replayed = await client.call_tool("bank__transfer_funds", args)
        return [first, again, swapped, approved, replayed]

    first, again, swapped, approved, replayed = run(
        gateway(mcp_runtime, mcp_session, mcp_json), script
    )
    assert first.is_error
    assert "approval `apr_" in text(first)
    assert "http://127.0.0.1:8787/approvals/apr_" in text(first)
    assert text(again) == text(first)
    assert swapped.is_error
    assert "approval `apr_" in text(swapped)
    assert not approved.is_error
    assert text(approved) == "sent 5000.0 to acc-2"
    assert replayed.is_error
    assert ledger_lines(ledger) == [
        {"tool": "transfer_funds", "amount": 5000.0, "to_account": "acc-2"}
    ]


def test_a_token_in_meta_is_bound_to_the_approved_arguments(
    mcp_runtime: Runtime, mcp_session: SessionHandle, mcp_json: Path, ledger: Path
) -> None:
    args = {"amount": 5000.0, "to_account": "acc-2"}
    transport = InProcessTransport(mcp_runtime.gate, approvals=mcp_runtime.approvals)
    pending = mcp_runtime.gate.decide(build_request(mcp_session, "bank__transfer_funds", args))
    assert pending.approval_id is not None
    approve(mcp_runtime, pending.approval_id)
    token = claim_token(mcp_runtime, pending, mcp_session)
    gw = Gateway(Admission(transport), fixed_session(mcp_session), load_upstreams(mcp_json))
    token_meta = cast(types.RequestParamsMeta, {TOKEN_META_KEY: token})

    async def script(client: Client) -> list[types.CallToolResult]:
        swapped = await client.call_tool(
            "bank__transfer_funds",
            {"amount": 9000.0, "to_account": "acc-6"},
            meta=token_meta,
        )
        good = await client.call_tool("bank__transfer_funds", args, meta=token_meta)
        return [swapped, good]

    swapped, good = run(gw, script)
    assert swapped.is_error
    assert "invalid-token" in text(swapped)
    assert not good.is_error
    assert ledger_lines(ledger) == [
        {"tool": "transfer_funds", "amount": 5000.0, "to_account": "acc-2"}
    ]


def test_gate_unreachable_means_nothing_reaches_downstream(
    mcp_session: SessionHandle, mcp_json: Path, ledger: Path
) -> None:
    dead = DeadSidecar()
    gw = Gateway(Admission(dead), fixed_session(mcp_session), load_upstreams(mcp_json))

    async def script(client: Client) -> types.CallToolResult:
        return await client.call_tool("bank__read_account", {"account_id": "acc-1"})

    result = run(gw, script)
    assert result.is_error
    assert "connection refused" in text(result)
    assert dead.calls == 1
    assert ledger_lines(ledger) == []


def test_clearance_mcp_proxy_over_stdio(
    mcp_runtime: Runtime, mcp_session: SessionHandle, mcp_json: Path, ledger: Path
) -> None:
    from mcp import StdioServerParameters

    mcp_runtime.close()
    code = "from clearance.cli.commands.mcp import app; app(prog_name='clearance mcp')"
    front = StdioServerParameters(
        command=sys.executable,
        args=[
            "-c",
            code,
            "proxy",
            "--upstreams",
            str(mcp_json),
            "--data-dir",
            str(mcp_runtime.data_dir),
        ],
        env={
            "CLEARANCE_AGENT_ID": mcp_session.agent_id,
            "CLEARANCE_SESSION_ID": mcp_session.session_id,
            "PATH": "/usr/bin:/bin",
        },
    )

    async def main() -> tuple[list[str], types.CallToolResult, types.CallToolResult, str]:
        async with Client(front) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            ok = await client.call_tool("bank__read_account", {"account_id": "acc-1"})
            no = await client.call_tool("bank__delete_records", {"table": "payees"})
            [read] = (
                await client.read_resource("clearance://bank/bank://notices/welcome")
            ).contents
            return names, ok, no, getattr(read, "text", "")

    names, ok, no, read = asyncio.run(main())
    assert "bank__audit_trail" not in names
    assert text(ok) == "acc-1: 120.00"
    assert no.is_error
    assert "never-delete" in text(no)
    assert read == "Welcome to the bank."
    assert ledger_lines(ledger) == [
        {"tool": "read_account", "account_id": "acc-1"},
        {"resource": "bank://notices/welcome"},
    ]


def test_url_elicitation_on_the_local_front_waits_for_the_operator(
    mcp_runtime: Runtime, mcp_session: SessionHandle, mcp_json: Path, ledger: Path
) -> None:
    """A client that declares URL elicitation is sent to the approval page; its "accept" alone
    approves nothing: the call runs only once the operator approved in clearance."""
    args = {"amount": 5000.0, "to_account": "acc-2"}
    asked: list[types.ElicitRequestParams] = []
    operator = operator_thread(mcp_runtime, lambda approval_id: approve(mcp_runtime, approval_id))

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        return types.ElicitResult(action="accept")

    async def main() -> types.CallToolResult:
        async with Client(
            gateway(mcp_runtime, mcp_session, mcp_json).server(), elicitation_callback=on_elicit
        ) as client:
            return await client.call_tool("bank__transfer_funds", args)

    result = asyncio.run(main())
    operator.join(10)
    assert not result.is_error, text(result)
    assert len(asked) == 1
    assert isinstance(asked[0], types.ElicitRequestURLParams)
    assert asked[0].url.startswith(f"{DASHBOARD}/approvals/apr_")
    assert ledger_lines(ledger) == [{"tool": "transfer_funds", **args}]


def test_an_accepted_elicitation_without_the_operator_approves_nothing(
    mcp_runtime: Runtime, mcp_session: SessionHandle, mcp_json: Path, ledger: Path
) -> None:
    """The agent's own client answering "accept" (as an auto-accepting hook would) must not run
    the call: without the operator it stays pending, and an operator's denial reaches the model."""
    args = {"amount": 5000.0, "to_account": "acc-2"}

    async def accept_everything(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="accept")

    async def main() -> list[types.CallToolResult]:
        gw = gateway(mcp_runtime, mcp_session, mcp_json, elicitation_wait_s=1.0)
        async with Client(gw.server(), elicitation_callback=accept_everything) as client:
            alone = await client.call_tool("bank__transfer_funds", args)
            approval_id = first_pending(mcp_runtime)
            assert approval_id is not None
            mcp_runtime.approvals.deny(
                approval_id, APPROVER, SystemClock().now(), comment="payee not verified"
            )
            denied = await client.call_tool("bank__transfer_funds", args)
            return [alone, denied]

    alone, denied = asyncio.run(main())
    assert alone.is_error
    assert "approval `apr_" in text(alone)
    assert denied.is_error
    assert "payee not verified" in text(denied)
    assert ledger_lines(ledger) == []


def test_clearance_mcp_proxy_over_stdio_asking_the_sidecar(
    mcp_runtime: Runtime, mcp_session: SessionHandle, mcp_json: Path, ledger: Path
) -> None:
    """With --gate-url the gateway process opens no data directory: the sidecar decides and
    records, with the agent key from the client's environment."""
    from mcp import StdioServerParameters

    code = "from clearance.cli.commands.mcp import app; app(prog_name='clearance mcp')"
    with serve_sidecar(mcp_runtime) as served:
        front = StdioServerParameters(
            command=sys.executable,
            args=["-c", code, "proxy", "--upstreams", str(mcp_json), "--gate-url", served.base_url],
            env={
                "CLEARANCE_AGENT_ID": mcp_session.agent_id,
                "CLEARANCE_SESSION_ID": mcp_session.session_id,
                "CLEARANCE_AGENT_KEY": served.agent_key,
                "PATH": "/usr/bin:/bin",
            },
        )

        async def main() -> tuple[types.CallToolResult, types.CallToolResult]:
            async with Client(front) as client:
                ok = await client.call_tool("bank__read_account", {"account_id": "acc-1"})
                no = await client.call_tool("bank__delete_records", {"table": "payees"})
                return ok, no

        ok, no = asyncio.run(main())
    assert text(ok) == "acc-1: 120.00"
    assert "never-delete" in text(no)
    assert [e["tool"] for e in ledger_lines(ledger)] == ["read_account"]
    permit = next(d for d in decisions_in_log(mcp_runtime) if d["outcome"] == "PERMIT")
    assert outcomes_for(mcp_runtime, permit["decision_id"])[0]["success"] is True
