"""Gate an MCP server you wrote yourself (``mcp`` 2.x): a server middleware around ``tools/call``.

:class:`ClearanceServerMiddleware` sits in ``Server.middleware`` (or ``MCPServer(middleware=...)``)
and sees every inbound request before the SDK validates it. A ``tools/call`` reaches your handler
only after the gate permits exactly that call; otherwise the client gets a tool error naming the
rule and reason (or, for an approval, the approval id and link, or a URL elicitation). What the
handler returned is recorded against the decision. ``tools/list`` answers are cut down to the
tools the caller's session grants. The decision code is the gateway's own
(:class:`clearance.integrations.mcp_admission.Admission`)::

    server = MCPServer("bank")
    ...                                               # @server.tool() as usual
    gate_server(server, Admission(transport), fixed_session(session), grants=session_grants(t))
    server.run(transport="stdio")
"""

from __future__ import annotations

from typing import Any

import mcp.types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from pydantic import ValidationError

from clearance.integrations.mcp_admission import (
    Admission,
    Grants,
    Identify,
    caller,
    error_result,
)
from clearance.model.decision import Decision


class ClearanceServerMiddleware:
    """A ``ServerMiddleware`` that gates every ``tools/call`` and filters ``tools/list``."""

    def __init__(
        self, admission: Admission, identify: Identify, *, grants: Grants | None = None
    ) -> None:
        self.admission = admission
        self.identify = identify
        self.grants = grants

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Decide ``tools/call`` before the handler; pass everything else through."""
        if ctx.method == "tools/call" and ctx.request_id is not None:
            return await self._call(ctx, call_next)
        if ctx.method == "tools/list" and ctx.request_id is not None and self.grants is not None:
            return await self._list(ctx, call_next)
        return await call_next(ctx)

    async def _call(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        try:
            params = types.CallToolRequestParams.model_validate(ctx.params or {}, by_name=False)
        except ValidationError as exc:
            return error_result(
                f"blocked: malformed tools/call parameters: {exc.errors()[0]['msg']}"
            )
        session = caller(self.identify, ctx)
        if isinstance(session, types.CallToolResult):
            return session
        admitted = await self.admission.admit(ctx, session, params)
        if not isinstance(admitted, Decision):
            return admitted
        try:
            result = await call_next(ctx)
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
            await self.admission.record(session, admitted, None, failure=failure)
            raise
        await self.admission.record(session, admitted, _as_tool_result(result))
        return result

    async def _list(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        result = await call_next(ctx)
        session = caller(self.identify, ctx)
        if isinstance(session, types.CallToolResult):
            return types.ListToolsResult(tools=[])
        granted = self.grants(session) if self.grants is not None else None
        listed = _as_list_result(result)
        if granted is None or listed is None:
            return result
        return listed.model_copy(update={"tools": [t for t in listed.tools if t.name in granted]})


def _as_tool_result(result: HandlerResult) -> types.CallToolResult | None:
    if isinstance(result, types.CallToolResult):
        return result
    try:
        return types.CallToolResult.model_validate(result or {}, by_name=False)
    except ValidationError:
        return None


def _as_list_result(result: HandlerResult) -> types.ListToolsResult | None:
    if isinstance(result, types.ListToolsResult):
        return result
    try:
        return types.ListToolsResult.model_validate(result or {}, by_name=False)
    except ValidationError:
        return None


def gate_server(
    server: Server[Any] | MCPServer,
    admission: Admission,
    identify: Identify,
    *,
    grants: Grants | None = None,
) -> ClearanceServerMiddleware:
    """Add the middleware to ``server`` (innermost, so tracing middleware still sees refusals)."""
    middleware = ClearanceServerMiddleware(admission, identify, grants=grants)
    server.middleware.append(middleware)
    return middleware
