"""``clearance approvals``: decide pending approval requests from the command line.

::

    clearance approvals list --operator alice
    clearance approvals show apr_01J... --operator alice
    clearance approvals approve apr_01J... [apr_01K... ...] --operator alice --comment "invoice checked"
    clearance approvals deny apr_01J... --operator bob --comment "wrong vendor"
    clearance approvals explain apr_01J... "which invoice is this for?" --operator carol

Whoever can run this command on the gate host can read its keys, so the CLI acts as the named
operator with the approver role; group membership, self-approval and the two-approver rule are
still enforced from the active policy. Several ids to ``approve`` or ``deny`` are decided as one
batch: all of them or none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from clearance.approvals.rules import ROLE_APPROVER, ROLE_BREAKGLASS, Operator
from clearance.approvals.service import ApprovalView
from clearance.cli.runtime import DEFAULT_DATA_DIR, Runtime, open_runtime

app = typer.Typer(no_args_is_help=True, add_completion=False)

DataDir = Annotated[Path, typer.Option("--data-dir", "-d", help="The gate's data directory.")]
StoreURL = Annotated[
    str | None,
    typer.Option("--store", help="Store URL; default: the data dir's SQLite file."),
]
OperatorId = Annotated[
    str, typer.Option("--operator", "-o", help="Who is deciding (an operator id).")
]
Comment = Annotated[str | None, typer.Option("--comment", "-m", help="Reason shown to the agent.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

_out = Console(highlight=False, soft_wrap=True)


def cli_operator(operator_id: str) -> Operator:
    """The operator the CLI acts as: approver and break-glass roles, groups from the policy."""
    return Operator(operator_id, roles=frozenset({ROLE_APPROVER, ROLE_BREAKGLASS}))


def _runtime(data_dir: Path, store: str | None) -> Runtime:
    return open_runtime(data_dir, store_url=store)


def view_dict(view: ApprovalView) -> dict[str, Any]:
    """An approval as JSON: the masked request, context, votes and messages."""
    row = view.row
    return {
        "approval_id": row.approval_id,
        "state": row.state,
        "summary": row.summary,
        "agent_id": row.agent_id,
        "tool": row.tool,
        "action": row.action,
        "request": row.request,
        "request_digest": row.request_digest,
        "rule": row.rule,
        "reason": row.reason,
        "tier": row.tier,
        "required": row.required,
        "group": row.approver_group,
        "context": row.context,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "votes": [
            {"operator": v.operator_id, "vote": v.vote, "comment": v.comment, "at": v.at}
            for v in view.votes
        ],
        "messages": [
            {"author": m.author, "kind": m.kind, "body": m.body, "at": m.at} for m in view.messages
        ],
    }


def _print_view(view: ApprovalView) -> None:
    row = view.row
    _out.print(f"{row.approval_id}  [{row.state}]  {row.summary}", markup=False)
    _out.print(
        f"  agent {row.agent_id}  tool {row.tool}.{row.action}  tier {row.tier or '-'}",
        markup=False,
    )
    _out.print(f"  rule {row.rule}: {row.reason}", markup=False)
    approvals = len(view.approvers)
    _out.print(
        f"  approvals {approvals}/{row.required}  group {row.approver_group or 'any'}  expires {row.expires_at}",
        markup=False,
    )


@app.command("list")
def list_(
    operator: OperatorId,
    agent: Annotated[str | None, typer.Option(help="Only this agent's requests.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
    as_json: AsJson = False,
) -> None:
    """List pending approval requests, oldest first (expiring overdue ones as DENY)."""
    rt = _runtime(data_dir, store)
    try:
        views = rt.approvals.list_pending(
            cli_operator(operator), rt.gate.clock.now(), agent_id=agent
        )
    finally:
        rt.close()
    if as_json:
        _out.print(json.dumps([view_dict(v) for v in views], indent=2), markup=False)
        return
    table = Table("id", "agent", "tool", "tier", "approvals", "expires", "summary")
    for v in views:
        table.add_row(
            v.row.approval_id,
            v.row.agent_id,
            v.row.tool,
            v.row.tier or "-",
            f"{len(v.approvers)}/{v.row.required}",
            v.row.expires_at,
            v.row.summary,
        )
    _out.print(table)


@app.command()
def show(
    approval_id: str,
    operator: OperatorId,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Show one request with its masked arguments, context, votes and questions (JSON)."""
    rt = _runtime(data_dir, store)
    try:
        view = rt.approvals.show(approval_id, cli_operator(operator))
    finally:
        rt.close()
    _out.print(json.dumps(view_dict(view), indent=2), markup=False)


def _vote(
    vote: Literal["approve", "deny"],
    approval_ids: list[str],
    operator: str,
    comment: str | None,
    data_dir: Path,
    store: str | None,
) -> None:
    """One vote on one request, or an all-or-nothing batch vote on several."""
    rt = _runtime(data_dir, store)
    op, now = cli_operator(operator), rt.gate.clock.now()
    service = rt.approvals
    try:
        if len(approval_ids) == 1:
            single = service.approve if vote == "approve" else service.deny
            views = [single(approval_ids[0], op, now, comment=comment)]
        else:
            batch = service.approve_batch if vote == "approve" else service.deny_batch
            views = batch(approval_ids, op, now)
    finally:
        rt.close()
    for view in views:
        _print_view(view)


@app.command()
def approve(
    approval_ids: Annotated[
        list[str], typer.Argument(help="One id, or several to approve as a batch.")
    ],
    operator: OperatorId,
    comment: Comment = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Approve requests; critical ones need a second, different approver."""
    _vote("approve", approval_ids, operator, comment, data_dir, store)


@app.command()
def deny(
    approval_ids: Annotated[
        list[str], typer.Argument(help="One id, or several to deny as a batch.")
    ],
    operator: OperatorId,
    comment: Comment = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Deny requests; the comment is returned to the agent."""
    _vote("deny", approval_ids, operator, comment, data_dir, store)


@app.command()
def explain(
    approval_id: str,
    question: str,
    operator: OperatorId,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Ask the agent to explain; the request stays pending."""
    rt = _runtime(data_dir, store)
    try:
        view = rt.approvals.explain(
            approval_id, cli_operator(operator), question, rt.gate.clock.now()
        )
    finally:
        rt.close()
    _print_view(view)


@app.command()
def fatigue(
    days: Annotated[int, typer.Option("--days", min=1, help="Period to analyse.")] = 30,
    fmt: Annotated[Literal["md", "json"], typer.Option("--format", help="md or json.")] = "md",
    alert: Annotated[
        bool,
        typer.Option("--alert", help="Send a warning per flagged approver to the alert sinks."),
    ] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Approval fatigue: per approver and rule, approve rate, time to decide, failures after.

    Flags approvers who decide in seconds or approve every high-risk request, and rules whose
    low-risk requests are nearly always approved (candidates for batching or decay). Exits 1 when
    an approver is flagged, so a scheduled job can page on it.
    """
    from datetime import timedelta

    from clearance.control.alerts import AlertRouter, AlertSettings
    from clearance.gate.fatigue import fatigue_alerts, fatigue_markdown, fatigue_since

    rt = open_runtime(data_dir, store_url=store, require_policy=False)
    try:
        until = rt.gate.clock.now()
        since = until - timedelta(days=days)
        report = fatigue_since(rt.approvals.store, rt.audit_storage, since=since)
        if alert:
            router = AlertRouter(AlertSettings.load(rt.store).sinks())
            for a in fatigue_alerts(report, until):
                router.send(a)
            router.close(timeout=5.0)
    finally:
        rt.close()
    if fmt == "json":
        body = {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "approvers": [s.to_json() for s in report.approvers.values()],
            "rules": [s.to_json() for s in report.rules.values()],
            "flagged": report.flagged,
        }
        _out.print(json.dumps(body, indent=2), markup=False)
    else:
        _out.print(
            fatigue_markdown(report, since=since.isoformat(), until=until.isoformat()), markup=False
        )
    if report.flagged:
        raise typer.Exit(1)
