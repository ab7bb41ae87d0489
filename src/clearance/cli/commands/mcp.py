"""``clearance mcp proxy``: the MCP gateway on stdio, in front of the servers of an ``mcp.json``.

Point the client at ``clearance mcp proxy --upstreams mcp.upstream.json`` instead of at the servers
themselves. The session is the one the launcher opened and exported in ``CLEARANCE_AGENT_ID`` and
``CLEARANCE_SESSION_ID``; the gate is the data directory's, in this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer

from clearance.cli.runtime import DEFAULT_DATA_DIR, open_runtime
from clearance.integrations.mapping import SessionHandle, approval_link
from clearance.integrations.mcp_gateway import Gateway, load_upstreams
from clearance.integrations.transport import InProcessTransport

app = typer.Typer(help="Put the gate in front of MCP servers.")


@app.callback()
def mcp() -> None:
    """Put the gate in front of MCP servers (more commands will join `proxy`)."""


@app.command("proxy")
def proxy(
    upstreams: Annotated[
        Path, typer.Option(help="An mcp.json whose `mcpServers` are the downstream servers.")
    ],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", "-d", help="The gate's data directory.")
    ] = DEFAULT_DATA_DIR,
    approval_wait: Annotated[
        float, typer.Option(help="Seconds a call waits for an operator before answering pending.")
    ] = 0.0,
    dashboard_url: Annotated[
        str | None, typer.Option(help="Base URL of the dashboard, for approval links.")
    ] = None,
) -> None:
    """Serve the gateway on stdin/stdout; every tools/call is decided by the gate first."""
    session = SessionHandle.from_env()
    servers = load_upstreams(upstreams)
    runtime = open_runtime(data_dir)
    try:
        transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
        gateway = Gateway(
            transport,
            session,
            servers,
            grants=lambda: transport.granted_tools(session.session_id),
            approval_url=approval_link(dashboard_url) if dashboard_url else None,
            approval_wait_s=approval_wait,
        )
        anyio.run(gateway.serve_stdio)
    finally:
        runtime.close()
