"""Which principal may call which route, as FastAPI dependencies.

* Agent routes (``/v1/decide`` ...) take an **agent** key; an orchestrator key or a dashboard
  cookie is refused.
* Session routes (``/v1/sessions``) take an **orchestrator** key.
* Operator routes (``/v1/ops/...`` and the dashboard) take an **operator session** cookie, and a
  CSRF token on every state-changing method. Any ``Authorization`` header there is refused with
  403, always, whatever the key: agent credentials never reach operator code, and the attempt is
  logged, counted and (when an audit log is configured) recorded.

The role table is the one place that says what each operator role may do.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum

from fastapi import Request

from clearance.control.sources import SourceWatch
from clearance.errors import ClearanceError
from clearance.gate.hooks import AuditSink
from clearance.server.identity import (
    AgentPrincipal,
    AuthenticationError,
    IdentityService,
    OperatorPrincipal,
    OrchestratorPrincipal,
    Role,
    csrf_matches,
)
from clearance.server.metrics import ServiceMetrics
from clearance.server.ratelimit import RateLimiter, retry_after
from clearance.server.wire import ApiError, ErrorCode

log = logging.getLogger("clearance.server.authorize")

SESSION_COOKIE = "clearance_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Permission(StrEnum):
    """What an operator route needs."""

    READ = "read"
    APPROVE = "approve"
    ENGAGE_KILL_SWITCH = "engage-kill-switch"
    ADMIN = "admin"
    BREAK_GLASS = "break-glass"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.APPROVER: frozenset({Permission.READ, Permission.APPROVE, Permission.ENGAGE_KILL_SWITCH}),
    Role.ADMIN: frozenset(
        {Permission.READ, Permission.APPROVE, Permission.ENGAGE_KILL_SWITCH, Permission.ADMIN}
    ),
    Role.BREAK_GLASS: frozenset({Permission.READ, Permission.BREAK_GLASS}),
}


def permissions_of(roles: frozenset[Role]) -> frozenset[Permission]:
    """Union of the permissions of ``roles``."""
    granted: frozenset[Permission] = frozenset()
    for role in roles:
        granted |= ROLE_PERMISSIONS[role]
    return granted


class LoginRequiredError(Exception):
    """A dashboard page was opened without a session: the app redirects to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def bearer_of(request: Request) -> str | None:
    """The bearer token of the ``Authorization`` header, or None when absent."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            ErrorCode.UNAUTHENTICATED,
            "the Authorization header is not a bearer token",
            "send `Authorization: Bearer <key>`",
        )
    return token.strip()


def client_address(request: Request) -> str:
    """The peer address (proxies are not trusted to name it)."""
    return request.client.host if request.client is not None else "unknown"


class Authorizer:
    """Builds the dependencies that authenticate and authorize each kind of route."""

    def __init__(
        self,
        identity: IdentityService,
        metrics: ServiceMetrics,
        agent_limiter: RateLimiter,
        audit: AuditSink | None,
        sources: SourceWatch | None = None,
    ) -> None:
        self.identity = identity
        self.metrics = metrics
        self.agent_limiter = agent_limiter
        self.audit = audit
        self.sources = sources

    def _refuse(self, reason: str, detail: str, request: Request) -> None:
        self.metrics.refusals.labels(reason=reason).inc()
        log.warning(
            "refused %s %s from %s: %s (%s)",
            request.method,
            request.url.path,
            client_address(request),
            reason,
            detail,
        )

    def _unauthenticated(self, exc: AuthenticationError, request: Request) -> ApiError:
        self._refuse("unauthenticated", exc.reason, request)
        return ApiError(401, ErrorCode.UNAUTHENTICATED, exc.message, exc.hint)

    def _key_principal(self, request: Request) -> AgentPrincipal | OrchestratorPrincipal:
        token = bearer_of(request)
        if token is None:
            self._refuse("unauthenticated", "no Authorization header", request)
            raise ApiError(
                401,
                ErrorCode.UNAUTHENTICATED,
                "this route needs an API key",
                "send `Authorization: Bearer <key>`",
            )
        try:
            return self.identity.authenticate_key(token)
        except AuthenticationError as exc:
            raise self._unauthenticated(exc, request) from None

    async def agent(self, request: Request) -> AgentPrincipal:
        """Dependency: an agent key, within its rate limit."""
        principal = self._key_principal(request)
        if not isinstance(principal, AgentPrincipal):
            self._refuse("wrong-principal", f"orchestrator key {principal.key_id}", request)
            raise ApiError(
                403,
                ErrorCode.FORBIDDEN,
                "this route is for agents; an orchestrator key cannot call it",
                "use the agent's own key",
            )
        wait = self.agent_limiter.acquire(principal.key_id)
        if wait > 0:
            self._refuse("rate-limited", principal.key_id, request)
            raise ApiError(
                429,
                ErrorCode.RATE_LIMITED,
                "too many requests for this key",
                "slow down and retry after the Retry-After delay",
                headers={"Retry-After": retry_after(wait)},
            )
        if self.sources is not None:  # a new address or client for this key is an alert
            self.sources.observe(
                principal.key_id,
                principal.agent_id,
                address=client_address(request),
                client=request.headers.get("user-agent", ""),
            )
        return principal

    async def orchestrator(self, request: Request) -> OrchestratorPrincipal:
        """Dependency: an orchestrator key."""
        principal = self._key_principal(request)
        if not isinstance(principal, OrchestratorPrincipal):
            self._refuse("wrong-principal", f"agent key {principal.key_id}", request)
            raise ApiError(
                403,
                ErrorCode.FORBIDDEN,
                "only an orchestrator may open or close sessions",
                "sessions are opened by the trusted orchestrator, never by the agent",
            )
        return principal

    def operator(
        self, permission: Permission, *, page: bool = False
    ) -> Callable[[Request], Awaitable[OperatorPrincipal]]:
        """Dependency factory: a logged-in operator holding ``permission`` (and CSRF on writes).

        ``page=True`` makes a missing session redirect to the login page instead of a 401.
        """

        async def dependency(request: Request) -> OperatorPrincipal:
            if "authorization" in request.headers:
                self._refuse_api_key_on_operator_route(request)
            cookie = request.cookies.get(SESSION_COOKIE)
            try:
                if cookie is None:
                    raise AuthenticationError("no session cookie")
                principal = self.identity.authenticate_session(cookie)
            except AuthenticationError as exc:
                if page and request.method in _SAFE_METHODS:
                    raise LoginRequiredError(request.url.path) from None
                raise self._unauthenticated(exc, request) from None
            if request.method not in _SAFE_METHODS:
                await self._check_csrf(request, principal)
            if permission not in permissions_of(principal.roles):
                self._refuse("role", f"{principal.username} lacks {permission}", request)
                raise ApiError(
                    403,
                    ErrorCode.FORBIDDEN,
                    f"your roles do not allow `{permission}`",
                    "ask an admin for a role that grants it",
                )
            return principal

        return dependency

    def _refuse_api_key_on_operator_route(self, request: Request) -> None:
        detail = "unrecognised credential"
        try:
            token = bearer_of(request)
            if token is not None:
                principal = self.identity.authenticate_key(token)
                detail = f"{type(principal).__name__} key {principal.key_id}"
        except (ApiError, AuthenticationError):
            pass
        self._refuse("api-key-on-operator-route", detail, request)
        if self.audit is not None:
            try:
                self.audit.record_event(
                    "auth.refused",
                    {"route": request.url.path, "reason": "api-key-on-operator-route"},
                    {"credential": detail, "client": client_address(request)},
                )
            except ClearanceError:
                log.exception("could not record the refused operator call in the audit log")
        raise ApiError(
            403,
            ErrorCode.FORBIDDEN,
            "API keys cannot call operator routes",
            "operators log in to the dashboard; agent and orchestrator keys never reach it",
        )

    async def _check_csrf(self, request: Request, principal: OperatorPrincipal) -> None:
        presented = request.headers.get(CSRF_HEADER)
        if presented is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            presented = value if isinstance(value, str) else None
        if not csrf_matches(principal.csrf_token, presented):
            self._refuse("csrf", principal.username, request)
            raise ApiError(
                403,
                ErrorCode.CSRF_FAILED,
                "the CSRF token is missing or wrong",
                "reload the page and submit the form again",
            )
