"""``clearance mcp proxy``: the MCP gateway, in front of the servers of an ``mcp.json``.

Point the client at ``clearance mcp proxy --upstreams mcp.upstream.json`` instead of at the servers
themselves. Over stdio (the default) the session is the one the launcher opened and exported in
``CLEARANCE_AGENT_ID`` and ``CLEARANCE_SESSION_ID``. With ``--http 127.0.0.1:8788`` the gateway
serves streamable HTTP at ``/mcp``; each client authenticates with an agent key
(``Authorization: Bearer clr_agent_...``) and names its session in the ``Clearance-Session``
header (or uses ``--session``). Either way the gate is the data directory's, in this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer

from clearance.cli.runtime import DEFAULT_DATA_DIR, Runtime, open_runtime
from clearance.errors import ConfigError
from clearance.integrations.mapping import SessionHandle, approval_link
from clearance.integrations.mcp_admission import Admission, Identify, fixed_session
from clearance.integrations.mcp_downstream import load_upstreams
from clearance.integrations.mcp_front import (
    AgentIdentity,
    AgentKeyVerifier,
    HTTPSessions,
    LookupSession,
    check_bind,
    http_app,
    serve_http,
)
from clearance.integrations.mcp_gateway import Gateway, session_grants
from clearance.integrations.transport import InProcessTransport
from clearance.model.session import Session
from clearance.server.identity import AgentPrincipal, AuthenticationError, IdentityService
from clearance.store.identity_sql import identity_store

app = typer.Typer(help="Put the gate in front of MCP servers.")


@app.callback()
def mcp() -> None:
    """Put the gate in front of MCP servers (more commands will join `proxy`)."""


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a host and a port number."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"`{address}` is not HOST:PORT", hint="for example --http 127.0.0.1:8788")
    return host.strip("[]"), int(port)


def key_checker(runtime: Runtime) -> AgentKeyVerifier:
    """Agent keys checked against the identity store the sidecar uses."""
    identity = IdentityService(identity_store(runtime.store), runtime.gate.clock)

    def check(secret: str) -> AgentIdentity | None:
        try:
            principal = identity.authenticate_key(secret)
        except AuthenticationError:
            return None
        if not isinstance(principal, AgentPrincipal):
            return None  # an orchestrator key opens sessions; it does not call tools
        return AgentIdentity(principal.agent_id, principal.environment.value, principal.key_id)

    return AgentKeyVerifier(check)


def session_lookup(runtime: Runtime) -> LookupSession:
    """Sessions of the store, for the HTTP front's ownership check."""

    def lookup(session_id: str) -> Session | None:
        state = runtime.store.session_state(session_id)
        return state.session if state is not None else None

    return lookup


@app.command("proxy")
def proxy(
    upstreams: Annotated[
        Path, typer.Option(help="An mcp.json whose `mcpServers` are the downstream servers.")
    ],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", "-d", help="The gate's data directory.")
    ] = DEFAULT_DATA_DIR,
    store: Annotated[
        str | None, typer.Option("--store", help="Store URL (default: the data dir's).")
    ] = None,
    http: Annotated[
        str | None,
        typer.Option(help="Serve streamable HTTP on HOST:PORT instead of stdio (loopback)."),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(help="HTTP: the session of a caller that sends no Clearance-Session."),
    ] = None,
    unsafe_allow_remote: Annotated[
        bool, typer.Option(help="HTTP: allow listening beyond loopback (put TLS in front).")
    ] = False,
    approval_wait: Annotated[
        float, typer.Option(help="Seconds a call waits for an operator before answering pending.")
    ] = 0.0,
    elicitation_wait: Annotated[
        float,
        typer.Option(help="Seconds a call waits after the client opened the approval page."),
    ] = 300.0,
    dashboard_url: Annotated[
        str | None, typer.Option(help="Base URL of the dashboard, for approval links.")
    ] = None,
) -> None:
    """Serve the gateway; every tools/call is decided by the gate first."""
    servers = load_upstreams(upstreams)
    address = parse_address(http) if http is not None else None
    if address is not None:
        check_bind(address[0], unsafe_allow_remote=unsafe_allow_remote)
    stdio_session = SessionHandle.from_env() if address is None else None
    runtime = open_runtime(data_dir, store_url=store)
    try:
        transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
        admission = Admission(
            transport,
            approval_url=approval_link(dashboard_url) if dashboard_url else None,
            approval_wait_s=approval_wait,
            elicitation_wait_s=elicitation_wait,
        )
        identify: Identify = (
            fixed_session(stdio_session)
            if stdio_session is not None
            else HTTPSessions(session_lookup(runtime), default_session_id=session)
        )
        gateway = Gateway(admission, identify, servers, grants=session_grants(transport))
        if address is None:
            anyio.run(gateway.serve_stdio)
            return
        host, port = address
        front = http_app(gateway, key_checker(runtime), host=host, port=port)
        anyio.run(lambda: serve_http(front, host, port, unsafe_allow_remote=unsafe_allow_remote))
    finally:
        runtime.close()
