"""Python client of the sidecar's agent and orchestrator APIs, sync and async (httpx).

A decision is returned as the gate's ``Decision`` value whatever its HTTP status (PERMIT 200,
APPROVAL 202, DENY 403, SILENCE 503): refusals are answers, not errors. Anything that is not a
decision (a bad key, a malformed request, a gate that cannot be reached) raises
``GateClientError`` carrying the service's ``{code, message, hint}``. A network failure never
turns into a PERMIT: callers that catch ``GateClientError`` must not dispatch::

    with GateClient("http://127.0.0.1:8700", api_key=os.environ["CLEARANCE_KEY"]) as gate:
        decision = gate.decide(session_id, "read_account", {"account_id": "acc-1"})
        if decision.permitted:
            ...

    async with AsyncGateClient(url, api_key=key) as gate:
        decision = await gate.decide(session_id, "read_account", {"account_id": "acc-1"})
"""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx

from clearance.credentials import Credential, Secret
from clearance.errors import ClearanceError
from clearance.model.decision import Decision
from clearance.model.result import ActionResult
from clearance.model.session import Environment, Session

_DECISION_STATUSES = frozenset({200, 202, 403, 503})
DEFAULT_TIMEOUT_S = 10.0


class GateClientError(ClearanceError):
    """The service refused the call (not a decision), or could not be reached."""

    code = "gate_client_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        if code is not None:
            self.code = code


def _credential_body(
    session_id: str, tool: str, decision_id: str | None, approval_token: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"session_id": session_id, "tool": tool}
    if decision_id is not None:
        body["decision_id"] = decision_id
    if approval_token is not None:
        body["approval_token"] = approval_token
    return body


def _credential(response: httpx.Response) -> Credential:
    """The credential, its value wrapped in a ``Secret`` so it never prints by accident."""
    data = _checked(response, 200).json()
    return Credential(
        lease_id=data["lease_id"],
        tool=data["tool"],
        environment=Environment(data["environment"]),
        expires_at=datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00")),
        secret=Secret(data["secret"]),
    )


def _decide_body(
    session_id: str,
    tool: str,
    args: dict[str, Any] | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {"session_id": session_id, "tool": tool, "args": args or {}}
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def _error(response: httpx.Response) -> GateClientError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return GateClientError(
        str(body.get("message") or f"HTTP {response.status_code}"),
        status=response.status_code,
        code=body.get("code"),
        hint=body.get("hint"),
    )


def _decision(response: httpx.Response) -> Decision:
    if response.status_code not in _DECISION_STATUSES:
        raise _error(response)
    try:
        return Decision.model_validate(response.json())
    except ValueError:
        # A 403/503 that is not a decision body (a refused key, a proxy's error page).
        raise _error(response) from None


def _checked(response: httpx.Response, *expected: int) -> httpx.Response:
    if response.status_code not in expected:
        raise _error(response)
    return response


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": "clearance-client/1"}


class GateClient:
    """Blocking client; one per API key (agent or orchestrator)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            return self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise GateClientError(
                f"the gate could not be reached: {exc}", hint="do not dispatch; retry later"
            ) from exc

    def decide(
        self, session_id: str, tool: str, args: dict[str, Any] | None = None, **options: Any
    ) -> Decision:
        """Ask for a decision (``action``, ``target``, ``reasoning``, ``idempotency_key``, ...)."""
        return _decision(
            self._send("POST", "/v1/decide", _decide_body(session_id, tool, args, options))
        )

    def redeem(
        self,
        session_id: str,
        tool: str,
        args: dict[str, Any] | None,
        *,
        approval_token: str,
        **options: Any,
    ) -> Decision:
        """Resubmit the approved call, unchanged, with its execution token."""
        body = _decide_body(session_id, tool, args, {**options, "approval_token": approval_token})
        return _decision(self._send("POST", "/v1/tokens/redeem", body))

    def approval_status(self, approval_id: str, *, session_id: str, intent: str) -> dict[str, Any]:
        """Poll an approval; carries the execution token once, right after approval."""
        body = {"session_id": session_id, "intent": intent}
        response = self._send("POST", f"/v1/approvals/{approval_id}/status", body)
        result: dict[str, Any] = _checked(response, 200).json()
        return result

    def report(self, result: ActionResult) -> None:
        """Report what happened after a permitted call was dispatched."""
        _checked(self._send("POST", "/v1/results", result.model_dump(mode="json")), 202)

    def grants(self, session_id: str) -> frozenset[str]:
        """The tools one of this agent's sessions may call under the gate's active policy."""
        response = _checked(self._send("GET", f"/v1/sessions/{session_id}/grants"), 200)
        return frozenset(str(tool) for tool in response.json()["tools"])

    def decision(self, decision_id: str) -> Decision:
        """One of this agent's decisions, with its signed receipt."""
        response = _checked(self._send("GET", f"/v1/decisions/{decision_id}"), 200)
        return Decision.model_validate(response.json())

    def receipt(self, decision_id: str) -> dict[str, Any]:
        """``{decision_id, receipt, proof}``: verify offline with ``clearance.audit.verify``."""
        result: dict[str, Any] = _checked(
            self._send("GET", f"/v1/receipts/{decision_id}"), 200
        ).json()
        return result

    def credential(
        self,
        session_id: str,
        tool: str,
        *,
        decision_id: str | None = None,
        approval_token: str | None = None,
    ) -> Credential:
        """The tool's short-lived credential for one PERMIT decision id or execution token."""
        body = _credential_body(session_id, tool, decision_id, approval_token)
        return _credential(self._send("POST", "/v1/credentials", body))

    def open_session(self, agent_id: str, task: str, **facts: Any) -> Session:
        """Open a session (orchestrator keys only): ``environment``, ``principal``, ..."""
        body = {"agent_id": agent_id, "task": task, **facts}
        return Session.model_validate(
            _checked(self._send("POST", "/v1/sessions", body), 201).json()
        )

    def close_session(self, session_id: str) -> None:
        """Close a session (orchestrator keys only)."""
        _checked(self._send("DELETE", f"/v1/sessions/{session_id}"), 204)


class AsyncGateClient:
    """The same calls as ``GateClient`` for asyncio code."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            return await self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise GateClientError(
                f"the gate could not be reached: {exc}", hint="do not dispatch; retry later"
            ) from exc

    async def decide(
        self, session_id: str, tool: str, args: dict[str, Any] | None = None, **options: Any
    ) -> Decision:
        """Ask for a decision."""
        body = _decide_body(session_id, tool, args, options)
        return _decision(await self._send("POST", "/v1/decide", body))

    async def redeem(
        self,
        session_id: str,
        tool: str,
        args: dict[str, Any] | None,
        *,
        approval_token: str,
        **options: Any,
    ) -> Decision:
        """Resubmit the approved call, unchanged, with its execution token."""
        body = _decide_body(session_id, tool, args, {**options, "approval_token": approval_token})
        return _decision(await self._send("POST", "/v1/tokens/redeem", body))

    async def approval_status(
        self, approval_id: str, *, session_id: str, intent: str
    ) -> dict[str, Any]:
        """Poll an approval; carries the execution token once, right after approval."""
        body = {"session_id": session_id, "intent": intent}
        response = await self._send("POST", f"/v1/approvals/{approval_id}/status", body)
        result: dict[str, Any] = _checked(response, 200).json()
        return result

    async def report(self, result: ActionResult) -> None:
        """Report what happened after a permitted call was dispatched."""
        response = await self._send("POST", "/v1/results", result.model_dump(mode="json"))
        _checked(response, 202)

    async def decision(self, decision_id: str) -> Decision:
        """One of this agent's decisions, with its signed receipt."""
        response = _checked(await self._send("GET", f"/v1/decisions/{decision_id}"), 200)
        return Decision.model_validate(response.json())

    async def receipt(self, decision_id: str) -> dict[str, Any]:
        """``{decision_id, receipt, proof}``: verify offline with ``clearance.audit.verify``."""
        response = await self._send("GET", f"/v1/receipts/{decision_id}")
        result: dict[str, Any] = _checked(response, 200).json()
        return result

    async def credential(
        self,
        session_id: str,
        tool: str,
        *,
        decision_id: str | None = None,
        approval_token: str | None = None,
    ) -> Credential:
        """The tool's short-lived credential for one PERMIT decision id or execution token."""
        body = _credential_body(session_id, tool, decision_id, approval_token)
        return _credential(await self._send("POST", "/v1/credentials", body))

    async def open_session(self, agent_id: str, task: str, **facts: Any) -> Session:
        """Open a session (orchestrator keys only)."""
        body = {"agent_id": agent_id, "task": task, **facts}
        response = _checked(await self._send("POST", "/v1/sessions", body), 201)
        return Session.model_validate(response.json())

    async def close_session(self, session_id: str) -> None:
        """Close a session (orchestrator keys only)."""
        _checked(await self._send("DELETE", f"/v1/sessions/{session_id}"), 204)
