"""``clearance sandbox run|check``: run a command in the sandbox, or try every escape on this host.

``run`` prints the job's stdout and stderr as they came back and exits with the job's exit code
(124 on timeout, 137 when killed at a cap, as shells do). ``check`` runs the escape suite and
the backend probes and exits 1 if any attempt got through or no backend works.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clearance.errors import ConfigError
from clearance.sandbox import EgressPolicy, Job, Sandbox, SandboxLimits, available_backends
from clearance.sandbox.escapes import run_escape_suite

app = typer.Typer(no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_EXIT_TIMEOUT = 124
_EXIT_CAP = 137


def parse_size(text: str) -> int:
    """``512M``, ``1G``, ``65536`` -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)i?[bB]?\s*", text)
    if not match:
        raise ConfigError(f"{text!r} is not a size", hint="use bytes or a K/M/G suffix, e.g. 512M")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


@app.callback()
def sandbox() -> None:
    """Run code in a disposable sandbox; check this host's sandbox."""


@app.command(context_settings={"allow_interspersed_args": False})
def run(
    command: Annotated[list[str], typer.Argument(help="The command line to run, after --.")],
    allow_net: Annotated[
        list[str] | None,
        typer.Option("--allow-net", help="Allow egress to this domain (repeatable; *.x.com ok)."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Wall-clock cap in seconds.")] = 30.0,
    memory: Annotated[str, typer.Option(help="Memory cap, e.g. 512M.")] = "512M",
    backend: Annotated[str, typer.Option(help="auto, bwrap or unshare.")] = "auto",
) -> None:
    """Run COMMAND in a fresh sandbox; without --allow-net it has no network at all."""
    if backend not in ("auto", "bwrap", "unshare"):
        raise ConfigError(f"unknown backend {backend!r}", hint="use auto, bwrap or unshare")
    limits = SandboxLimits(wall_seconds=timeout, memory_bytes=parse_size(memory))
    egress = EgressPolicy(allow=tuple(allow_net)) if allow_net else None
    box = Sandbox(backend)  # type: ignore[arg-type]
    result = box.run(Job(kind="argv", argv=tuple(command)), limits, egress)
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    sys.stderr.flush()
    if result.stopped != "exit":
        _err.print(f"sandbox: job {result.job_id} stopped: {result.stopped}", markup=False)
    if result.stopped == "timeout":
        raise typer.Exit(_EXIT_TIMEOUT)
    if result.stopped != "exit":
        raise typer.Exit(_EXIT_CAP)
    raise typer.Exit(result.exit_code if result.exit_code >= 0 else 128 - result.exit_code)


@app.command()
def check() -> None:
    """Probe each backend, then try every escape for real and print what was blocked."""
    backends = Table(title="sandbox backends")
    for column in ("backend", "works", "details"):
        backends.add_column(column)
    statuses = available_backends()
    for status in statuses:
        backends.add_row(status.name, "yes" if status.ok else "no", status.reason)
    _out.print(backends)
    box = Sandbox()
    outcomes = run_escape_suite(box)
    table = Table(title=f"escape attempts (backend: {box.backend})")
    for column in ("attempt", "result", "evidence"):
        table.add_column(column)
    for outcome in outcomes:
        verdict = "[green]blocked[/]" if outcome.blocked else "[bold red]EXPOSED[/]"
        table.add_row(outcome.name, verdict, outcome.detail)
    _out.print(table)
    exposed = [o.name for o in outcomes if not o.blocked]
    if exposed:
        _err.print(f"{len(exposed)} escape(s) got through: {', '.join(exposed)}", markup=False)
        raise typer.Exit(1)
    _out.print(f"all {len(outcomes)} attempts blocked", markup=False)
