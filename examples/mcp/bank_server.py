"""The downstream MCP server of the example: a toy bank over stdio that logs every call it gets.

Its ledger (``BANK_LEDGER``) is how the example proves that a denied call never reached it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer

bank = MCPServer("bank")
LEDGER = Path(os.environ.get("BANK_LEDGER", "bank-ledger.jsonl"))


def _record(entry: dict[str, object]) -> None:
    with LEDGER.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


@bank.tool()
def read_account(account_id: str) -> str:
    """Read a balance."""
    _record({"tool": "read_account", "account_id": account_id})
    return f"{account_id}: 120.00"


@bank.tool()
def transfer_funds(amount: float, to_account: str) -> str:
    """Move money."""
    _record({"tool": "transfer_funds", "amount": amount, "to_account": to_account})
    return f"sent {amount:.2f} to {to_account}"


@bank.tool()
def delete_records(table: str) -> str:
    """Delete a table's records."""
    _record({"tool": "delete_records", "table": table})
    return "deleted"


if __name__ == "__main__":
    bank.run(transport="stdio")
