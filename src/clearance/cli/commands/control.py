"""``clearance kill|drain|resume|status|drill|doctor|alerts``: the kill switch from a terminal.

Each command opens the gate of a data directory (``--data-dir``, default ``.clearance``; or
``--store URL``), so a halt typed here lands in the same store every gate replica checks before
each decision, is audited in the node's log, and runs the same halt hooks (pending approvals
cancelled, unredeemed execution tokens revoked). The local user who can write the store is an
administrator; ``--operator`` names them for the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clearance.approvals.drill import ApprovalTokenProbe
from clearance.cli.runtime import DEFAULT_DATA_DIR, Runtime, open_runtime
from clearance.control.alerts import AlertRouter, AlertSettings
from clearance.control.drill import DRILL_TOOL, run_drill
from clearance.control.drill import doctor as run_doctor
from clearance.control.killswitch import StopReport, agent_hook
from clearance.control.operator import Operator
from clearance.control.plane import ControlPlane
from clearance.control.scope import Scope
from clearance.control.times import iso
from clearance.errors import ClearanceError

app = typer.Typer(no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)

DataDir = Annotated[Path, typer.Option("--data-dir", "-d", help="The gate's data directory.")]
StoreURL = Annotated[
    str | None,
    typer.Option("--store", help="Store URL; default: the data dir's SQLite file."),
]
ScopeArg = Annotated[str, typer.Argument(help="all, agent:<id>, tool:<name> or environment:<name>")]
Reason = Annotated[str, typer.Option("--reason", "-r", help="Why (goes to the audit log).")]
OperatorId = Annotated[
    str,
    typer.Option("--operator", "-o", envvar="CLEARANCE_OPERATOR", help="Who is acting."),
]


@contextmanager
def _plane(data_dir: Path, store: str | None) -> Iterator[tuple[Runtime, ControlPlane]]:
    runtime = open_runtime(data_dir, store_url=store, require_policy=False)
    try:
        if runtime.store.active_digest() is not None:
            try:
                runtime.gate.load_active()  # drills decide, doctor reads shadow surfaces
            except ClearanceError as exc:
                # Stopping must never depend on the policy loading: warn and carry on.
                _out.print(f"WARNING: the active policy did not load: {exc}", markup=False)
        settings = AlertSettings.load(runtime.store)
        router = AlertRouter(settings.sinks())
        plane = ControlPlane(
            runtime.store,
            clock=runtime.gate.clock,
            audit=runtime.gate.audit,
            pending=runtime.approvals,
            alerts=router,
            replica="cli",
            metrics=False,
        )
        plane.killswitch.on_halt("approvals.cancelled", agent_hook(runtime.approvals.cancel_for))
        plane.killswitch.on_halt("tokens.revoked", agent_hook(runtime.approvals.revoke_tokens_for))
        plane.killswitch.on_halt("credentials.revoked", agent_hook(runtime.credentials.revoke_for))
        runtime.gate.pre_checks.insert(0, plane.killswitch)
        yield runtime, plane
        router.close(timeout=5.0)
    finally:
        runtime.close()


def _admin(operator: str) -> Operator:
    return Operator(operator, frozenset({"admin"}))


def _print_report(report: StopReport) -> None:
    _out.print(report.summary())
    for problem in report.problems:
        _out.print(f"WARNING: {problem}")


@app.command()
def kill(
    scope: ScopeArg,
    reason: Reason,
    operator: OperatorId,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Halt a scope now: every decision in it is DENY `kill-switch`; approvals and tokens revoked."""
    with _plane(data_dir, store) as (runtime, plane):
        now = runtime.gate.clock.now()
        _print_report(
            plane.killswitch.halt(
                Scope.parse(scope), operator=_admin(operator), reason=reason, now=now
            )
        )


@app.command()
def drain(
    scope: ScopeArg,
    reason: Reason,
    operator: OperatorId,
    timeout: Annotated[float, typer.Option(help="Seconds in-flight work may continue.")] = 300.0,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Drain a scope: no new sessions; in-flight ones continue until TIMEOUT, then it is halted."""
    with _plane(data_dir, store) as (runtime, plane):
        now = runtime.gate.clock.now()
        report = plane.killswitch.drain(
            Scope.parse(scope), operator=_admin(operator), reason=reason, now=now, timeout_s=timeout
        )
        _print_report(report)
        _out.print(f"halts at {report.stop.deadline} unless resumed")


@app.command()
def resume(
    scope: ScopeArg,
    reason: Reason,
    operator: OperatorId,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Lift a halt, drain or breaker trip (audited first; refused if it cannot be audited)."""
    with _plane(data_dir, store) as (runtime, plane):
        now = runtime.gate.clock.now()
        lifted = plane.killswitch.resume(
            Scope.parse(scope), operator=_admin(operator), reason=reason, now=now
        )
        _out.print(
            f"resumed {lifted.scope} (was {lifted.level}, {lifted.rule} since {lifted.created_at})"
        )


@app.command()
def status(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What is stopped, by whom and why, and what each halt hook actually did."""
    with _plane(data_dir, store) as (_, plane):
        current = plane.killswitch.status()
        if as_json:
            _out.print(json.dumps(current.to_dict(), indent=2), markup=False)
            return
        if not current.stops:
            _out.print("nothing is stopped")
        for s in current.stops:
            stop = s.stop
            _out.print(
                f"{stop.scope}: {stop.level} ({stop.rule}) since {stop.created_at} by {stop.operator}: {stop.reason}",
                markup=False,
            )
            if stop.deadline:
                _out.print(f"  halts at {stop.deadline}")
            if not s.effects and stop.level != "drain":
                _out.print("  no halt hook ran: nothing was cancelled, revoked or killed")
            for e in s.effects:
                done = f"FAILED: {e.error}" if e.error is not None else str(e.count)
                _out.print(f"  {e.hook} on {e.replica}: {done}", markup=False)


@app.command()
def drill(
    operator: OperatorId,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
    task: Annotated[
        str, typer.Option(help="Task type of the scratch session.")
    ] = "clearance-drill",
    environment: Annotated[
        str, typer.Option(help="Environment of the scratch session.")
    ] = "development",
) -> None:
    """Halt a scratch agent, prove its calls are denied and its token revoked, resume; record it."""
    with _plane(data_dir, store) as (runtime, plane):
        admin = _admin(operator)
        tokens = ApprovalTokenProbe(
            runtime.approvals, operator_id=admin.id, tool=DRILL_TOOL, clock=runtime.gate.clock
        )
        report = run_drill(
            runtime.gate,
            plane.killswitch,
            operator=admin,
            clock=runtime.gate.clock,
            tokens=tokens,
            audit=runtime.gate.audit,
            task=task,
            environment=environment,
        )
        for step in report.steps:
            _out.print(f"{'ok  ' if step.ok else 'FAIL'} {step.name}: {step.detail}", markup=False)
        _out.print(f"drill {report.drill_id}: {'passed' if report.ok else 'FAILED'}")
        if not report.ok:
            raise typer.Exit(1)


@app.command()
def doctor(data_dir: DataDir = DEFAULT_DATA_DIR, store: StoreURL = None) -> None:
    """Warn about a stale drill, missing alert sinks, shadow-mode surfaces and stops left on."""
    with _plane(data_dir, store) as (runtime, plane):
        bundle = runtime.gate.bundle
        findings = run_doctor(
            plane.killswitch.store,
            runtime.store,
            now=runtime.gate.clock.now(),
            alerts_configured=plane.alerts.configured,
            policy=bundle.compiled if bundle is not None else None,
        )
        for f in findings:
            _out.print(f"{'WARN' if f.warn else 'ok  '} {f.check}: {f.message}", markup=False)
        if any(f.warn for f in findings):
            raise typer.Exit(1)


@app.command()
def alerts(
    webhook: Annotated[
        list[str] | None, typer.Option(help="Slack-compatible webhook URL (repeat).")
    ] = None,
    log: Annotated[
        bool | None, typer.Option("--log/--no-log", help="Send alerts to the log.")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Show or set the alert sinks every process on this store uses."""
    with _plane(data_dir, store) as (runtime, _):
        current = AlertSettings.load(runtime.store)
        if webhook is not None or log is not None:
            current = AlertSettings(
                log=current.log if log is None else log,
                webhooks=current.webhooks if webhook is None else tuple(webhook),
            )
            current.save(runtime.store, iso(runtime.gate.clock.now()))
        _out.print(f"log: {'on' if current.log else 'off'}")
        for url in current.webhooks:
            _out.print(f"webhook: {url}", markup=False)
        if not current.configured:
            _out.print("no alert sink is configured")


def register(root: typer.Typer) -> None:
    """Add every command of this module to ``root`` at the top level (``clearance kill ...``)."""
    for command in (kill, drain, resume, status, drill, doctor, alerts):
        root.command()(command)
