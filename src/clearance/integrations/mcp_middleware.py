"""Gate an MCP server you wrote yourself (``mcp`` 2.x): a server middleware around every action.

:class:`ClearanceServerMiddleware` sits in ``Server.middleware`` (or ``MCPServer(middleware=...)``)
and sees every inbound request before the SDK validates it. A ``tools/call`` reaches your handler
only after the gate permits exactly that call; otherwise the client gets a tool error naming the
rule and reason (or, for an approval, the approval id and link, or a URL elicitation). What the
handler returned is recorded against the decision. ``tools/list`` answers are cut down to the
tools the caller's session grants.

Resources and prompts are gated as the gateway gates them, on surfaces named after the server
(``payments:resources`` action ``read`` or ``subscribe``, ``payments:prompts`` action ``get``; see
:mod:`clearance.integrations.mcp_names`); a refusal is a JSON-RPC error naming the rule, and a
server's resource and prompt listings are empty for a session whose task does not grant them.
The decision code is the gateway's own
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
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import ValidationError

from clearance.integrations.mcp_admission import (
    Admission,
    Call,
    Grants,
    Identify,
    caller,
    error_result,
)
from clearance.integrations.mcp_content import (
    clear,
    contents_text,
    prompt_call,
    prompt_text,
    resource_call,
)
from clearance.integrations.mcp_names import PROMPTS, READ, RESOURCES, SUBSCRIBE, Kind, surface
from clearance.model.decision import Decision

_LISTINGS: dict[str, tuple[Kind, HandlerResult]] = {
    "resources/list": (RESOURCES, types.ListResourcesResult(resources=[])),
    "resources/templates/list": (
        RESOURCES,
        types.ListResourceTemplatesResult(resource_templates=[]),
    ),
    "prompts/list": (PROMPTS, types.ListPromptsResult(prompts=[])),
}


class ClearanceServerMiddleware:
    """A ``ServerMiddleware`` that gates every tool call, resource read and prompt get.

    ``server_name`` names the surfaces of the server's resources and prompts in the policy
    (``<server_name>:resources``, ``<server_name>:prompts``).
    """

    def __init__(
        self,
        admission: Admission,
        identify: Identify,
        *,
        server_name: str,
        grants: Grants | None = None,
    ) -> None:
        self.admission = admission
        self.identify = identify
        self.server_name = server_name
        self.grants = grants

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Decide tool calls, reads and gets before the handler; filter listings after it."""
        if ctx.request_id is None:
            return await call_next(ctx)
        if ctx.method == "tools/call":
            return await self._call(ctx, call_next)
        if ctx.method in ("resources/read", "resources/subscribe", "prompts/get"):
            return await self._content(ctx, call_next)
        if ctx.method == "tools/list" and self.grants is not None:
            return await self._list(ctx, call_next)
        if ctx.method in _LISTINGS and self.grants is not None:
            kind, empty = _LISTINGS[ctx.method]
            return await call_next(ctx) if self._sees(ctx, kind) else empty
        return await call_next(ctx)

    def _sees(self, ctx: ServerRequestContext[Any, Any], kind: Kind) -> bool:
        session = caller(self.identify, ctx)
        if isinstance(session, types.CallToolResult):
            return False  # no caller sees nothing; its reads say why
        granted = self.grants(session) if self.grants is not None else None
        return granted is None or surface(self.server_name, kind) in granted

    async def _content(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """A resource read or subscription, or a prompt get: decided, run, its output reported."""
        call = self._content_call(ctx)
        session, decision = await clear(self.admission, self.identify, ctx, call)
        if isinstance(decision, types.InputRequiredResult):
            return decision
        try:
            result = await call_next(ctx)
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
            await self.admission.record_output(session, decision, error=failure)
            raise
        await self.admission.record_output(session, decision, output=_content_output(result))
        return result

    def _content_call(self, ctx: ServerRequestContext[Any, Any]) -> Call:
        try:
            if ctx.method == "prompts/get":
                params = types.GetPromptRequestParams.model_validate(ctx.params or {})
                return prompt_call(self.server_name, params, params.name)
            read = types.ReadResourceRequestParams.model_validate(ctx.params or {})
        except ValidationError as exc:
            raise MCPError(
                INVALID_PARAMS, f"malformed {ctx.method} parameters: {exc.errors()[0]['msg']}"
            ) from exc
        action = READ if ctx.method == "resources/read" else SUBSCRIBE
        return resource_call(self.server_name, read.uri, read, action=action)

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


def _content_output(result: HandlerResult) -> str | None:
    """The text a read or get handler returned (for the outcome record and the taint scan)."""
    if isinstance(result, types.ReadResourceResult):
        return contents_text(result.contents)
    if isinstance(result, types.GetPromptResult):
        return prompt_text(result)
    try:
        return contents_text(types.ReadResourceResult.model_validate(result or {}).contents)
    except ValidationError:
        pass
    try:
        return prompt_text(types.GetPromptResult.model_validate(result or {}))
    except ValidationError:
        return None


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
    """Add the middleware to ``server`` (innermost, so tracing middleware still sees refusals).

    The server's name names its resource and prompt surfaces (``payments:resources``).
    """
    middleware = ClearanceServerMiddleware(
        admission, identify, server_name=server.name, grants=grants
    )
    server.middleware.append(middleware)
    return middleware
