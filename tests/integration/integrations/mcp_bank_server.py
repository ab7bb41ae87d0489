"""A tiny downstream MCP server for the gateway tests: over stdio as its own process, or over
streamable HTTP in the test process (``bank_server(...).streamable_http_app()``).

Each tool appends to a ledger file before answering, so a test can prove a call never reached it.
``add_tool`` registers a new tool and tells connected clients that the tool list changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer


class StaticToken:
    """The HTTP bank accepts one bearer token (what the gateway's `headers` must send)."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def verify_token(self, token: str) -> AccessToken | None:
        if token != self.token:
            return None
        return AccessToken(token=token, client_id="gateway", scopes=[])


def bank_server(ledger: Path, *, token: str | None = None) -> MCPServer:
    auth = (
        AuthSettings(issuer_url="http://127.0.0.1", resource_server_url=None)
        if token is not None
        else None
    )
    bank = MCPServer(
        "bank", token_verifier=StaticToken(token) if token is not None else None, auth=auth
    )

    def record(entry: dict[str, object]) -> None:
        with ledger.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    @bank.tool()
    def read_account(account_id: str) -> str:
        """Read a balance."""
        record({"tool": "read_account", "account_id": account_id})
        return f"{account_id}: 120.00"

    @bank.tool()
    def transfer_funds(amount: float, to_account: str) -> str:
        """Move money."""
        record({"tool": "transfer_funds", "amount": amount, "to_account": to_account})
        return f"sent {amount} to {to_account}"

    @bank.tool()
    def delete_records(table: str) -> str:
        """Delete everything."""
        record({"tool": "delete_records", "table": table})
        return "deleted"

    @bank.tool()
    def audit_trail(account_id: str) -> str:
        """Not granted to the test session's task."""
        record({"tool": "audit_trail", "account_id": account_id})
        return "trail"

    @bank.tool()
    async def add_tool(name: str, ctx: Context) -> str:
        """Offer one more tool (it records its calls like the others)."""
        record({"tool": "add_tool", "name": name})

        def added(note: str = "") -> str:
            record({"tool": name, "note": note})
            return f"{name} ran"

        bank.add_tool(added, name=name, description=f"added at runtime: {name}")
        await ctx.session.send_tool_list_changed()  # what handshake-era servers send
        return f"added {name}"

    return bank


if __name__ == "__main__":
    bank_server(Path(os.environ["BANK_LEDGER"])).run(transport="stdio")
