"""The ASGI service: ``create_app(services, settings) -> FastAPI``.

The failure boundaries are laid out in one place, outermost first (``_MIDDLEWARE``):

1. ``SecurityHeaders``  every response: no sniffing, no framing, a script-src 'self' CSP, no-store
2. ``BodyLimit``        a body over ``max_body_bytes`` is 413 before any route parses it
3. ``JsonOnly``         a JSON API write without ``Content-Type: application/json`` is 415

and the exception handlers turn everything a route can raise into ``{code, message, hint}``:
validation errors are 400/422, ``ClearanceError`` gets its status from ``wire.status_of``, and
anything else is a logged 500 that never carries a decision (so never a PERMIT).

The composition root (``clearance serve``) builds a ``GateServices`` and hands it here::

    services = GateServices(gate=gate, approvals=approval_service)
    app = create_app(services, load_settings(Path("clearance.toml")))
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clearance.approvals.breakglass import BreakGlass
from clearance.approvals.service import ApprovalService
from clearance.control.killswitch import KillSwitch
from clearance.control.sources import SourceWatch
from clearance.credentials import CredentialBroker
from clearance.errors import ClearanceError
from clearance.gate.evidence import AuditRecorder
from clearance.gate.gate import Gate
from clearance.server import agent_api, health, hooks_api, operator_api
from clearance.server.authorize import Authorizer, LoginRequiredError
from clearance.server.dashboard import routes as dashboard
from clearance.server.identity import IdentityService
from clearance.server.metrics import ServiceMetrics
from clearance.server.ratelimit import RateLimiter
from clearance.server.settings import ServerSettings
from clearance.server.wire import ApiError, ErrorCode, status_of
from clearance.store.identity_sql import identity_store

log = logging.getLogger("clearance.server")


@dataclass
class GateServices:
    """The gate and the optional parts the service exposes; None means "not in this deployment".

    Routes whose part is None answer 501 ``not_available`` instead of guessing.
    """

    gate: Gate
    approvals: ApprovalService | None = None
    control: KillSwitch | None = None
    audit: AuditRecorder | None = None
    credentials: CredentialBroker | None = None
    breakglass: BreakGlass | None = None
    metrics: tuple[CollectorRegistry, ...] = ()
    #: Alerts when an agent key is used from a new address or client.
    sources: SourceWatch | None = None


@dataclass
class ServerContext:
    """What every router needs, built once per app."""

    services: GateServices
    settings: ServerSettings
    identity: IdentityService
    authorizer: Authorizer
    metrics: ServiceMetrics
    login_limiter: RateLimiter

    @property
    def gate(self) -> Gate:
        """The gate every decision goes through."""
        return self.services.gate


# -- middleware ---------------------------------------------------------------------------------


async def _send_error(send: Send, error: ApiError) -> None:
    response = JSONResponse(error.body(), status_code=error.status, headers=error.headers)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class _BodyTooLargeError(Exception):
    pass


class BodyLimit:
    """Refuse bodies larger than ``limit`` bytes with 413, by header or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _error(self) -> ApiError:
        return ApiError(
            413,
            ErrorCode.BODY_TOO_LARGE,
            f"the request body is larger than {self.limit} bytes",
            "send less data; the limit is the `max_body_bytes` setting",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.limit + 1
                if declared > self.limit:
                    await _send_error(send, self._error())
                    return
        seen = 0
        started = exceeded = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            # The app may catch our exception and answer for itself (FastAPI turns body read
            # errors into a 400); once the limit was exceeded, the answer is 413 regardless.
            nonlocal started
            if message["type"] == "http.response.start":
                if started:
                    return
                started = True
                if exceeded:
                    await _send_error(send, self._error())
                    return
            elif exceeded:
                return
            await send(message)

        with contextlib.suppress(_BodyTooLargeError):
            await self.app(scope, counting_receive, guarded_send)
        if exceeded and not started:
            await _send_error(send, self._error())


_JSON_TYPES = ("application/json",)
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class JsonOnly:
    """The JSON API (``/v1/...``) accepts only ``application/json`` bodies on writes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _WRITE_METHODS
            and scope["path"].startswith("/v1/")
        ):
            headers = dict(scope["headers"])
            content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
            has_body = headers.get(b"content-length", b"0") != b"0" or (
                b"transfer-encoding" in headers
            )
            if has_body and content_type.split(";", 1)[0].strip() not in _JSON_TYPES:
                await _send_error(
                    send,
                    ApiError(
                        415,
                        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                        "the API accepts JSON bodies only",
                        "send `Content-Type: application/json`",
                    ),
                )
                return
        await self.app(scope, receive, send)


_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", _CSP.encode("ascii")),
    (b"cache-control", b"no-store"),
)


class SecurityHeaders:
    """Add the headers every response of the service carries."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in _SECURITY_HEADERS if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


def _middleware(settings: ServerSettings) -> list[Middleware]:
    # Outermost first.
    return [
        Middleware(SecurityHeaders),
        Middleware(BodyLimit, limit=settings.max_body_bytes),
        Middleware(JsonOnly),
    ]


# -- exception handlers -------------------------------------------------------------------------


_API_PATHS = ("/v1/", "/metrics", "/healthz", "/readyz", "/openapi.json")


def _error_response(request: Request, error: ApiError) -> Response:
    """JSON ``{code, message, hint}`` for the API; an HTML page for the dashboard."""
    if request.url.path.startswith(_API_PATHS):
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)
    page = dashboard.error_page(error.status, error.code, error.message, error.hint)
    page.headers.update(error.headers or {})
    return page


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error_response(request, exc)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return _error_response(
            request,
            ApiError(
                400,
                ErrorCode.MALFORMED_JSON,
                "the request body is not valid JSON",
                "send one JSON object encoded in UTF-8",
            ),
        )
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return _error_response(
        request,
        ApiError(
            422,
            ErrorCode.INVALID_REQUEST,
            f"`{where}`: {first.get('msg', 'invalid value')}",
            "see the OpenAPI document at /openapi.json for the expected fields and types",
        ),
    )


_HTTP_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.INVALID_REQUEST)
    return _error_response(
        request,
        ApiError(
            exc.status_code, code, str(exc.detail).lower(), None, headers=dict(exc.headers or {})
        ),
    )


async def _on_clearance_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClearanceError)
    status = status_of(exc)
    if status >= 500:
        log.error("unexpected %s: %s", exc.code, exc)
    return JSONResponse(exc.to_dict(), status_code=status)


async def _on_login_required(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequiredError)
    return RedirectResponse(dashboard.login_url(exc.next_path), status_code=303)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error in a route", exc_info=exc)
    return _error_response(
        request,
        ApiError(
            500,
            ErrorCode.INTERNAL,
            "the service failed while handling this request",
            "nothing was decided or changed; retry, and report it if it persists",
        ),
    )


_HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    ApiError: _on_api_error,
    RequestValidationError: _on_validation_error,
    StarletteHTTPException: _on_http_error,
    ClearanceError: _on_clearance_error,
    LoginRequiredError: _on_login_required,
    Exception: _on_unexpected,
}


# -- the app ------------------------------------------------------------------------------------


def create_app(services: GateServices | Gate, settings: ServerSettings) -> FastAPI:
    """Build the service around ``services`` (a bare ``Gate`` means no optional parts)."""
    if isinstance(services, Gate):
        services = GateServices(gate=services)
    gate = services.gate
    metrics = ServiceMetrics()
    identity = IdentityService(
        identity_store(gate.store), gate.clock, session_ttl_s=settings.session_ttl_s
    )
    agent_limiter = RateLimiter(
        gate.clock, rate=settings.agent_requests_per_second, burst=settings.agent_burst
    )
    ctx = ServerContext(
        services=services,
        settings=settings,
        identity=identity,
        authorizer=Authorizer(identity, metrics, agent_limiter, gate.audit, services.sources),
        metrics=metrics,
        login_limiter=RateLimiter(
            gate.clock,
            rate=settings.login_attempts_per_minute / 60.0,
            burst=max(1, int(settings.login_attempts_per_minute)),
        ),
    )
    app = FastAPI(
        title="clearance",
        summary="Runtime authorization gate for AI-agent tool calls",
        version="1",
        middleware=_middleware(settings),
        exception_handlers=_HANDLERS,
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(agent_api.router(ctx))
    app.include_router(hooks_api.router(ctx, max_wait_s=settings.hook_max_wait_s))
    app.include_router(operator_api.router(ctx))
    app.include_router(health.router(ctx))
    dashboard.mount(app, ctx)
    return app
