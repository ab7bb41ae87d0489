"""``clearance hook claude-code|codex|gemini`` and ``clearance hook install``.

The hook commands read one hook event on stdin and answer in the client's dialect (see
``clearance.integrations.hooks``). They never fail open: whatever goes wrong - no session in the
environment, no data directory, a broken store, a bug - ends in exit 2 with the reason on stderr,
which every supported client treats as a blocked call.

The session comes from ``CLEARANCE_AGENT_ID`` and ``CLEARANCE_SESSION_ID``, set by whoever launched
the agent after opening the session; the model cannot set them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from clearance.cli.runtime import DEFAULT_DATA_DIR, open_runtime
from clearance.errors import ConfigError
from clearance.integrations.hooks import (
    BLOCK_EXIT,
    DIALECTS,
    Dialect,
    HookAdapter,
    HookReply,
    block,
    claude_managed_settings,
    claude_settings,
    codex_toml,
    gemini_settings,
    merge_settings,
)
from clearance.integrations.mapping import SessionHandle, approval_link
from clearance.integrations.transport import InProcessTransport

app = typer.Typer(help="Gate coding agents (Claude Code, Codex, Gemini CLI) through their hooks.")

DataDir = Annotated[Path, typer.Option("--data-dir", "-d", help="The gate's data directory.")]
ApprovalWait = Annotated[
    float,
    typer.Option(
        "--approval-wait",
        help="Seconds to wait for an operator's approval; keep it below the client's hook timeout.",
    ),
]
Dashboard = Annotated[
    str | None,
    typer.Option("--dashboard-url", help="Base URL of the dashboard, for approval links."),
]
ExplicitAllow = Annotated[
    bool,
    typer.Option(
        "--allow/--no-allow",
        help="Answer PERMIT with an explicit allow (skips the client's own prompt).",
    ),
]


def _answer(
    dialect: Dialect, data_dir: Path, wait_s: float, dashboard: str | None, *, allow: bool
) -> HookReply:
    text = sys.stdin.read()
    try:
        session = SessionHandle.from_env()
        runtime = open_runtime(data_dir)
    except Exception as exc:  # noqa: BLE001 - a hook that cannot reach its gate blocks the call
        return block(f"clearance: the gate is unavailable: {exc}")
    try:
        adapter = HookAdapter(
            InProcessTransport(runtime.gate, approvals=runtime.approvals),
            session,
            dialect,
            approval_wait_s=wait_s,
            approval_url=approval_link(dashboard) if dashboard else None,
            explicit_allow=allow,
        )
        return adapter.handle_text(text)
    except Exception as exc:  # noqa: BLE001 - a crashing hook blocks the call, never allows it
        return block(f"clearance: the hook failed ({type(exc).__name__}): {exc}")
    finally:
        runtime.close()


def _respond(reply: HookReply) -> None:
    if reply.stdout:
        sys.stdout.write(reply.stdout + "\n")
    if reply.stderr:
        sys.stderr.write(reply.stderr)
    sys.stdout.flush()
    raise typer.Exit(reply.exit_code)


def _dialect_command(dialect: Dialect) -> None:
    def command(
        data_dir: DataDir = DEFAULT_DATA_DIR,
        approval_wait: ApprovalWait = 300.0,
        dashboard_url: Dashboard = None,
        allow: ExplicitAllow = False,
    ) -> None:
        try:
            reply = _answer(dialect, data_dir, approval_wait, dashboard_url, allow=allow)
        except BaseException as exc:  # noqa: BLE001 - the last line of the fail-closed hook
            reply = HookReply(exit_code=BLOCK_EXIT, stderr=f"clearance: the hook failed: {exc}\n")
        _respond(reply)

    command.__doc__ = f"Answer one {dialect} hook event read on stdin (exit 2 blocks the call)."
    app.command(dialect)(command)


for _dialect in DIALECTS:
    _dialect_command(_dialect)


@app.command("install")
def install(
    client: Annotated[
        str, typer.Option(help="claude-code, codex or gemini.", show_default=True)
    ] = "claude-code",
    data_dir: DataDir = DEFAULT_DATA_DIR,
    approval_wait: ApprovalWait = 300.0,
    write: Annotated[
        Path | None,
        typer.Option(help="Merge the hooks into this settings.json instead of printing."),
    ] = None,
    managed: Annotated[
        bool, typer.Option("--managed", help="Print the managed-settings block (Claude Code).")
    ] = False,
) -> None:
    """Print (or write) the settings that route every tool call of a coding agent through the gate."""
    if client not in DIALECTS:
        raise ConfigError(f"unknown client `{client}`", hint="use claude-code, codex or gemini")
    gate_args = ["--data-dir", str(data_dir.resolve()), "--approval-wait", f"{approval_wait:g}"]
    timeout_s = int(approval_wait) + 30
    if client == "codex":
        if write is not None or managed:
            raise ConfigError(
                "codex hooks are printed as TOML only", hint="paste them into config.toml"
            )
        sys.stdout.write(codex_toml(gate_args, timeout_s=timeout_s))
        return
    if client == "gemini":
        if managed:
            raise ConfigError("`--managed` is a Claude Code setting")
        snippet = gemini_settings(gate_args, timeout_s=timeout_s)
    elif managed:
        snippet = claude_managed_settings(gate_args, timeout_s=timeout_s)
    else:
        snippet = claude_settings(gate_args, timeout_s=timeout_s)
    if write is None:
        sys.stdout.write(json.dumps(snippet, indent=2) + "\n")
        return
    existing = json.loads(write.read_text("utf-8")) if write.exists() else {}
    if not isinstance(existing, dict):
        raise ConfigError(f"`{write}` is not a JSON object")
    write.parent.mkdir(parents=True, exist_ok=True)
    write.write_text(json.dumps(merge_settings(existing, snippet), indent=2) + "\n", "utf-8")
    sys.stdout.write(f"wrote the clearance hooks to {write}\n")
