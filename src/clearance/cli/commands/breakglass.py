"""``clearance breakglass``: open, close and list signed, time-bounded overrides.

::

    clearance breakglass open --operator alice --tool refund --tier write-limited \
        --minutes 30 --reason "INC-88: refunds stuck behind a broken rule"
    clearance breakglass list --operator alice [--all]
    clearance breakglass close bg_01J... --operator alice

Only operators and scopes the policy's ``breakglass:`` section allows are accepted; every open,
use and close is an audit entry of kind ``breakglass`` and an alert. An emergency stop is never
overridden.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clearance.approvals.breakglass import ANY, Scope
from clearance.cli.commands.approvals import AsJson, DataDir, OperatorId, StoreURL, cli_operator
from clearance.cli.runtime import DEFAULT_DATA_DIR, open_runtime
from clearance.model.tools import RiskTier

app = typer.Typer(no_args_is_help=True, add_completion=False)

_out = Console(highlight=False, soft_wrap=True)


@app.command("open")
def open_(
    operator: OperatorId,
    reason: Annotated[str, typer.Option(help="What is broken and why (an incident id helps).")],
    tier: Annotated[list[str], typer.Option(help="Risk tier(s) the override covers.")],
    minutes: Annotated[
        int, typer.Option(min=1, help="How long it lasts (at most the policy's max).")
    ],
    tool: Annotated[str, typer.Option(help="Tool name, or * for any the policy allows.")] = ANY,
    agent: Annotated[str, typer.Option(help="Agent id, or * for any.")] = ANY,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Open a break-glass override."""
    scope = Scope(agent=agent, tool=tool, tiers=frozenset(RiskTier(t) for t in tier))
    rt = open_runtime(data_dir, store_url=store)
    try:
        row = rt.breakglass.open(
            cli_operator(operator),
            reason=reason,
            scope=scope,
            duration=timedelta(minutes=minutes),
            now=rt.gate.clock.now(),
        )
    finally:
        rt.close()
    _out.print(f"opened {row.override_id} until {row.expires_at}", markup=False)


@app.command()
def close(
    override_id: str,
    operator: OperatorId,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Close an override before its deadline."""
    rt = open_runtime(data_dir, store_url=store)
    try:
        rt.breakglass.close(override_id, cli_operator(operator), rt.gate.clock.now())
    finally:
        rt.close()
    _out.print(f"closed {override_id}", markup=False)


@app.command("list")
def list_(
    operator: OperatorId,
    show_all: Annotated[
        bool, typer.Option("--all", help="Include closed and expired ones.")
    ] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
    as_json: AsJson = False,
) -> None:
    """List overrides in force (or all of them)."""
    rt = open_runtime(data_dir, store_url=store)
    try:
        rows = rt.breakglass.list(
            cli_operator(operator), rt.gate.clock.now(), active_only=not show_all
        )
    finally:
        rt.close()
    if as_json:
        data = [
            {
                "override_id": r.override_id,
                "operator": r.operator_id,
                "reason": r.reason,
                "scope": r.scope,
                "opened_at": r.opened_at,
                "expires_at": r.expires_at,
                "closed_at": r.closed_at,
                "uses": r.uses,
            }
            for r in rows
        ]
        _out.print(json.dumps(data, indent=2), markup=False)
        return
    table = Table("id", "operator", "scope", "expires", "closed", "uses", "reason")
    for r in rows:
        scope = f"{r.scope['agent']}/{r.scope['tool']}/{','.join(r.scope['tiers'])}"
        table.add_row(
            r.override_id,
            r.operator_id,
            scope,
            r.expires_at,
            r.closed_at or "-",
            str(r.uses),
            r.reason,
        )
    _out.print(table)
