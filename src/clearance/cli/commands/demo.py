"""``clearance demo``: the FinanceApp story against a live local gate with its dashboard.

The story itself is in ``clearance.cli.showcase``; this command gives it a data directory, serves
the gate on 127.0.0.1, prints every decision and alert as it happens, and ends with a summary
table. It exits 1 unless every decision is the one the policy prescribes and the evidence
verifies, so CI can run it as a smoke test. ``--no-auto`` leaves the two approval decisions to you
in the dashboard (the address and a one-time operator password are printed).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clearance.cli.showcase import OUTCOME_STYLE, Live, prepare, run_live, story
from clearance.model.decision import Outcome

_out = Console(highlight=False, soft_wrap=True)

#: What the policy prescribes for each step of the story, in order.
EXPECTED = [
    ("read the balance", Outcome.PERMIT, "read-accounts"),
    ("injected transfer", Outcome.DENY, "scope"),
    ("read for the report", Outcome.PERMIT, "read-accounts"),
    ("fetch an injected URL", Outcome.APPROVAL, "breaker:unusual-sequence"),
    ("pay the invoice", Outcome.APPROVAL, "large-transfer"),
    ("resubmit with token", Outcome.PERMIT, None),
    ("replay the token", Outcome.DENY, "invalid-token"),
]


def _summary(live: Live) -> bool:
    """Print every decision beside what the policy prescribes; True when all match."""
    table = Table(title="clearance demo: every decision", title_justify="left")
    for column in ("step", "tool", "outcome", "rule", "as prescribed"):
        table.add_column(column)
    ok = len(live.steps) == len(EXPECTED)
    for step, (act, outcome, rule) in zip(live.steps, EXPECTED, strict=False):
        d = step.decision
        match = step.act == act and d.outcome is outcome and (rule is None or d.rule == rule)
        ok = ok and match
        style = OUTCOME_STYLE[d.outcome]
        table.add_row(
            step.act, step.tool, f"[{style}]{d.outcome.value}[/]", d.rule, "yes" if match else "NO"
        )
    _out.print()
    _out.print(table)
    _out.print(f"alerts sent: {len(live.alerts)}")
    return ok


def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", "-d", help="Keep the demo's data here (default: a temp dir)."),
    ] = None,
    auto: Annotated[
        bool,
        typer.Option("--auto/--no-auto", help="An operator decides the approvals (else: you)."),
    ] = True,
    port: Annotated[int, typer.Option(help="Port of the dashboard (0: any free port).")] = 0,
    wait: Annotated[
        float, typer.Option(help="With --no-auto: seconds to wait for each of your decisions.")
    ] = 300.0,
) -> None:
    """The FinanceApp story on a live gate: injection, breaker, approval, evidence."""
    with tempfile.TemporaryDirectory(prefix="clearance-demo-") as tmp:
        runtime = prepare(data_dir or Path(tmp) / ".clearance")
        try:
            live, story_ok = run_live(
                runtime, _out, port=port, act=lambda live: story(live, auto=auto, wait_s=wait)
            )
        finally:
            runtime.close()
    if not (_summary(live) and story_ok):
        _out.print("[red]the demo did not go as the policy says it must[/]")
        raise typer.Exit(1)
    _out.print("[green]every decision matched the policy and the evidence verified[/]")


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command()(demo)
