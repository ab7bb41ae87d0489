"""A tiny downstream MCP server for the gateway tests, run over stdio as its own process.

Each tool appends to the ledger file named by ``BANK_LEDGER`` before answering, so a test can
prove a call never reached it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer

bank = MCPServer("bank")


def _ledger(entry: dict[str, object]) -> None:
    with Path(os.environ["BANK_LEDGER"]).open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


@bank.tool()
def read_account(account_id: str) -> str:
    """Read a balance."""
    _ledger({"tool": "read_account", "account_id": account_id})
    return f"{account_id}: 120.00"


@bank.tool()
def transfer_funds(amount: float, to_account: str) -> str:
    """Move money."""
    _ledger({"tool": "transfer_funds", "amount": amount, "to_account": to_account})
    return f"sent {amount} to {to_account}"


@bank.tool()
def delete_records(table: str) -> str:
    """Delete everything."""
    _ledger({"tool": "delete_records", "table": table})
    return "deleted"


@bank.tool()
def audit_trail(account_id: str) -> str:
    """Not granted to the test session's task."""
    _ledger({"tool": "audit_trail", "account_id": account_id})
    return "trail"


if __name__ == "__main__":
    bank.run(transport="stdio")
