"""``clearance redteam POLICY``: attack a policy in process and fail when anything forbidden passed.

The policy is loaded and compiled, the attack suite generated from it
(``clearance.policy.redteam``), and every case decided by a real gate composed as ``clearance
serve`` composes one (``open_runtime``: SQLite store, audit log, approvals, break-glass, decay,
session taint, kill switch and breakers) in a temporary data directory deleted afterwards. The stateful attacks
(``clearance.gate.redteam``) run on the same gate.

Exit codes: 0 when no case got a forbidden outcome, 1 when one did (the report lists each), the
usual policy-error codes when the policy does not load. ``--json`` and ``--junit`` write the full
report; the JUnit file has one failing test case per forbidden outcome, for CI test reporting.

There is no ``--url`` mode: attacking a running gate over HTTP needs an orchestrator key to open
sessions in every task and environment, an operator login to approve and to halt, and one agent
key per attack to keep the per-agent breakers from hiding cases - a deployment's credentials the
command should not hold. Run it in CI against the policy file instead.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clearance.cli.runtime import create_keys, open_runtime, store_url_for
from clearance.gate.config import GateConfig
from clearance.gate.redteam import Report, Result, Target, run_redteam
from clearance.policy.bundle import Bundle
from clearance.policy.load import load_policy
from clearance.policy.redteam import generate
from clearance.store import open_store

_out = Console(highlight=False, soft_wrap=True)


@contextmanager
def redteam_target(bundle: Bundle, data_dir: Path) -> Iterator[Target]:
    """A gate on a fresh data directory with ``bundle`` active, composed by ``open_runtime``.

    That is the composition every command and ``clearance serve`` use: store, audit log,
    approvals, break-glass, decay, session taint and the control plane.
    """
    create_keys(data_dir, GateConfig().deployment)
    open_store(store_url_for(data_dir, None)).close()
    runtime = open_runtime(data_dir, require_policy=False)
    try:
        runtime.gate.activate(bundle, by="clearance redteam")
        yield Target(
            gate=runtime.gate,
            approvals=runtime.approvals,
            killswitch=runtime.control.killswitch,
        )
    finally:
        runtime.close()


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the gate's own logs for the run: attacks make it fail closed on purpose (a NaN
    argument is a logged SILENCE), and the report already shows every such answer."""
    logger = logging.getLogger("clearance")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def attack(bundle: Bundle, *, show_progress: bool = True) -> Report:
    """Generate the suite for ``bundle``, run it on a throw-away gate, return the report."""
    with _quiet():
        return _attack(bundle, show_progress=show_progress)


def _attack(bundle: Bundle, *, show_progress: bool) -> Report:
    started = time.perf_counter()
    suite = generate(bundle.compiled)
    generation_s = time.perf_counter() - started
    with (
        tempfile.TemporaryDirectory(prefix="clearance-redteam-") as tmp,
        redteam_target(bundle, Path(tmp)) as target,
    ):
        if not show_progress:
            return run_redteam(target, suite, generation_s=generation_s)
        with Progress(
            TextColumn("[bold]red team[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task("", total=None)

            def start(total: int) -> None:
                bar.update(task, total=total)

            def advance(count: int, category: str) -> None:
                bar.update(task, advance=count, description=category)

            return run_redteam(
                target, suite, generation_s=generation_s, progress=advance, on_start=start
            )


def _print(report: Report, limit: int) -> None:
    table = Table(title=f"red team: {report.policy} {report.version}", title_justify="left")
    table.add_column("category")
    table.add_column("cases", justify="right")
    table.add_column("forbidden outcomes", justify="right")
    table.add_column("deviations", justify="right")
    for category, run, bad, deviations in report.by_category():
        style = "red" if bad else ""
        table.add_row(category, str(run), f"[{style}]{bad}[/]" if style else "0", str(deviations))
    _out.print(table)
    for result in report.violations[:limit]:
        _print_violation(result)
    if len(report.violations) > limit:
        _out.print(f"... and {len(report.violations) - limit} more (see --json)", markup=False)
    if report.shadow:
        _out.print(
            "note: the policy (or a tool) is in shadow mode: the gate lets every call through; "
            "the outcomes judged here are the ones it would enforce",
            markup=False,
        )
    if report.unreached_rules:
        _out.print(
            "note: no generated case reached rule(s) "
            + ", ".join(f"`{r}`" for r in report.unreached_rules),
            markup=False,
        )
    skipped = len(report.skipped)
    _out.print(
        f"generated {report.generated} cases in {report.generation_s:.2f} s "
        f"({report.rate(report.generated, report.generation_s):,.0f} cases/s); "
        f"ran {len(report.results)} cases in {report.run_s:.2f} s "
        f"({report.rate(len(report.results), report.run_s):,.0f} cases/s)"
        + (f"; {skipped} stateful steps skipped" if skipped else ""),
        markup=False,
    )
    verdict = (
        "[green]clean[/]: no case got a forbidden outcome"
        if report.passed
        else f"[red]FAILED[/]: {len(report.permitted)} permitted when forbidden, "
        f"{len(report.violations) - len(report.permitted)} other forbidden outcomes"
    )
    _out.print(f"{verdict}; {len(report.deviations)} deviations from the policy's own answer")


def _print_violation(result: Result) -> None:
    _out.print(
        f"[red]FORBIDDEN[/] {result.id}: {result.title}",
        highlight=False,
    )
    _out.print(
        f"    got {result.outcome} ({result.rule}): {result.reason}\n"
        f"    expected {result.expect.text}",
        markup=False,
    )


def redteam(
    policy: Annotated[Path, typer.Argument(metavar="POLICY", help="The policy file to attack.")],
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the full report as JSON to this file.")
    ] = None,
    junit_file: Annotated[
        Path | None, typer.Option("--junit", help="Write a JUnit XML report to this file.")
    ] = None,
    show: Annotated[
        int, typer.Option("--show", help="How many forbidden outcomes to print.", min=0)
    ] = 20,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar (stderr).")
    ] = True,
) -> None:
    """Attack POLICY in process; exit 1 if any case got an outcome the policy forbids.

    The attacks come from the policy itself: tools outside each task, every
    parameter bound, confusables, URL and path tricks, destructive tools,
    authority claims, tainted sessions; then missing, replayed and swapped
    approval tokens, halts and reused idempotency keys, all against a real
    gate on a temporary store. See docs/redteam.md.
    """
    bundle = load_policy(policy)
    report = attack(bundle, show_progress=progress)
    if json_file is not None:
        json_file.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    if junit_file is not None:
        junit_file.write_text(report.to_junit(), encoding="utf-8")
    _print(report, show)
    if not report.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``redteam`` to the top-level command."""
    app.command("redteam")(redteam)
