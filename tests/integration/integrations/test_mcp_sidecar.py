"""The HTTP front of the gateway deciding through a remote sidecar (``--http`` with ``--gate-url``).

Everything is real and on loopback: the sidecar (``clearance serve``'s app under uvicorn) in front
of the test runtime's gate, the gateway's streamable-HTTP front under uvicorn, the bank downstream
as a stdio subprocess, and an ``mcp`` client authenticating with the agent key.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp.types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from tests.integration.integrations.kit import (
    AGENT,
    approve,
    decisions_in_log,
    first_pending,
    outcomes_for,
)
from tests.integration.integrations.mcp_kit import (
    ledger,
    ledger_lines,
    mcp_json,
    mcp_runtime,
    mcp_session,
    serving,
    text,
)
from tests.integration.integrations.served import Sidecar, serve_sidecar
from typer.testing import CliRunner

from clearance.cli.commands.mcp import app as mcp_app
from clearance.cli.runtime import Runtime
from clearance.errors import ConfigError
from clearance.integrations.mapping import SessionHandle, approval_link
from clearance.integrations.mcp_admission import Admission
from clearance.integrations.mcp_content import REFUSED
from clearance.integrations.mcp_downstream import load_upstreams
from clearance.integrations.mcp_front import HTTPSessions, OneAgentKey, http_app
from clearance.integrations.mcp_gateway import Gateway
from clearance.integrations.sidecar import SidecarTransport

__all__ = ["ledger", "mcp_json", "mcp_runtime", "mcp_session"]  # fixtures

TRANSFER = {"amount": 5000.0, "to_account": "acc-2"}
WELCOME = "clearance://bank/bank://notices/welcome"
VAULT_CODES = "clearance://bank/bank://branch/vault-codes"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def sidecar(mcp_runtime: Runtime) -> Iterator[Sidecar]:
    with serve_sidecar(mcp_runtime) as served:
        yield served


@contextmanager
def front(
    gate_url: str, key: str, mcp_json: Path, *, agent_id: str = AGENT, wait_s: float = 0.0
) -> Iterator[str]:
    """The gateway's HTTP front asking the sidecar at ``gate_url``; yields its /mcp URL."""
    with SidecarTransport.connect(gate_url, api_key=key, poll_s=0.05) as transport:
        admission = Admission(
            transport, approval_url=approval_link(gate_url), approval_wait_s=wait_s
        )
        gw = Gateway(admission, HTTPSessions(None), load_upstreams(mcp_json))
        verifier = OneAgentKey(key, agent_id)
        with serving(lambda port: http_app(gw, verifier, host="127.0.0.1", port=port)) as port:
            yield f"http://127.0.0.1:{port}/mcp"


@asynccontextmanager
async def connect(url: str, key: str, session_id: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}", "Clearance-Session": session_id}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        yield client


async def refusal(request: Any) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await request
    return caught.value


def test_calls_and_reads_are_decided_by_the_sidecar_and_their_outcomes_recorded(
    mcp_runtime: Runtime,
    mcp_session: SessionHandle,
    mcp_json: Path,
    ledger: Path,
    sidecar: Sidecar,
) -> None:
    async def script(url: str) -> dict[str, Any]:
        async with connect(url, sidecar.agent_key, mcp_session.session_id) as client:
            return {
                "ok": await client.call_tool("bank__read_account", {"account_id": "acc-1"}),
                "deny": await client.call_tool("bank__delete_records", {"table": "payees"}),
                "scope": await client.call_tool("bank__audit_trail", {"account_id": "acc-1"}),
                "read": await client.read_resource(WELCOME),
                "staff": await refusal(client.read_resource(VAULT_CODES)),
            }

    with front(sidecar.base_url, sidecar.agent_key, mcp_json) as url:
        out = asyncio.run(script(url))
    assert text(out["ok"]) == "acc-1: 120.00"
    assert text(out["deny"]) == "denied by rule `never-delete`: the agent never deletes records"
    assert "denied by rule `scope`" in text(out["scope"])
    assert out["read"].contents[0].text == "Welcome to the bank."
    assert out["staff"].code == REFUSED
    assert out["staff"].message == "denied by rule `staff-only`: branch files are for staff"
    assert ledger_lines(ledger) == [
        {"tool": "read_account", "account_id": "acc-1"},
        {"resource": "bank://notices/welcome"},
    ]
    permits = [d for d in decisions_in_log(mcp_runtime) if d["outcome"] == "PERMIT"]
    assert len(permits) == 2
    for permit in permits:
        assert outcomes_for(mcp_runtime, permit["decision_id"])[0]["success"] is True


def test_an_approval_through_the_sidecar_names_the_dashboard_and_runs_once_approved(
    mcp_runtime: Runtime,
    mcp_session: SessionHandle,
    mcp_json: Path,
    ledger: Path,
    sidecar: Sidecar,
) -> None:
    async def script(url: str) -> list[types.CallToolResult]:
        async with connect(url, sidecar.agent_key, mcp_session.session_id) as client:
            pending = await client.call_tool("bank__transfer_funds", TRANSFER)
            approval_id = first_pending(mcp_runtime)
            assert approval_id is not None
            approve(mcp_runtime, approval_id)
            swapped = await client.call_tool(
                "bank__transfer_funds", {"amount": 9000.0, "to_account": "acc-6"}
            )
            approved = await client.call_tool("bank__transfer_funds", TRANSFER)
            return [pending, swapped, approved]

    with front(sidecar.base_url, sidecar.agent_key, mcp_json) as url:
        pending, swapped, approved = asyncio.run(script(url))
    assert pending.is_error
    assert f"pending at {sidecar.base_url}/approvals/apr_" in text(pending)
    assert "rule `large-transfer`" in text(pending)
    assert swapped.is_error
    assert "approval `apr_" in text(swapped)  # other arguments are another request
    assert not approved.is_error, text(approved)
    assert text(approved) == "sent 5000.0 to acc-2"
    assert ledger_lines(ledger) == [{"tool": "transfer_funds", **TRANSFER}]
    [redeemed] = [d for d in decisions_in_log(mcp_runtime) if d["outcome"] == "PERMIT"]
    assert outcomes_for(mcp_runtime, redeemed["decision_id"])[0]["success"] is True


def test_an_unreachable_sidecar_means_nothing_reaches_the_downstream(
    mcp_session: SessionHandle, mcp_json: Path, ledger: Path, sidecar: Sidecar
) -> None:
    dead_url = "http://127.0.0.1:9"  # discard port: nothing listens there

    async def script(url: str) -> tuple[types.CallToolResult, MCPError, MCPError]:
        async with connect(url, sidecar.agent_key, mcp_session.session_id) as client:
            call = await client.call_tool("bank__read_account", {"account_id": "acc-1"})
            read = await refusal(client.read_resource(WELCOME))
            prompt = await refusal(client.get_prompt("bank__summarize", {"account_id": "a"}))
            return call, read, prompt

    with front(dead_url, sidecar.agent_key, mcp_json) as url:
        call, read, prompt = asyncio.run(script(url))
    assert call.is_error
    assert "the gate could not be reached" in text(call)
    assert "the gate could not be reached" in read.message
    assert "the gate could not be reached" in prompt.message
    assert ledger_lines(ledger) == []


def test_callers_must_present_the_key_and_the_sidecar_refuses_other_agents_sessions(
    mcp_runtime: Runtime,
    mcp_session: SessionHandle,
    mcp_json: Path,
    ledger: Path,
    sidecar: Sidecar,
) -> None:
    other = mcp_runtime.gate.open_session(
        agent_id="other-agent", task="payments", environment="staging"
    )

    async def read_in(url: str, session_id: str) -> types.CallToolResult:
        async with connect(url, sidecar.agent_key, session_id) as client:
            return await client.call_tool("bank__read_account", {"account_id": "acc-1"})

    with front(sidecar.base_url, sidecar.agent_key, mcp_json) as url, httpx.Client() as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        statuses = [
            http.post(url, json=body, headers={**MCP_HEADERS, **auth}).status_code
            for auth in ({}, {"Authorization": "Bearer clr_agent_forged"})
        ]
        foreign = asyncio.run(read_in(url, other.session_id))
    with front(sidecar.base_url, sidecar.agent_key, mcp_json, agent_id="other-agent") as url:
        misnamed = asyncio.run(read_in(url, mcp_session.session_id))
    assert statuses == [401, 401]
    assert foreign.is_error
    assert "denied by rule `session`" in text(foreign)
    assert misnamed.is_error  # a key used under another agent's name gets no decision
    assert "another request" in text(misnamed)
    assert ledger_lines(ledger) == []


def test_clearance_mcp_proxy_serves_http_asking_the_sidecar(
    mcp_runtime: Runtime,
    mcp_session: SessionHandle,
    mcp_json: Path,
    ledger: Path,
    sidecar: Sidecar,
) -> None:
    port = free_port()
    code = "from clearance.cli.commands.mcp import app; app(prog_name='clearance mcp')"
    argv = [sys.executable, "-c", code, "proxy", "--upstreams", str(mcp_json)]
    argv += ["--http", f"127.0.0.1:{port}", "--gate-url", sidecar.base_url]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CLEARANCE_AGENT_KEY": sidecar.agent_key,
        "CLEARANCE_AGENT_ID": AGENT,
        "CLEARANCE_SESSION_ID": mcp_session.session_id,
    }
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, cwd=mcp_json.parent)
    url = f"http://127.0.0.1:{port}/mcp"

    async def script() -> list[types.CallToolResult]:
        headers = {"Authorization": f"Bearer {sidecar.agent_key}"}  # the default session
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as http,
            Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
        ):
            return [
                await client.call_tool("bank__read_account", {"account_id": "acc-1"}),
                await client.call_tool("bank__delete_records", {"table": "payees"}),
                await client.call_tool("bank__transfer_funds", TRANSFER),
            ]

    try:
        wait_until_listening(url, proc)
        ok, no, pending = asyncio.run(script())
    finally:
        proc.terminate()
        proc.wait(30)
    assert text(ok) == "acc-1: 120.00"
    assert "never-delete" in text(no)
    assert f"pending at {sidecar.base_url}/approvals/apr_" in text(pending)  # its dashboard
    assert ledger_lines(ledger) == [{"tool": "read_account", "account_id": "acc-1"}]
    permit = next(d for d in decisions_in_log(mcp_runtime) if d["outcome"] == "PERMIT")
    assert outcomes_for(mcp_runtime, permit["decision_id"])[0]["success"] is True


def test_the_http_front_asking_a_sidecar_needs_the_key_and_its_agent(
    mcp_json: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["proxy", "--upstreams", str(mcp_json), "--http", "127.0.0.1:1", "--gate-url"]
    argv.append("http://127.0.0.1:9")
    monkeypatch.delenv("CLEARANCE_AGENT_KEY", raising=False)
    monkeypatch.delenv("CLEARANCE_AGENT_ID", raising=False)
    no_key = CliRunner().invoke(mcp_app, argv)
    monkeypatch.setenv("CLEARANCE_AGENT_KEY", "clr_agent_something")
    no_agent = CliRunner().invoke(mcp_app, argv)
    assert isinstance(no_key.exception, ConfigError)
    assert "CLEARANCE_AGENT_KEY" in str(no_key.exception)
    assert isinstance(no_agent.exception, ConfigError)
    assert "CLEARANCE_AGENT_ID" in str(no_agent.exception)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_listening(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.post(url, json={}, headers=MCP_HEADERS)
            return
        except httpx.ConnectError:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.2)
