"""``clearance hook claude-code|codex|gemini`` and ``clearance hook install``.

The hook commands read one hook event on stdin and answer in the client's dialect (see
``clearance.integrations.hooks``). They never fail open: whatever goes wrong - no session in the
environment, no data directory, a broken store, a bug - ends in exit 2 with the reason on stderr,
which every supported client treats as a blocked call.

The session comes from ``CLEARANCE_AGENT_ID`` and ``CLEARANCE_SESSION_ID``, set by whoever launched
the agent after opening the session; the model cannot set them.

Two ways to the gate:

* ``--gate-url http://127.0.0.1:8700`` (or ``CLEARANCE_GATE_URL``): the hook asks the sidecar over
  HTTP with the agent key in ``CLEARANCE_AGENT_KEY``. The sidecar is the one writer of the audit
  log, so any number of hooks may run at once (coding agents run parallel tool calls), and the
  operator approves on the same sidecar's dashboard while the hook waits.
* ``--data-dir`` alone: the hook opens the gate in its own process. Its audit shard is the data
  directory's, so only one process may write it at a time: fine for one agent making one call at a
  time, while a concurrent second writer makes the later call SILENCE (blocked, never allowed).

``clearance hook install --http --gate-url URL`` writes the third way, for Claude Code only: an
``http`` hook that posts each event to the sidecar's ``/v1/hooks/claude-code`` with the agent key
and the session id expanded from the agent's environment, ``onFailure: "block"`` on PreToolUse.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from clearance.cli.runtime import DEFAULT_DATA_DIR, open_runtime
from clearance.errors import ConfigError
from clearance.gate.toolevents import AGENT_KEY_ENV, BLOCK_EXIT, DIALECTS, Dialect
from clearance.integrations.hooks import (
    HookAdapter,
    HookReply,
    block,
    claude_http_settings,
    claude_managed_settings,
    claude_settings,
    codex_toml,
    gemini_settings,
    merge_settings,
)
from clearance.integrations.mapping import SessionHandle, approval_link
from clearance.integrations.sidecar import SidecarTransport
from clearance.integrations.transport import InProcessTransport, Transport

__all__ = ["AGENT_KEY_ENV", "GATE_URL_ENV", "app"]  # the environment names `clearance mcp` shares

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
GATE_URL_ENV = "CLEARANCE_GATE_URL"
GateURL = Annotated[
    str | None,
    typer.Option(
        "--gate-url",
        envvar=GATE_URL_ENV,
        help=f"Ask the sidecar at this URL (agent key in `{AGENT_KEY_ENV}`) instead of "
        "opening the data directory.",
    ),
]
ExplicitAllow = Annotated[
    bool,
    typer.Option(
        "--allow/--no-allow",
        help="Answer PERMIT with an explicit allow (skips the client's own prompt).",
    ),
]


@dataclass(frozen=True, slots=True)
class HookOptions:
    """How one hook process reaches the gate and answers."""

    data_dir: Path
    gate_url: str | None
    wait_s: float
    dashboard: str | None
    allow: bool


@contextmanager
def _transport(options: HookOptions) -> Iterator[Transport]:
    """The sidecar when a URL is given, else the data directory's gate in this process."""
    if options.gate_url:
        key = os.environ.get(AGENT_KEY_ENV, "")
        if not key:
            raise ConfigError(
                f"`--gate-url` needs the agent key in `{AGENT_KEY_ENV}`",
                hint="create one with `clearance users agent-key` and export it for the agent",
            )
        with SidecarTransport.connect(options.gate_url, api_key=key) as sidecar:
            yield sidecar
        return
    runtime = open_runtime(options.data_dir)
    try:
        yield InProcessTransport(runtime.gate, approvals=runtime.approvals)
    finally:
        runtime.close()


def _answer(dialect: Dialect, options: HookOptions) -> HookReply:
    text = sys.stdin.read()
    with ExitStack() as stack:
        try:
            session = SessionHandle.from_env()
            transport = stack.enter_context(_transport(options))
        except Exception as exc:  # noqa: BLE001 - a hook that cannot reach its gate blocks the call
            return block(f"clearance: the gate is unavailable: {exc}")
        try:
            dashboard = options.dashboard or options.gate_url
            adapter = HookAdapter(
                transport,
                session,
                dialect,
                approval_wait_s=options.wait_s,
                approval_url=approval_link(dashboard) if dashboard else None,
                explicit_allow=options.allow,
            )
            return adapter.handle_text(text)
        except Exception as exc:  # noqa: BLE001 - a crashing hook blocks the call, never allows it
            return block(f"clearance: the hook failed ({type(exc).__name__}): {exc}")


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
        gate_url: GateURL = None,
        approval_wait: ApprovalWait = 300.0,
        dashboard_url: Dashboard = None,
        allow: ExplicitAllow = False,
    ) -> None:
        try:
            options = HookOptions(data_dir, gate_url, approval_wait, dashboard_url, allow)
            reply = _answer(dialect, options)
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
    gate_url: Annotated[
        str | None,
        typer.Option("--gate-url", help="Have the hooks ask the sidecar at this URL."),
    ] = None,
    approval_wait: ApprovalWait = 300.0,
    http: Annotated[
        bool,
        typer.Option(
            "--http",
            help="Claude Code calls the sidecar's /v1/hooks endpoint itself (an `http` hook, "
            "no process per call); needs --gate-url.",
        ),
    ] = False,
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
    if http and (client != "claude-code" or not gate_url):
        raise ConfigError(
            "`--http` installs a Claude Code http hook and needs the sidecar's `--gate-url`",
            hint="Codex and Gemini CLI run command hooks only; drop `--http` for them",
        )
    where = ["--gate-url", gate_url] if gate_url else ["--data-dir", str(data_dir.resolve())]
    gate_args = [*where, "--approval-wait", f"{approval_wait:g}"]
    timeout_s = int(approval_wait) + 30
    if client == "codex":
        if write is not None or managed:
            raise ConfigError(
                "codex hooks are printed as TOML only", hint="paste them into config.toml"
            )
        sys.stdout.write(codex_toml(gate_args, timeout_s=timeout_s))
        return
    http_url = gate_url if http else None
    if client == "gemini":
        if managed:
            raise ConfigError("`--managed` is a Claude Code setting")
        snippet = gemini_settings(gate_args, timeout_s=timeout_s)
    elif managed:
        snippet = claude_managed_settings(gate_args, timeout_s=timeout_s, http_url=http_url)
    elif http_url is not None:
        snippet = claude_http_settings(http_url, timeout_s=timeout_s)
    else:
        snippet = claude_settings(gate_args, timeout_s=timeout_s)
    if write is None:
        sys.stdout.write(json.dumps(snippet, indent=2) + "\n")
        return
    try:
        existing = json.loads(write.read_text("utf-8")) if write.exists() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"`{write}` is not valid JSON (line {exc.lineno}: {exc.msg})",
            hint="fix the file first; nothing was written",
        ) from exc
    if not isinstance(existing, dict):
        raise ConfigError(f"`{write}` is not a JSON object")
    write.parent.mkdir(parents=True, exist_ok=True)
    write.write_text(json.dumps(merge_settings(existing, snippet), indent=2) + "\n", "utf-8")
    sys.stdout.write(f"wrote the clearance hooks to {write}\n")
