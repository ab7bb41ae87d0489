"""Shared parts of the MCP tests: the policy, a real gate, the bank downstream, uvicorn on loopback.

Everything is real: the gate and its store, the downstream MCP server (a subprocess over stdio or
an HTTP app served by uvicorn on an ephemeral loopback port) and the MCP clients.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest
import uvicorn
from starlette.types import ASGIApp
from tests.integration.integrations.kit import AGENT, init_data_dir

from clearance.cli.runtime import Runtime, open_runtime
from clearance.gate.clock import SystemClock
from clearance.integrations.mapping import SessionHandle
from clearance.server.identity import IdentityService
from clearance.store.identity_sql import identity_store

MCP_POLICY = """\
version: "1"
name: mcp-test
default: deny
tools:
  bank__read_account:
    tier: read-only
    params:
      account_id: {type: string, required: true}
  bank__transfer_funds:
    tier: write-limited
    params:
      amount: {type: number, required: true, min: 0.01, max: 1000000}
      to_account: {type: string, required: true}
  bank__delete_records:
    tier: destructive
    params:
      table: {type: string, required: true}
  bank__audit_trail:
    tier: read-only
    params:
      account_id: {type: string, required: true}
  bank__add_tool:
    tier: write-limited
    params:
      name: {type: string, required: true}
  bank__close_branch:
    tier: write-limited
    params:
      note: {type: string}
  bank__add_notice:
    tier: write-limited
    params:
      name: {type: string, required: true}
  bank__touch:
    tier: read-only
    params:
      uri: {type: string, required: true}
  "bank:resources":
    tier: read-only
    untrusted_source: true
    params:
      uri: {type: string, required: true, max_length: 512}
  "bank:prompts":
    tier: read-only
    params:
      name: {type: string, required: true}
      arguments: {type: object}
  "vault:resources":
    tier: read-only
    params:
      uri: {type: string, required: true}
tasks:
  payments:
    tools: [bank__read_account, bank__transfer_funds, bank__delete_records, bank__add_tool,
            bank__close_branch, bank__add_notice, bank__touch, "bank:resources", "bank:prompts"]
environments:
  staging: {}
  production: {}
approvals:
  timeout: 15m
  groups:
    finance: [op-alice]
  default_group: finance
rules:
  - id: reads
    tools: [bank__read_account, bank__audit_trail]
    outcome: permit
    reason: reads are harmless
  - id: small-transfer
    tools: [bank__transfer_funds]
    when: args.amount <= 1000.0
    outcome: permit
    reason: small transfers
  - id: large-transfer
    tools: [bank__transfer_funds]
    when: args.amount > 1000.0
    outcome: approval
    reason: transfers above 1000 need a human
  - id: never-delete
    tools: [bank__delete_records]
    outcome: deny
    reason: the agent never deletes records
  - id: branch-admin
    tools: [bank__add_tool, bank__close_branch, bank__add_notice, bank__touch]
    outcome: permit
    reason: branch administration
  - id: customer-resources
    tools: ["bank:resources"]
    when: request.target.startsWith("bank://accounts/") || request.target.startsWith("bank://notices/")
    outcome: permit
    reason: statements and notices are for customers
  - id: staff-only
    tools: ["bank:resources"]
    when: request.target.startsWith("bank://branch/")
    outcome: deny
    reason: branch files are for staff
  - id: customer-prompts
    tools: ["bank:prompts"]
    when: args.name == "summarize" || args.name.startsWith("explain_")
    outcome: permit
    reason: summaries are harmless
  - id: no-sweeping
    tools: ["bank:prompts"]
    when: args.name == "wire_everything"
    outcome: approval
    reason: a prompt that moves every balance needs a human
"""

SERVER_SCRIPT = Path(__file__).with_name("mcp_bank_server.py")
DASHBOARD = "http://127.0.0.1:8787"


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.jsonl"
    path.touch()
    return path


def stdio_entry(ledger: Path) -> dict[str, Any]:
    """The ``mcpServers`` entry that starts the bank as a stdio subprocess."""
    return {
        "command": sys.executable,
        "args": [str(SERVER_SCRIPT)],
        "env": {"BANK_LEDGER": str(ledger)},
    }


def write_mcp_json(path: Path, servers: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}), "utf-8")
    return path


@pytest.fixture
def mcp_json(tmp_path: Path, ledger: Path) -> Path:
    return write_mcp_json(tmp_path / "mcp.json", {"bank": stdio_entry(ledger)})


@pytest.fixture
def mcp_runtime(tmp_path: Path) -> Iterator[Runtime]:
    data = tmp_path / "mcpdata"
    init_data_dir(data, MCP_POLICY)
    rt = open_runtime(data, clock=SystemClock())
    yield rt
    rt.close()


@pytest.fixture
def mcp_session(mcp_runtime: Runtime) -> SessionHandle:
    s = mcp_runtime.gate.open_session(agent_id=AGENT, task="payments", environment="staging")
    return SessionHandle(agent_id=s.agent_id, session_id=s.session_id)


def agent_key(runtime: Runtime, agent_id: str = AGENT, environment: str = "staging") -> str:
    """Register ``agent_id`` (once) and mint a key for it in the sidecar's identity store."""
    identity = IdentityService(identity_store(runtime.store), runtime.gate.clock)
    if identity.records.get_agent(agent_id) is None:
        identity.register_agent(
            agent_id, environment=environment, description="test agent", created_by="test"
        )
    return identity.create_agent_key(agent_id, created_by="test").secret


def ledger_lines(ledger: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ledger.read_text("utf-8").splitlines()]


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@contextmanager
def serving(make_app: Callable[[int], ASGIApp]) -> Iterator[int]:
    """Serve ``make_app(port)`` with uvicorn on an ephemeral loopback port; yield the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(make_app(port), log_level="warning", lifespan="on", ws="none")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
