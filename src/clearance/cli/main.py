"""The command line: argv -> command; ``ClearanceError`` -> one line on stderr and an exit code.

Sub-commands live in ``clearance.cli.commands``; each is a Typer app registered here, imported
lazily so an optional extra that is not installed only disables its own commands. When the first
argument names a sub-command group (``clearance hook claude-code``, ``clearance audit verify``),
only that group's module is imported: a coding agent spawns ``clearance hook`` for every tool
call, and importing every command (the MCP SDK and the ASGI stack among them) would put seconds
of start-up in front of each one. ``app`` (every command) is built on first use.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import typer
from rich.console import Console

from clearance.errors import ClearanceError


def _new_app() -> typer.Typer:
    return typer.Typer(
        name="clearance",
        help="A deterministic, auditable authorization gate in front of every AI-agent tool call.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


# (name, module, help). Each module exposes ``app: typer.Typer``.
_SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("policy", "clearance.cli.commands.policy", "Lint, test and diff policies."),
    ("db", "clearance.cli.commands.db", "Migrate the store and check that it answers."),
    (
        "sandbox",
        "clearance.cli.commands.sandbox",
        "Run code in the sandbox; check this host's isolation.",
    ),
    ("scan", "clearance.cli.commands.scan", "Measure the content scanners on a labelled dataset."),
    ("audit", "clearance.cli.commands.audit", "Verify, export, tail and prune the audit log."),
    (
        "approvals",
        "clearance.cli.commands.approvals",
        "List, show, approve, deny or question approvals.",
    ),
    (
        "breakglass",
        "clearance.cli.commands.breakglass",
        "Open, close and list break-glass overrides.",
    ),
    ("users", "clearance.cli.commands.users", "Create operators and agent keys; revoke them."),
    ("hook", "clearance.cli.commands.hook", "Gate coding agents (Claude Code, Codex, Gemini CLI)."),
    ("mcp", "clearance.cli.commands.mcp", "Put the gate in front of MCP servers."),
)

# Modules whose ``register(app)`` adds top-level commands.
_TOP_LEVEL: tuple[str, ...] = (
    "clearance.cli.commands.core",
    "clearance.cli.commands.demo",
    "clearance.cli.commands.control",
    "clearance.cli.commands.serve",
    "clearance.cli.commands.ops",
    "clearance.cli.commands.redteam",
    "clearance.cli.commands.importer",
)

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def build_app(only: str | None = None) -> typer.Typer:
    """Every command, or only the sub-command group named ``only`` (see the module docstring)."""
    app = _new_app()
    for name, module, help_text in _SUBCOMMANDS:
        if only is not None and name != only:
            continue
        try:
            sub = importlib.import_module(module).app
        except ImportError as exc:
            missing = exc.name or "a dependency"
            sub = typer.Typer(help=f"{help_text} (unavailable: needs `{missing}`)")

            @sub.callback(invoke_without_command=True)
            def _unavailable(missing: str = missing) -> None:
                raise ClearanceError(
                    f"this command needs `{missing}`, which is not installed",
                    hint="install clearance with its extras: `pip install 'clearance[all]'`",
                )

        app.add_typer(sub, name=name, help=help_text)
    if only is None:
        for module in _TOP_LEVEL:
            importlib.import_module(module).register(app)
    return app


_GROUPS = frozenset(name for name, _, _ in _SUBCOMMANDS)
_full: typer.Typer | None = None


def __getattr__(name: str) -> typer.Typer:
    """``app``: the CLI with every command, built once on first use."""
    global _full
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _full is None:
        _full = build_app()
    return _full


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; exit 0 on success, the error's exit code otherwise."""
    try:
        # With standalone_mode=False click returns a `typer.Exit(code)` raised by a command as its
        # return value instead of raising it; keep that code.
        args = list(argv) if argv is not None else sys.argv[1:]
        cli = build_app(only=args[0]) if args and args[0] in _GROUPS else __getattr__("app")
        result = cli(args=args, standalone_mode=False)
    except ClearanceError as exc:
        _err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _err.print("aborted", markup=False)
        sys.exit(130)
    except Exception as exc:  # click usage errors carry their own exit codes
        from click.exceptions import ClickException

        if isinstance(exc, ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(result if isinstance(result, int) else 0)
