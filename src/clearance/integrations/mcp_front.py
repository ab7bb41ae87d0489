"""The gateway's streamable-HTTP front: agent keys, sessions bound to them, loopback by default.

Every HTTP request must carry ``Authorization: Bearer <agent key>``; the key is checked on each
request (a revoked key stops working at once) and a request without a valid one gets 401 before
any MCP message is read. The MCP session (``Mcp-Session-Id``) is transport state bound by the SDK
to the key that opened it: another credential presenting that id is told the session does not
exist. The clearance session a call belongs to is the ``Clearance-Session`` header or the
gateway's default session, and it counts only when the key's agent owns it and the session is in
the key's environment - the agent id itself always comes from the key.

A front that asks a remote gate (``clearance mcp proxy --http ... --gate-url ...``) acts for the
one agent key it was given: :class:`OneAgentKey` admits callers presenting exactly that key, and
:class:`HTTPSessions` without a session lookup leaves the session's ownership and environment to
the sidecar, which decides every call under that key (a session of another agent is a DENY
``session`` there, a session of another environment a DENY ``key-scope``).

The front listens on loopback unless told otherwise (``unsafe_allow_remote``), and checks the
``Host`` and ``Origin`` headers against the address it serves, so a web page cannot reach it by
DNS rebinding::

    verifier = AgentKeyVerifier(check_key)             # key -> AgentIdentity | None
    identify = HTTPSessions(lookup_session, default_session_id=None)
    gateway = Gateway(admission, identify, upstreams, grants=session_grants(transport))
    await serve_http(http_app(gateway, verifier, host="127.0.0.1", port=8788), "127.0.0.1", 8788)
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from clearance.errors import ConfigError
from clearance.integrations.errors import UnknownCaller
from clearance.integrations.mapping import SessionHandle
from clearance.integrations.mcp_gateway import Gateway
from clearance.model.session import Session

SESSION_HEADER = "clearance-session"
MCP_PATH = "/mcp"
AGENT_SCOPE = "clearance:agent"


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """What a valid agent key proves: the agent, its environment, and which key it was."""

    agent_id: str
    environment: str
    key_id: str


CheckKey = Callable[[str], AgentIdentity | None]
LookupSession = Callable[[str], Session | None]


class AgentKeyVerifier:
    """The MCP SDK's token verifier, backed by clearance's agent keys.

    ``check_key`` returns the identity of a valid agent key and None for anything else (unknown,
    revoked, an orchestrator key); it runs in a worker thread because it reads the store.
    """

    def __init__(self, check_key: CheckKey) -> None:
        self.check_key = check_key

    async def verify_token(self, token: str) -> AccessToken | None:
        """An access token naming the agent (client id) and the key (subject), or None."""
        identity = await anyio.to_thread.run_sync(functools.partial(self.check_key, token))
        if identity is None:
            return None
        return AccessToken(
            token=token,
            client_id=identity.agent_id,
            subject=identity.key_id,
            scopes=[AGENT_SCOPE],
            claims={"environment": identity.environment},
        )


class OneAgentKey:
    """The token verifier of a front that acts for one agent key, checked by the remote gate.

    Callers must present exactly ``key`` (compared in constant time); the gate behind the
    sidecar authenticates the same key again on every decision, so a revoked key stops working
    there at once.
    """

    def __init__(self, key: str, agent_id: str) -> None:
        if not key or not agent_id:
            raise ConfigError("a front for one agent key needs the key and its agent id")
        self._key = key.encode("utf-8")
        self.agent_id = agent_id

    async def verify_token(self, token: str) -> AccessToken | None:
        """An access token naming the agent, or None for any other bearer token."""
        if not hmac.compare_digest(token.encode("utf-8"), self._key):
            return None
        return AccessToken(
            token=token, client_id=self.agent_id, subject="gateway-key", scopes=[AGENT_SCOPE]
        )


class HTTPSessions:
    """Who calls over HTTP: the key's agent and a clearance session that agent owns.

    ``lookup`` reads sessions from the gate's store, so a session of another agent or
    environment is refused before anything is decided. Without it (the gate is a remote
    sidecar) the session is only named here; the sidecar refuses it in its decision.
    """

    def __init__(
        self, lookup: LookupSession | None, *, default_session_id: str | None = None
    ) -> None:
        self.lookup = lookup
        self.default_session_id = default_session_id

    def __call__(self, ctx: Any) -> SessionHandle:
        """The caller's session handle; ``UnknownCaller`` when there is none it may use."""
        request = getattr(ctx, "request", None)
        user = request.scope.get("user") if request is not None else None
        if request is None or not isinstance(user, AuthenticatedUser):
            raise UnknownCaller("the request carries no authenticated agent key")
        token = user.access_token
        session_id = request.headers.get(SESSION_HEADER) or self.default_session_id
        if not session_id:
            raise UnknownCaller(
                "no session named",
                hint="send the session id the orchestrator opened as the `Clearance-Session` header",
            )
        if self.lookup is None:
            return SessionHandle(agent_id=token.client_id, session_id=session_id)
        session = self.lookup(session_id)
        environment = (token.claims or {}).get("environment")
        if session is None or session.closed or session.agent_id != token.client_id:
            raise UnknownCaller(f"session `{session_id}` is not a session of this agent")
        if session.environment.value != environment:
            raise UnknownCaller(f"session `{session_id}` is not in this key's environment")
        return SessionHandle(agent_id=token.client_id, session_id=session_id)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_security(
    host: str, port: int, public_names: tuple[str, ...] = ()
) -> TransportSecuritySettings:
    """Host and Origin checks for the address the front serves (DNS-rebinding protection).

    ``public_names`` are the host names clients use beyond loopback (behind a TLS proxy, say);
    any other ``Host`` is refused.
    """
    names = {host, "127.0.0.1", "localhost"} if is_loopback(host) else {host}
    names.update(public_names)
    hosts = sorted(f"[{h}]:{port}" if ":" in h else f"{h}:{port}" for h in names)
    hosts += sorted(public_names)  # a proxy on the default port sends the bare name
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts],
    )


def http_app(
    gateway: Gateway,
    verifier: TokenVerifier,
    *,
    host: str,
    port: int,
    public_names: tuple[str, ...] = (),
    session_idle_timeout_s: float = 1800.0,
    max_sessions: int = 1000,
) -> Starlette:
    """The streamable-HTTP app of ``gateway`` at ``/mcp``: bearer agent keys, Host/Origin checks."""
    return gateway.server().streamable_http_app(
        streamable_http_path=MCP_PATH,
        host=host,
        transport_security=transport_security(host, port, public_names),
        auth=AuthSettings(
            issuer_url=f"http://{host}:{port}",
            resource_server_url=None,
            required_scopes=[AGENT_SCOPE],
        ),
        token_verifier=verifier,
        session_idle_timeout=session_idle_timeout_s,
        max_sessions=max_sessions,
    )


def check_bind(
    host: str, *, unsafe_allow_remote: bool = False, public_names: tuple[str, ...] = ()
) -> None:
    """Refuse to listen beyond loopback unless told so, and then only for named hosts."""
    if is_loopback(host):
        return
    if not unsafe_allow_remote:
        raise ConfigError(
            f"the MCP gateway would listen on `{host}`, beyond this machine",
            hint="serve on 127.0.0.1 behind a TLS proxy, or pass --unsafe-allow-remote",
        )
    if not public_names:
        raise ConfigError(
            f"listening on `{host}` needs the host names clients use",
            hint="name each with --public-name (requests for any other Host are refused)",
        )


async def serve_http(
    app: Starlette,
    host: str,
    port: int,
    *,
    unsafe_allow_remote: bool = False,
    public_names: tuple[str, ...] = (),
) -> None:
    """Serve ``app`` with uvicorn until cancelled (loopback only by default)."""
    check_bind(host, unsafe_allow_remote=unsafe_allow_remote, public_names=public_names)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve()
