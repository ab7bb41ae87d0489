"""``clearance mcp proxy``: the MCP gateway, in front of the servers of an ``mcp.json``.

Point the client at ``clearance mcp proxy --upstreams mcp.upstream.json`` instead of at the servers
themselves. Over stdio (the default) the session is the one the launcher opened and exported in
``CLEARANCE_AGENT_ID`` and ``CLEARANCE_SESSION_ID``; the gate is the data directory's, in this
process, or with ``--gate-url`` the sidecar's, reached with the agent key in
``CLEARANCE_AGENT_KEY``. With ``--http 127.0.0.1:8788`` the gateway serves streamable HTTP at
``/mcp``; each client authenticates with an agent key (``Authorization: Bearer clr_agent_...``)
and names its session in the ``Clearance-Session`` header (or uses ``--session``). Beside the
gate (``--data-dir``) any agent key of its store is accepted; with ``--gate-url`` the front acts
for the one agent whose key and id are in ``CLEARANCE_AGENT_KEY`` and ``CLEARANCE_AGENT_ID``, and
callers present that key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

import anyio
import typer
from mcp.server.auth.provider import TokenVerifier

from clearance.cli.commands.hook import AGENT_KEY_ENV, GATE_URL_ENV
from clearance.cli.runtime import DEFAULT_DATA_DIR, Runtime, open_runtime
from clearance.errors import ClearanceError, ConfigError
from clearance.integrations.mapping import (
    AGENT_ENV,
    SESSION_ENV,
    ApprovalLink,
    SessionHandle,
    approval_link,
)
from clearance.integrations.mcp_admission import Admission, Grants, fixed_session
from clearance.integrations.mcp_downstream import (
    Upstream,
    load_upstreams,
    parse_upstreams,
    read_servers,
)
from clearance.integrations.mcp_front import (
    AgentIdentity,
    AgentKeyVerifier,
    HTTPSessions,
    LookupSession,
    OneAgentKey,
    check_bind,
    http_app,
    serve_http,
)
from clearance.integrations.mcp_gateway import Gateway, remote_grants, session_grants
from clearance.integrations.sidecar import SidecarTransport
from clearance.integrations.transport import InProcessTransport, Transport
from clearance.model.session import Session
from clearance.server.identity import AgentPrincipal, AuthenticationError, IdentityService
from clearance.store.identity_sql import identity_store

app = typer.Typer(help="Put the gate in front of MCP servers.")


@app.callback()
def mcp() -> None:
    """Put the gate in front of MCP servers: `proxy` serves the gateway, `wrap` routes a client."""


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
    gate_url: Annotated[
        str | None,
        typer.Option(
            "--gate-url",
            envvar=GATE_URL_ENV,
            help=f"Ask the sidecar at this URL (agent key in `{AGENT_KEY_ENV}`; with --http also "
            f"its agent id in `{AGENT_ENV}`).",
        ),
    ] = None,
    http: Annotated[
        str | None,
        typer.Option(help="Serve streamable HTTP on HOST:PORT instead of stdio (loopback)."),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(
            help="HTTP: the session of a caller that sends no Clearance-Session "
            f"(with --gate-url, default `{SESSION_ENV}`)."
        ),
    ] = None,
    unsafe_allow_remote: Annotated[
        bool, typer.Option(help="HTTP: allow listening beyond loopback (put TLS in front).")
    ] = False,
    public_name: Annotated[
        list[str] | None,
        typer.Option(help="HTTP beyond loopback: a host name clients use (repeat for several)."),
    ] = None,
    approval_wait: Annotated[
        float, typer.Option(help="Seconds a call waits for an operator before answering pending.")
    ] = 0.0,
    elicitation_wait: Annotated[
        float,
        typer.Option(help="Seconds a call waits after the client opened the approval page."),
    ] = 300.0,
    dashboard_url: Annotated[
        str | None,
        typer.Option(help="Base URL of the dashboard, for approval links (default: --gate-url)."),
    ] = None,
) -> None:
    """Serve the gateway; every tools/call, resources/read and prompts/get is decided first."""
    servers = load_upstreams(upstreams)
    dashboard = dashboard_url or gate_url
    approvals = ApprovalOptions(
        approval_url=approval_link(dashboard) if dashboard else None,
        approval_wait_s=approval_wait,
        elicitation_wait_s=elicitation_wait,
    )
    if http is None:
        handle = SessionHandle.from_env()
        with _stdio_gate(data_dir, store, gate_url) as (transport, grants):
            admission = Admission(transport, **approvals)
            gateway = Gateway(admission, fixed_session(handle), servers, grants=grants)
            _run(gateway.serve_stdio)
        return
    host, port = parse_address(http)
    front = HTTPFront(host, port, tuple(public_name or ()), unsafe_allow_remote=unsafe_allow_remote)
    check_bind(host, unsafe_allow_remote=unsafe_allow_remote, public_names=front.public_names)
    if gate_url:
        _serve_http_via_sidecar(front, gate_url, servers, approvals, session)
    else:
        _serve_http_in_process(front, data_dir, store, servers, approvals, session)


@dataclass(frozen=True, slots=True)
class HTTPFront:
    """Where the streamable-HTTP front listens and the host names it answers to."""

    host: str
    port: int
    public_names: tuple[str, ...]
    unsafe_allow_remote: bool

    def serve(self, gateway: Gateway, verifier: TokenVerifier) -> None:
        """Serve ``gateway`` until interrupted."""
        app = http_app(
            gateway, verifier, host=self.host, port=self.port, public_names=self.public_names
        )
        _run(
            lambda: serve_http(
                app,
                self.host,
                self.port,
                unsafe_allow_remote=self.unsafe_allow_remote,
                public_names=self.public_names,
            )
        )


def _serve_http_in_process(
    front: HTTPFront,
    data_dir: Path,
    store: str | None,
    servers: list[Upstream],
    approvals: ApprovalOptions,
    session: str | None,
) -> None:
    """The HTTP front beside the gate: any agent key of the store, sessions checked locally."""
    runtime = open_runtime(data_dir, store_url=store)
    try:
        transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
        identify = HTTPSessions(session_lookup(runtime), default_session_id=session)
        admission = Admission(transport, **approvals)
        gateway = Gateway(admission, identify, servers, grants=session_grants(transport))
        front.serve(gateway, key_checker(runtime))
    finally:
        runtime.close()


def _serve_http_via_sidecar(
    front: HTTPFront,
    gate_url: str,
    servers: list[Upstream],
    approvals: ApprovalOptions,
    session: str | None,
) -> None:
    """The HTTP front of one agent, asking the sidecar at ``gate_url`` with that agent's key.

    Callers present the same key; the sidecar checks it, the session's owner and environment on
    every decision. Listings show what the sidecar says the session's task grants.
    """
    key = _agent_key()
    agent_id = os.environ.get(AGENT_ENV, "")
    if not agent_id:
        raise ConfigError(
            f"`--http` with `--gate-url` needs the agent id of the key in `{AGENT_ENV}`",
            hint="the agent the key was issued for (`clearance users agent-key AGENT`)",
        )
    default_session = session or os.environ.get(SESSION_ENV) or None
    with SidecarTransport.connect(gate_url, api_key=key) as sidecar:
        identify = HTTPSessions(None, default_session_id=default_session)
        gateway = Gateway(
            Admission(sidecar, **approvals), identify, servers, grants=remote_grants(sidecar)
        )
        front.serve(gateway, OneAgentKey(key, agent_id))


def _run(main: Callable[[], Awaitable[None]]) -> None:
    """Run the gateway; a clearance error inside the server's task groups is raised as itself.

    A downstream that cannot be reached fails inside the MCP server's lifespan, where the task
    groups wrap it; the user should read the error and its hint, not a traceback.
    """
    try:
        anyio.run(main)
    except BaseExceptionGroup as group:
        found = group.subgroup(lambda e: isinstance(e, ClearanceError))
        while isinstance(found, BaseExceptionGroup):
            found = found.exceptions[0]
        if found is None:
            raise
        raise found from group


class ApprovalOptions(TypedDict):
    """How the gateway's admission handles approvals (the proxy's options)."""

    approval_url: ApprovalLink | None
    approval_wait_s: float
    elicitation_wait_s: float


@contextmanager
def _stdio_gate(
    data_dir: Path, store: str | None, gate_url: str | None
) -> Iterator[tuple[Transport, Grants | None]]:
    """The sidecar when a URL is given (every tool listed), else the data directory's gate.

    Over the sidecar the sidecar is the one writer of the audit shard, so several clients may each
    start their own gateway; listings show what the sidecar says the session's task grants.
    """
    if gate_url:
        with SidecarTransport.connect(gate_url, api_key=_agent_key()) as sidecar:
            yield sidecar, remote_grants(sidecar)
        return
    runtime = open_runtime(data_dir, store_url=store)
    try:
        transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
        yield transport, session_grants(transport)
    finally:
        runtime.close()


def _agent_key() -> str:
    """The agent key a gateway asking the sidecar uses, from the environment."""
    key = os.environ.get(AGENT_KEY_ENV, "")
    if not key:
        raise ConfigError(
            f"`--gate-url` needs the agent key in `{AGENT_KEY_ENV}`",
            hint="create one with `clearance users agent-key` and put it in the client's env",
        )
    return key


class _Unexpanded(dict[str, str]):
    """An environment in which every variable is set to its own reference (checks structure only)."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return f"${{{key}}}"


def _write_new(path: Path, document: dict[str, Any], *, mode: int = 0o600) -> None:
    """Write JSON to a file that must not exist yet (never overwrite what a user keeps)."""
    try:
        with path.open("x", encoding="utf-8") as f:
            f.write(json.dumps(document, indent=2) + "\n")
    except FileExistsError as exc:
        raise ConfigError(
            f"`{path}` already exists", hint="move it away or choose another path"
        ) from exc
    path.chmod(mode)


@app.command("wrap")
def wrap(
    config: Annotated[
        Path, typer.Argument(help="The client's MCP config (.mcp.json, .cursor/mcp.json, ...).")
    ],
    upstreams: Annotated[
        Path, typer.Option(help="Where to keep the original servers (must not exist yet).")
    ],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", "-d", help="The gate's data directory.")
    ] = DEFAULT_DATA_DIR,
    gate_url: Annotated[
        str | None,
        typer.Option("--gate-url", help="Have the gateway ask the sidecar at this URL."),
    ] = None,
    dashboard_url: Annotated[
        str | None, typer.Option(help="Base URL of the dashboard, for approval links.")
    ] = None,
    cursor: Annotated[
        bool, typer.Option(help="Write variables as ${env:VAR} (Cursor) instead of ${VAR}.")
    ] = False,
) -> None:
    """Route a client's MCP servers through the gateway; the originals become its upstreams.

    The original config is kept beside it as ``<name>.before-clearance``; nothing is overwritten.
    """
    document, servers = read_servers(config)
    if "clearance" in servers:
        raise ConfigError(
            f"`{config}` already has a `clearance` server", hint="it is wrapped already"
        )
    parse_upstreams(config, servers, _Unexpanded())
    backup = config.with_name(config.name + ".before-clearance")
    for path in (upstreams, backup):
        if path.exists():
            raise ConfigError(f"`{path}` already exists", hint="move it away or choose another")
    ref = "${env:%s}" if cursor else "${%s}"
    names = [AGENT_ENV, SESSION_ENV] + ([AGENT_KEY_ENV] if gate_url else [])
    args = ["mcp", "proxy", "--upstreams", str(upstreams.resolve())]
    args += ["--gate-url", gate_url] if gate_url else ["--data-dir", str(data_dir.resolve())]
    args += ["--dashboard-url", dashboard_url] if dashboard_url else []
    entry = {"command": "clearance", "args": args, "env": {n: ref % n for n in names}}
    _write_new(upstreams, {"mcpServers": servers})
    _write_new(backup, document, mode=config.stat().st_mode & 0o777)
    wrapped = config.with_name(config.name + ".clearance-tmp")
    wrapped.unlink(missing_ok=True)
    _write_new(wrapped, {**document, "mcpServers": {"clearance": entry}})
    os.replace(wrapped, config)
    print(json.dumps({"config": str(config), "upstreams": str(upstreams), "backup": str(backup)}))
