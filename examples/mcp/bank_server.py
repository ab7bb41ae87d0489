"""The downstream MCP server of the example: a toy bank over stdio that logs every request it gets.

Its ledger (``BANK_LEDGER``) is how the example proves that a denied call or read never reached
it. Besides tools it offers resources: account statements (``bank://statements/{account_id}``) and
a staff-only file (``bank://branch/vault-codes``).
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


@bank.resource("bank://statements/{account_id}", description="An account's statement.")
def statement(account_id: str) -> str:
    """The statement of one account."""
    _record({"resource": f"bank://statements/{account_id}"})
    return f"Statement of {account_id}: opening 100.00, closing 120.00."


@bank.resource("bank://branch/vault-codes", description="Staff only.")
def vault_codes() -> str:
    """What no agent should read."""
    _record({"resource": "bank://branch/vault-codes"})
    return "vault code 4711"


if __name__ == "__main__":
    bank.run(transport="stdio")
