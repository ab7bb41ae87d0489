"""The gateway over real HTTP: an HTTP downstream and the streamable-HTTP front, both on loopback.

The downstream bank is an ``MCPServer`` served by uvicorn that demands its own bearer token (sent
from the ``mcp.json`` headers with ``${env:...}``); the front is the gateway's Starlette app served
by uvicorn, reached by a real ``mcp`` client authenticating with agent keys from the identity
store the sidecar uses.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp.types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from tests.integration.integrations.kit import AGENT, DeadSidecar, approve, decisions_in_log
from tests.integration.integrations.kit import outcomes_for as outcomes
from tests.integration.integrations.mcp_bank_server import bank_server
from tests.integration.integrations.mcp_kit import (
    DASHBOARD,
    agent_key,
    ledger,
    ledger_lines,
    mcp_json,
    mcp_runtime,
    mcp_session,
    serving,
    text,
    write_mcp_json,
)

from clearance.cli.commands.mcp import key_checker, session_lookup
from clearance.cli.runtime import Runtime
from clearance.errors import ConfigError
from clearance.integrations.mapping import SessionHandle, approval_link
from clearance.integrations.mcp_admission import Admission, Identify, fixed_session
from clearance.integrations.mcp_downstream import Upstream, load_upstreams
from clearance.integrations.mcp_front import HTTPSessions, http_app
from clearance.integrations.mcp_gateway import Gateway, session_grants
from clearance.integrations.transport import InProcessTransport, Transport
from clearance.server.identity import IdentityService
from clearance.store.identity_sql import identity_store

__all__ = ["ledger", "mcp_json", "mcp_runtime", "mcp_session"]  # fixtures

BANK_TOKEN = "bank-secret-token"
TRANSFER = {"amount": 5000.0, "to_account": "acc-2"}


@pytest.fixture
def bank_url(ledger: Path) -> Iterator[str]:
    app = bank_server(ledger, token=BANK_TOKEN).streamable_http_app(host="127.0.0.1")
    with serving(lambda _port: app) as port:
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
def http_upstreams(tmp_path: Path, bank_url: str) -> list[Upstream]:
    entry = {
        "type": "http",
        "url": bank_url,
        "headers": {"Authorization": "Bearer ${env:BANK_TOKEN}"},
    }
    path = write_mcp_json(tmp_path / "mcp.json", {"bank": entry})
    return load_upstreams(path, environ={"BANK_TOKEN": BANK_TOKEN})


def gateway(transport: Transport, identify: Identify, upstreams: list[Upstream]) -> Gateway:
    grants = session_grants(transport) if isinstance(transport, InProcessTransport) else None
    admission = Admission(transport, approval_url=approval_link(DASHBOARD), elicitation_wait_s=30.0)
    return Gateway(admission, identify, upstreams, grants=grants)


@contextmanager
def front(runtime: Runtime, upstreams: list[Upstream]) -> Iterator[str]:
    """The gateway's HTTP front on an ephemeral loopback port; yields its /mcp URL."""
    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
    gw = gateway(transport, HTTPSessions(session_lookup(runtime)), upstreams)
    verifier = key_checker(runtime)
    with serving(lambda port: http_app(gw, verifier, host="127.0.0.1", port=port)) as port:
        yield f"http://127.0.0.1:{port}/mcp"


@asynccontextmanager
async def connect(
    url: str, key: str, session_id: str, *, mode: str = "legacy", **options: Any
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}", "Clearance-Session": session_id}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, **options) as client:
            yield client


def test_http_front_before_an_http_downstream_permits_denies_and_records(
    mcp_runtime: Runtime, mcp_session: SessionHandle, http_upstreams: list[Upstream], ledger: Path
) -> None:
    key = agent_key(mcp_runtime)

    async def script(url: str) -> tuple[list[str], types.CallToolResult, types.CallToolResult]:
        async with connect(url, key, mcp_session.session_id) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            ok = await client.call_tool("bank__read_account", {"account_id": "acc-1"})
            no = await client.call_tool("bank__delete_records", {"table": "payees"})
            return names, ok, no

    with front(mcp_runtime, http_upstreams) as url:
        names, ok, no = asyncio.run(script(url))
    assert "bank__audit_trail" not in names
    assert "bank__read_account" in names
    assert text(ok) == "acc-1: 120.00"
    assert no.is_error
    assert text(no) == "denied by rule `never-delete`: the agent never deletes records"
    assert ledger_lines(ledger) == [{"tool": "read_account", "account_id": "acc-1"}]
    permit = next(d for d in decisions_in_log(mcp_runtime) if d["outcome"] == "PERMIT")
    assert outcomes(mcp_runtime, permit["decision_id"])[0]["success"] is True


def test_an_http_downstream_without_its_header_variable_is_a_config_error(
    tmp_path: Path, bank_url: str
) -> None:
    entry = {"url": bank_url, "headers": {"Authorization": "Bearer ${env:BANK_TOKEN}"}}
    path = write_mcp_json(tmp_path / "mcp.json", {"bank": entry})
    with pytest.raises(ConfigError, match="BANK_TOKEN"):
        load_upstreams(path, environ={})


def initialize_body() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        },
    }


MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_callers_without_a_valid_agent_key_are_rejected_before_any_mcp_message(
    mcp_runtime: Runtime, mcp_session: SessionHandle, http_upstreams: list[Upstream], ledger: Path
) -> None:
    identity = IdentityService(identity_store(mcp_runtime.store), mcp_runtime.gate.clock)
    good = agent_key(mcp_runtime)
    orchestrator = identity.create_orchestrator_key(
        "launcher", environment="staging", created_by="test"
    ).secret
    revoked = identity.create_agent_key(AGENT, created_by="test")
    identity.revoke_key(revoked.key_id)

    with front(mcp_runtime, http_upstreams) as url, httpx.Client(timeout=30) as http:
        statuses = {
            name: http.post(
                url, json=initialize_body(), headers={**MCP_HEADERS, **auth}
            ).status_code
            for name, auth in {
                "none": {},
                "garbage": {"Authorization": "Bearer clr_agent_not-a-key"},
                "orchestrator": {"Authorization": f"Bearer {orchestrator}"},
                "revoked": {"Authorization": f"Bearer {revoked.secret}"},
            }.items()
        }
        rebinding = http.post(
            url,
            json=initialize_body(),
            headers={**MCP_HEADERS, "Authorization": f"Bearer {good}", "Host": "evil.example"},
        )
        accepted = http.post(
            url, json=initialize_body(), headers={**MCP_HEADERS, "Authorization": f"Bearer {good}"}
        )
    assert statuses == {"none": 401, "garbage": 401, "orchestrator": 401, "revoked": 401}
    assert rebinding.status_code == 421
    assert accepted.status_code == 200
    assert ledger_lines(ledger) == []


def test_another_agents_session_is_refused_and_its_mcp_session_id_is_not_usable(
    mcp_runtime: Runtime, mcp_session: SessionHandle, http_upstreams: list[Upstream], ledger: Path
) -> None:
    owner_key = agent_key(mcp_runtime)
    intruder_key = agent_key(mcp_runtime, "intruder-agent")
    mcp_runtime.gate.open_session(agent_id="intruder-agent", task="payments", environment="staging")

    async def as_intruder(url: str) -> types.CallToolResult:
        async with connect(url, intruder_key, mcp_session.session_id) as client:
            return await client.call_tool("bank__read_account", {"account_id": "acc-1"})

    with front(mcp_runtime, http_upstreams) as url:
        refused = asyncio.run(as_intruder(url))
        with httpx.Client(timeout=30) as http:
            opened = http.post(
                url,
                json=initialize_body(),
                headers={**MCP_HEADERS, "Authorization": f"Bearer {owner_key}"},
            )
            hijack = http.post(
                url,
                json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                headers={
                    **MCP_HEADERS,
                    "Authorization": f"Bearer {intruder_key}",
                    "Mcp-Session-Id": opened.headers["mcp-session-id"],
                    "MCP-Protocol-Version": "2025-11-25",
                },
            )
    assert refused.is_error
    assert "is not a session of this agent" in text(refused)
    assert hijack.status_code == 404
    assert ledger_lines(ledger) == []


def approval_id_of(params: types.ElicitRequestParams) -> str:
    """The approval id of a URL elicitation: its id, and the last segment of the page URL.

    2026-07-28 input requests carry no elicitation id, so the page URL is what the user follows.
    """
    assert isinstance(params, types.ElicitRequestURLParams)
    approval_id = params.url.rsplit("/", 1)[-1]
    assert params.elicitation_id in (None, approval_id)
    return approval_id


def elicitation_recorder(
    runtime: Runtime, seen: list[types.ElicitRequestParams], *, action: str = "accept"
) -> Any:
    """A client elicitation callback: note the request; on accept, the operator approves."""

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.append(params)
        if action == "accept":
            approve(runtime, approval_id_of(params))
        return types.ElicitResult(action=action)

    return on_elicit


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_url_elicitation_sends_the_user_to_the_dashboard_and_redeems_the_approval(
    mode: str,
    mcp_runtime: Runtime,
    mcp_session: SessionHandle,
    http_upstreams: list[Upstream],
    ledger: Path,
) -> None:
    """Handshake-era clients get an elicitation request; 2026-07-28 clients an input-required
    result. Either way the call completes only after the operator approved in clearance."""
    key = agent_key(mcp_runtime)
    seen: list[types.ElicitRequestParams] = []

    async def script(url: str) -> types.CallToolResult:
        callback = elicitation_recorder(mcp_runtime, seen)
        async with connect(
            url, key, mcp_session.session_id, mode=mode, elicitation_callback=callback
        ) as client:
            return await client.call_tool("bank__transfer_funds", TRANSFER)

    with front(mcp_runtime, http_upstreams) as url:
        result = asyncio.run(script(url))
    assert not result.is_error, text(result)
    assert text(result) == "sent 5000.0 to acc-2"
    [asked] = seen
    assert isinstance(asked, types.ElicitRequestURLParams)
    assert asked.url == f"{DASHBOARD}/approvals/{approval_id_of(asked)}"
    assert approval_id_of(asked).startswith("apr_")
    assert "transfers above 1000 need a human" in asked.message
    assert ledger_lines(ledger) == [{"tool": "transfer_funds", **TRANSFER}]
    outcomes_seen = [d["outcome"] for d in decisions_in_log(mcp_runtime)]
    assert outcomes_seen == ["APPROVAL", "PERMIT"]


def test_a_declined_elicitation_leaves_the_call_pending_and_a_retry_after_approval_runs(
    mcp_runtime: Runtime, mcp_session: SessionHandle, http_upstreams: list[Upstream], ledger: Path
) -> None:
    key = agent_key(mcp_runtime)
    seen: list[types.ElicitRequestParams] = []

    async def script(url: str) -> list[types.CallToolResult]:
        callback = elicitation_recorder(mcp_runtime, seen, action="decline")
        async with connect(
            url, key, mcp_session.session_id, elicitation_callback=callback
        ) as client:
            declined = await client.call_tool("bank__transfer_funds", TRANSFER)
            approve(mcp_runtime, approval_id_of(seen[0]))
            changed = await client.call_tool(
                "bank__transfer_funds", {"amount": 9000.0, "to_account": "acc-6"}
            )
            retried = await client.call_tool("bank__transfer_funds", TRANSFER)
            return [declined, changed, retried]

    with front(mcp_runtime, http_upstreams) as url:
        declined, changed, retried = asyncio.run(script(url))
    assert declined.is_error
    assert "approval `apr_" in text(declined)
    assert changed.is_error
    assert "approval `apr_" in text(changed)
    assert not retried.is_error
    assert ledger_lines(ledger) == [{"tool": "transfer_funds", **TRANSFER}]


def test_gate_down_means_the_http_downstream_is_never_called(
    mcp_session: SessionHandle, http_upstreams: list[Upstream], ledger: Path
) -> None:
    dead = DeadSidecar()
    gw = gateway(dead, fixed_session(mcp_session), http_upstreams)

    async def script() -> types.CallToolResult:
        async with Client(gw.server()) as client:
            return await client.call_tool("bank__read_account", {"account_id": "acc-1"})

    result = asyncio.run(script())
    assert result.is_error
    assert "could not be reached" in text(result)
    assert dead.calls == 1
    assert ledger_lines(ledger) == []


def test_downstream_tool_list_changes_reach_the_client_only_when_its_granted_view_changed(
    mcp_runtime: Runtime, mcp_session: SessionHandle, mcp_json: Path, ledger: Path
) -> None:
    """A stdio downstream adds tools at runtime; the HTTP client hears of the granted one only."""
    key = agent_key(mcp_runtime)
    upstreams = load_upstreams(mcp_json)

    async def script(url: str) -> tuple[bool, list[str], types.CallToolResult]:
        changed = anyio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                changed.set()

        async with connect(url, key, mcp_session.session_id, message_handler=on_message) as client:
            await client.list_tools()
            await client.call_tool("bank__add_tool", {"name": "audit_export"})  # not granted
            with anyio.move_on_after(2):
                await changed.wait()
            heard_ungranted = changed.is_set()
            await client.call_tool("bank__add_tool", {"name": "close_branch"})  # granted
            with anyio.fail_after(20):
                await changed.wait()
            names = sorted(t.name for t in (await client.list_tools()).tools)
            closed = await client.call_tool("bank__close_branch", {"note": "end of lease"})
            return heard_ungranted, names, closed

    with front(mcp_runtime, upstreams) as url:
        heard_ungranted, names, closed = asyncio.run(script(url))
    assert heard_ungranted is False
    assert "bank__close_branch" in names
    assert "bank__audit_export" not in names
    assert text(closed) == "close_branch ran"
    assert ledger_lines(ledger)[-1] == {"tool": "close_branch", "note": "end of lease"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_clearance_mcp_proxy_serves_http_to_agents_with_keys(
    mcp_runtime: Runtime, mcp_session: SessionHandle, mcp_json: Path, ledger: Path
) -> None:
    key = agent_key(mcp_runtime)
    mcp_runtime.close()
    port = free_port()
    code = "from clearance.cli.commands.mcp import app; app(prog_name='clearance mcp')"
    argv = [sys.executable, "-c", code, "proxy", "--upstreams", str(mcp_json)]
    argv += ["--data-dir", str(mcp_runtime.data_dir), "--http", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"

    async def script() -> tuple[types.CallToolResult, types.CallToolResult]:
        async with connect(url, key, mcp_session.session_id) as client:
            ok = await client.call_tool("bank__read_account", {"account_id": "acc-1"})
            no = await client.call_tool("bank__delete_records", {"table": "payees"})
            return ok, no

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                anonymous = httpx.post(url, json=initialize_body(), headers=MCP_HEADERS)
                break
            except httpx.ConnectError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        ok, no = asyncio.run(script())
    finally:
        proc.terminate()
        proc.wait(30)
    assert anonymous.status_code == 401
    assert text(ok) == "acc-1: 120.00"
    assert "never-delete" in text(no)
    assert ledger_lines(ledger) == [{"tool": "read_account", "account_id": "acc-1"}]


def test_the_proxy_refuses_to_listen_beyond_loopback_unless_told(mcp_json: Path) -> None:
    from typer.testing import CliRunner

    from clearance.cli.commands.mcp import app

    result = CliRunner().invoke(
        app,
        ["proxy", "--upstreams", str(mcp_json), "--http", "0.0.0.0:8788"],
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "beyond this machine" in str(result.exception)


def test_modern_clients_listening_for_tool_changes_hear_of_a_downstream_change(
    mcp_runtime: Runtime, mcp_session: SessionHandle, mcp_json: Path, ledger: Path
) -> None:
    """2026-07-28 clients subscribe with subscriptions/listen instead of a standing stream."""
    key = agent_key(mcp_runtime)
    upstreams = load_upstreams(mcp_json)

    async def script(url: str) -> list[str]:
        async with connect(url, key, mcp_session.session_id, mode="auto") as client:
            async with client.listen(tools_list_changed=True) as events:
                await client.call_tool("bank__add_tool", {"name": "close_branch"})
                with anyio.fail_after(20):
                    await events.__anext__()
            return sorted(t.name for t in (await client.list_tools()).tools)

    with front(mcp_runtime, upstreams) as url:
        names = asyncio.run(script(url))
    assert "bank__close_branch" in names
