"""``clearance redteam POLICY``: attack a policy and fail when anything forbidden passed.

The policy is loaded and compiled and the attack suite generated from it
(``clearance.policy.redteam``). By default every case is decided by a real gate composed as
``clearance serve`` composes one (``open_runtime``: SQLite store, audit log, approvals,
break-glass, decay, session taint, kill switch and breakers) in a temporary data directory deleted
afterwards; the stateful attacks (``clearance.gate.redteam``) run on the same gate.

With ``--url`` the same suite attacks a running gate over its HTTP API
(``clearance.integrations.redteam_http``), after checking that the gate's active policy is the
file's (``/readyz`` names its digest; ``--unsafe-allow-digest-mismatch`` attacks another one and
judges it by the file). The run authenticates with what it is given - orchestrator keys for every
environment the suite opens sessions in, an admin operator to register its agents and mint their
keys and to halt and resume, approvers of every approver group - never with anything from a data
directory, and checks all of it before the first attack. Every halt it engaged is lifted and every
key it minted revoked before it exits, an interrupted run included; its agents, sessions,
decisions, approval votes and halts stay in the gate's audit log, so point it at a staging gate.

Exit codes: 0 when no case got a forbidden outcome, 1 when one did (the report lists each), 2 when
the run could not be made (a policy that does not load, missing or wrong credentials, a digest
mismatch, a gate that stopped answering). ``--json`` and ``--junit`` write the full report; the
JUnit file has one failing test case per forbidden outcome, for CI test reporting.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
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
from clearance.gate.redteam import (
    GATE_ERROR,
    IN_PROCESS,
    GateTarget,
    Report,
    Result,
    Target,
    run_redteam,
)
from clearance.integrations.redteam_http import (
    DEFAULT_TIMEOUT_S,
    OPERATORS_ENV,
    ORCHESTRATOR_KEYS_ENV,
    PASSWORD_ENV_PREFIX,
    Credentials,
    HttpTarget,
    RedTeamSetupError,
    RedTeamTargetError,
    active_digest,
)
from clearance.policy.bundle import Bundle
from clearance.policy.load import load_policy
from clearance.policy.redteam import Suite, generate
from clearance.store import open_store

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def redteam_target(bundle: Bundle, data_dir: Path) -> Iterator[GateTarget]:
    """A gate on a fresh data directory with ``bundle`` active, composed by ``open_runtime``.

    That is the composition every command and ``clearance serve`` use: store, audit log,
    approvals, break-glass, decay, session taint and the control plane.
    """
    create_keys(data_dir, GateConfig().deployment)
    open_store(store_url_for(data_dir, None)).close()
    runtime = open_runtime(data_dir, require_policy=False)
    try:
        runtime.gate.activate(bundle, by="clearance redteam")
        yield GateTarget(
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
        suite, generation_s = _generate(bundle)
        with (
            tempfile.TemporaryDirectory(prefix="clearance-redteam-") as tmp,
            redteam_target(bundle, Path(tmp)) as target,
        ):
            return _run(target, suite, generation_s, show_progress=show_progress)


def attack_url(
    bundle: Bundle,
    url: str,
    credentials: Credentials,
    *,
    unsafe_allow_digest_mismatch: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
    show_progress: bool = True,
) -> Report:
    """Attack the gate served at ``url`` with ``bundle``'s suite, judged by ``bundle``.

    Refuses (``RedTeamSetupError``) when the gate decides with another policy, unless
    ``unsafe_allow_digest_mismatch``; checks every credential before the first attack.
    """
    active = active_digest(url, timeout=timeout)
    if active != bundle.digest and not unsafe_allow_digest_mismatch:
        raise RedTeamSetupError(
            f"the gate at {url} decides with policy {active}, not with {bundle.source_name} "
            f"({bundle.digest})",
            hint="attack it with the file it runs (the digest covers the policy's meaning, its "
            "file name and its rules' lines), activate this one on the gate first, or pass "
            "--unsafe-allow-digest-mismatch to judge the gate by this file anyway",
        )
    suite, generation_s = _generate(bundle)
    run_id = secrets.token_hex(4)
    target = HttpTarget(url, credentials, timeout=timeout)
    try:
        target.connect(suite, active)
        report = _run(
            target,
            suite,
            generation_s,
            show_progress=show_progress,
            agent_prefix=f"redteam-{run_id}",
            where=url,
        )
    except BaseException:
        target.close()
        raise
    # Once the report exists, what goes wrong afterwards is reported with it, not instead of it.
    problems: list[str] = []
    try:
        target.close()
    except RedTeamTargetError as exc:
        problems.append(str(exc))
    try:
        after = active_digest(url, timeout=timeout)
    except RedTeamSetupError as exc:
        problems.append(f"the gate's policy could not be checked again after the run: {exc}")
    else:
        if after != active:
            problems.append(
                f"the gate at {url} switched from policy {active} to {after} during the run: "
                "its answers are not all from one policy; run it again"
            )
    return dataclasses.replace(report, problems=tuple(problems))


def _generate(bundle: Bundle) -> tuple[Suite, float]:
    started = time.perf_counter()
    suite = generate(bundle.compiled)
    return suite, time.perf_counter() - started


def _run(
    target: Target,
    suite: Suite,
    generation_s: float,
    *,
    show_progress: bool,
    agent_prefix: str = "redteam",
    where: str = IN_PROCESS,
) -> Report:
    """Run the suite on ``target``, with a progress bar on stderr when asked."""
    if not show_progress:
        return run_redteam(
            target, suite, generation_s=generation_s, agent_prefix=agent_prefix, where=where
        )
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
            target,
            suite,
            generation_s=generation_s,
            progress=advance,
            on_start=start,
            agent_prefix=agent_prefix,
            where=where,
        )


def _print(report: Report, limit: int) -> None:
    title = f"red team: {report.policy} {report.version}"
    if report.target != IN_PROCESS:
        title += f" at {report.target} ({report.digest})"
    table = Table(title=title, title_justify="left")
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
    failed = [r for r in report.deviations if r.rule == GATE_ERROR]
    for result in failed[:limit]:
        _out.print(f"[yellow]GATE ERROR[/] {result.id}: {result.title}", highlight=False)
        _out.print(f"    {result.reason}", markup=False)
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


def _print_trail(report: Report, bundle: Bundle) -> None:
    """What a ``--url`` run left on the gate, and which policy it judged."""
    if report.digest != bundle.digest:
        _out.print(
            f"note: the gate runs {report.digest}; its answers were judged by "
            f"{bundle.source_name} ({bundle.digest})",
            markup=False,
        )
    _out.print(
        f"the run's agents ({report.agent_prefix}-NNNNN), sessions, decisions, approval votes "
        f"and halts are in the audit log of {report.target}; its halts are lifted and its agent "
        "keys revoked",
        markup=False,
    )


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
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            help="Attack the gate served at URL over HTTP instead (a staging gate: the run "
            "stays in its audit log).",
        ),
    ] = None,
    orchestrator_keys: Annotated[
        list[str] | None,
        typer.Option(
            "--orchestrator-key",
            metavar="ENV=KEY",
            envvar=ORCHESTRATOR_KEYS_ENV,
            help="--url: an orchestrator key and its environment; one for every environment "
            "the attacks use (development, staging, production as the policy needs).",
        ),
    ] = None,
    operators: Annotated[
        list[str] | None,
        typer.Option(
            "--operator",
            metavar="NAME",
            envvar=OPERATORS_ENV,
            help="--url: an operator to log in as (an admin, and approvers of every approver "
            f"group); its password in {PASSWORD_ENV_PREFIX}<NAME>.",
        ),
    ] = None,
    unsafe_allow_digest_mismatch: Annotated[
        bool,
        typer.Option(
            "--unsafe-allow-digest-mismatch",
            help="--url: attack the gate even when it runs another policy, judging it by POLICY.",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="--url: seconds to wait for each answer.", min=1)
    ] = DEFAULT_TIMEOUT_S,
) -> None:
    """Attack POLICY; exit 1 if any case got an outcome the policy forbids.

    The attacks come from the policy itself: tools outside each task, every
    parameter bound, confusables, URL and path tricks, destructive tools,
    authority claims, tainted sessions; then missing, replayed and swapped
    approval tokens, halts and reused idempotency keys, all against a real
    gate on a temporary store.

    With --url they attack a running gate over HTTP, once its active policy
    is POLICY (same digest). The run needs orchestrator keys, an admin and
    approvers (see the options) and leaves its agents, sessions, approvals
    and halt/resume trail in that gate's audit log: use a staging gate. It
    resumes every halt and revokes every key it created, even when
    interrupted. Exit 2 when the run could not be made. See docs/redteam.md.
    """
    if url is None and unsafe_allow_digest_mismatch:
        raise RedTeamSetupError(
            "--unsafe-allow-digest-mismatch applies to a gate attacked with --url",
            hint="add --url URL, or drop the option: in process the gate runs POLICY itself",
        )
    bundle = load_policy(policy)
    if url is None:
        report = attack(bundle, show_progress=progress)
    else:
        credentials = Credentials.from_options(orchestrator_keys or (), operators or (), os.environ)
        report = attack_url(
            bundle,
            url,
            credentials,
            unsafe_allow_digest_mismatch=unsafe_allow_digest_mismatch,
            timeout=timeout,
            show_progress=progress,
        )
    if json_file is not None:
        json_file.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    if junit_file is not None:
        junit_file.write_text(report.to_junit(), encoding="utf-8")
    _print(report, show)
    if url is not None:
        _print_trail(report, bundle)
    for problem in report.problems:
        _err.print(f"error: {problem}", markup=False)
    if not report.passed:
        raise typer.Exit(1)
    if report.problems:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Add ``redteam`` to the top-level command."""
    app.command("redteam")(redteam)
