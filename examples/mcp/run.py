"""The MCP gateway example, offline: an MCP client talks to ``clearance mcp proxy`` over stdio,
which fronts a toy bank MCP server. Run it with ``python examples/mcp/run.py``.

1. The client lists tools (namespaced ``bank__*``, filtered by the session's task) and reads a
   balance: PERMIT, the bank answers.
2. It tries ``bank__delete_records``: a tool error naming rule ``never-delete``; the bank's ledger
   shows the call never reached it.
3. It asks for a $5,000 transfer: a tool error with the approval id. An operator approves in
   clearance (here through the approval service, as the dashboard would); the client retries the
   identical call and it runs once.
4. It reads a statement through the gateway (``clearance://bank/bank://statements/acc-1``:
   PERMIT, the bank answers) and tries the bank's staff-only file: refused with rule
   ``staff-only``, and the bank's ledger shows it never read it.
5. The audit shard is verified offline with only the public key.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from clearance.approvals import Operator
from clearance.cli.runtime import create_keys, key_paths, open_runtime, store_url_for
from clearance.gate.config import GateConfig
from clearance.policy import load_policy
from clearance.store import open_store

HERE = Path(__file__).resolve().parent
AGENT = "payments-agent"
APPROVAL_ID = re.compile(r"approval `(apr_[A-Za-z0-9_]+)`")


@dataclass
class Outcome:
    """What happened, for the reader and for the example's test."""

    tools: list[str] = field(default_factory=list)
    results: list[tuple[str, bool, str]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    reads: list[tuple[str, bool, str]] = field(default_factory=list)
    resources_read: list[str] = field(default_factory=list)
    verified: bool = False


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def _prepare(data_dir: Path) -> str:
    """A data directory with the example policy active and a session for the agent."""
    create_keys(data_dir, GateConfig().deployment)
    open_store(store_url_for(data_dir, None)).close()
    runtime = open_runtime(data_dir, require_policy=False)
    try:
        runtime.gate.activate(load_policy(HERE / "policy.yaml"), by="mcp example")
        session = runtime.gate.open_session(agent_id=AGENT, task="payments", environment="staging")
    finally:
        runtime.close()
    return session.session_id


def _approve(data_dir: Path, approval_id: str) -> None:
    """The operator's side (the dashboard does the same): approve through the approval service.

    This process writes its own audit shard (replica ``operator``): the gateway process holds the
    ``node`` shard, and two writers never share one.
    """
    runtime = open_runtime(data_dir, replica_id="operator")
    try:
        runtime.approvals.approve(
            approval_id, Operator(id="op-alice"), runtime.gate.clock.now(), comment="checked"
        )
    finally:
        runtime.close()


async def _client(front: StdioServerParameters, data_dir: Path, out: Outcome) -> None:
    async with Client(front) as client:
        out.tools = sorted(t.name for t in (await client.list_tools()).tools)
        for name, args in (
            ("bank__read_account", {"account_id": "acc-1"}),
            ("bank__delete_records", {"table": "payees"}),
        ):
            result = await client.call_tool(name, args)
            out.results.append((name, bool(result.is_error), _text(result)))
        transfer = {"amount": 5000.0, "to_account": "acc-2"}
        pending = await client.call_tool("bank__transfer_funds", transfer)
        out.results.append(("bank__transfer_funds", bool(pending.is_error), _text(pending)))
        found = APPROVAL_ID.search(_text(pending))
        if found is None:
            return
        await asyncio.to_thread(_approve, data_dir, found.group(1))
        done = await client.call_tool("bank__transfer_funds", transfer)  # the identical call
        out.results.append(("bank__transfer_funds", bool(done.is_error), _text(done)))
        for uri in (
            "clearance://bank/bank://statements/acc-1",
            "clearance://bank/bank://branch/vault-codes",
        ):
            out.reads.append(await _read(client, uri))


async def _read(client: Client, uri: str) -> tuple[str, bool, str]:
    """``(uri, refused, text)`` of one resource read through the gateway."""
    try:
        result = await client.read_resource(uri)
    except MCPError as refused:  # a refused read is a JSON-RPC error naming the rule
        return uri, True, refused.message
    return uri, False, " ".join(getattr(c, "text", "") for c in result.contents)


def run(data_dir: Path) -> Outcome:
    """Play the example in ``data_dir``; return what happened."""
    session_id = _prepare(data_dir)
    ledger = data_dir / "bank-ledger.jsonl"
    upstreams = data_dir / "mcp.json"
    upstreams.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "bank": {
                        "command": sys.executable,
                        "args": [str(HERE / "bank_server.py")],
                        "env": {"BANK_LEDGER": str(ledger)},
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    front = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "clearance",
            "mcp",
            "proxy",
            "--upstreams",
            str(upstreams),
            "--data-dir",
            str(data_dir),
        ],
        env={
            "CLEARANCE_AGENT_ID": AGENT,
            "CLEARANCE_SESSION_ID": session_id,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        },
    )
    out = Outcome()
    asyncio.run(_client(front, data_dir, out))
    if ledger.exists():
        entries = [json.loads(line) for line in ledger.read_text("utf-8").splitlines()]
        out.ledger = [e for e in entries if "tool" in e]
        out.resources_read = [e["resource"] for e in entries if "resource" in e]
    vkey = key_paths(data_dir)[2].read_text("utf-8").strip()
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "clearance.audit.verify",
            "log",
            "--key",
            vkey,
            str(data_dir / "audit.db"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    out.verified = check.returncode == 0
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="clearance-mcp-") as tmp:
        out = run(Path(tmp) / ".clearance")
    print("tools offered:", ", ".join(out.tools))
    for name, is_error, text in out.results:
        print(f"{'ERROR' if is_error else 'ok   '} {name}: {text}")
    print("calls the bank received:", [e["tool"] for e in out.ledger])
    for uri, refused, text in out.reads:
        print(f"{'ERROR' if refused else 'ok   '} read {uri}: {text}")
    print("resources the bank served:", out.resources_read)
    print("audit log verified offline:", out.verified)


if __name__ == "__main__":
    main()
