"""MCP gateway: one MCP server in front of many, every ``tools/call`` decided by the gate.

The gateway connects to the downstream servers of an ``mcp.json`` (stdio and streamable HTTP,
see :mod:`clearance.integrations.mcp_downstream`) and offers their tools under namespaced names
``<server>__<tool>`` - the name the gate and the policy see. ``tools/list`` shows only the tools
the caller's session grants; ``tools/call`` runs downstream only after a PERMIT for the exact
arguments, and its outcome is reported to the gate (:mod:`clearance.integrations.mcp_admission`
holds that logic, shared with the server middleware). Resources and prompts are offered the same
way, every ``resources/read`` and ``prompts/get`` decided first
(:mod:`clearance.integrations.mcp_content`). When a downstream's tool list changes, each
connected client whose granted view changed gets ``notifications/tools/list_changed``; a change
of resources or prompts reaches each client that may see that server's.

Who calls is never taken from the client: over stdio it is the session the launcher exported,
over HTTP the agent key's agent and a session bound to it (:mod:`clearance.integrations.mcp_front`).
Tool annotations from downstream servers are hints from untrusted code and play no part in
decisions::

    gateway = Gateway(transport, fixed_session(session), load_upstreams(Path("mcp.json")),
                      grants=session_grants(transport))
    await gateway.serve_stdio()            # what `clearance mcp proxy` runs
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp.types as types
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.session import ServerSession
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ServerEvent,
    ToolsListChanged,
)

from clearance.integrations.mapping import SessionHandle
from clearance.integrations.mcp_admission import (
    Admission,
    Grants,
    Identify,
    caller,
    error_result,
)
from clearance.integrations.mcp_content import Content, connection_of
from clearance.integrations.mcp_downstream import Change, Downstreams, Upstream
from clearance.integrations.mcp_names import namespaced, split_name
from clearance.integrations.sidecar import SidecarTransport
from clearance.integrations.transport import InProcessTransport
from clearance.model.decision import Decision

log = logging.getLogger("clearance.integrations.mcp")

INSTRUCTIONS = "Tools behind the clearance authorization gate."
MAX_REMEMBERED = 10_000
NOTIFICATIONS = NotificationOptions(
    prompts_changed=True, resources_changed=True, tools_changed=True
)


class _GatewayServer(Server[Any]):
    """A low-level server that declares ``listChanged`` for tools, resources and prompts.

    The gateway forwards every list change, and clients that honour the capability refresh only
    when it is declared. The streamable-HTTP manager asks for the options without arguments, so
    the default is set here, for every front.
    """

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NOTIFICATIONS, experimental_capabilities, extensions
        )


def session_grants(transport: InProcessTransport) -> Grants:
    """The tools a session's task grants, for a caller that owns the session (else none).

    The ownership check keeps one agent from learning another session's grants by naming it.
    """

    def grants(session: SessionHandle) -> frozenset[str] | None:
        state = transport.gate.store.session_state(session.session_id)
        if state is None or state.session.agent_id != session.agent_id:
            return frozenset()
        return transport.granted_tools(session.session_id)

    return grants


def remote_grants(transport: SidecarTransport) -> Grants:
    """The tools a session's task grants, as a sidecar answers for the transport's agent key.

    The sidecar answers only for sessions of the key's own agent (others look unknown and show
    nothing); when it cannot answer, nothing is shown. Calls are decided either way.
    """

    def grants(session: SessionHandle) -> frozenset[str] | None:
        return transport.granted_tools(session.session_id)

    return grants


class Gateway:
    """The gateway: downstream servers, the admission of every call, and the MCP server."""

    def __init__(
        self,
        admission: Admission,
        identify: Identify,
        upstreams: list[Upstream],
        *,
        grants: Grants | None = None,
    ) -> None:
        self.admission = admission
        self.identify = identify
        self.grants = grants
        self.downstreams = Downstreams(
            upstreams, on_change=self._downstream_changed, on_updated=self._resource_updated
        )
        self.content = Content(
            admission, identify, self.downstreams, grants=grants, remember=self._remember
        )
        self._bus = InMemorySubscriptionBus()
        # Handshake-era client connections (by MCP session id; one local connection over stdio),
        # with the tool names each last saw (None before its first tools/list), so a change is
        # announced only where it shows.
        self._seen: OrderedDict[str, tuple[ServerSession, SessionHandle, frozenset[str] | None]]
        self._seen = OrderedDict()

    # the MCP server -------------------------------------------------------------------------
    def server(self) -> Server[Any]:
        """The low-level MCP server; downstream connections live as long as it runs."""

        @asynccontextmanager
        async def lifespan(_: Server[Any]) -> AsyncIterator[dict[str, Any]]:
            async with self.downstreams.connected():
                yield {}

        return _GatewayServer(
            "clearance",
            instructions=INSTRUCTIONS,
            lifespan=lifespan,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_subscriptions_listen=ListenHandler(self._bus),
            **self.content.handlers(),
        )

    async def serve_stdio(self) -> None:
        """Serve the gateway on this process's stdin and stdout."""
        server = self.server()
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    # handlers -------------------------------------------------------------------------------
    def _visible(self, session: SessionHandle) -> list[types.Tool]:
        granted = self.grants(session) if self.grants is not None else None
        tools: list[types.Tool] = []
        for server, offered in self.downstreams.tools().items():
            for tool in offered:
                name = namespaced(server, tool.name)
                if granted is None or name in granted:
                    tools.append(tool.model_copy(update={"name": name}))
        return tools

    async def _list_tools(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        del params
        session = caller(self.identify, ctx)
        if isinstance(session, types.CallToolResult):
            return types.ListToolsResult(tools=[])
        tools = self._visible(session)
        if getattr(ctx.session, "can_send_request", False):
            self._remember(ctx, session, frozenset(t.name for t in tools))
        return types.ListToolsResult(tools=tools)

    def _remember(
        self, ctx: Any, session: SessionHandle, names: frozenset[str] | None = None
    ) -> None:
        """Keep a connection to notify; ``names`` are the tools it was shown, if it listed them."""
        connection = connection_of(ctx)
        if names is None and connection in self._seen:
            names = self._seen[connection][2]
        self._seen[connection] = (ctx.session, session, names)
        self._seen.move_to_end(connection)
        while len(self._seen) > MAX_REMEMBERED:
            self._seen.popitem(last=False)

    async def _call_tool(
        self, ctx: Any, params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        session = caller(self.identify, ctx)
        if isinstance(session, types.CallToolResult):
            return session
        server, raw = split_name(params.name)
        if not server:
            # Not `<server>__<tool>`: perhaps a prompt or resource surface (`bank:resources`)
            # named as a tool. It is nothing this gateway calls, so nothing is put to the gate.
            return error_result(
                f"`{params.name[:200]}` is not a tool of this gateway; "
                "use a name `tools/list` returns (<server>__<tool>)"
            )
        args = dict(params.arguments or {})
        admitted = await self.admission.admit(ctx, session, params)
        if not isinstance(admitted, Decision):
            return admitted
        client = self.downstreams.client(server)
        if client is None:
            missing = f"no downstream server offers `{params.name}`"
            await self.admission.record(session, admitted, None, failure=missing)
            return error_result(missing)
        try:
            result = await client.call_tool(raw, args)
        except Exception as exc:  # noqa: BLE001 - a downstream failure is the tool's failure
            failure = f"{type(exc).__name__}: {exc}"
            await self.admission.record(session, admitted, None, failure=failure)
            return error_result(f"the downstream server failed: {exc}")
        await self.admission.record(session, admitted, result)
        return result

    # list changes ---------------------------------------------------------------------------
    async def _resource_updated(self, server: str, uri: str) -> None:
        await self.content.updated(server, uri)

    async def _downstream_changed(self, server: str, change: Change) -> None:
        """Tell each client whose view changed; modern clients get a listen event."""
        log.info("downstream `%s` changed its %s", server, change)
        for connection, (client, session, before) in list(self._seen.items()):
            try:
                if change == "tools":
                    now = frozenset(t.name for t in self._visible(session))
                    if before is None or now == before:
                        continue
                    self._seen[connection] = (client, session, now)
                    await client.send_tool_list_changed()
                elif self.content.sees(session, server, change):
                    if change == "resources":
                        await client.send_resource_list_changed()
                    else:
                        await client.send_prompt_list_changed()
            except Exception:  # a client that went away must not stop the others' notices
                log.info("a client left before hearing of the %s change", change, exc_info=True)
                self._seen.pop(connection, None)
        await self._bus.publish(_EVENTS[change])


_EVENTS: dict[Change, ServerEvent] = {
    "tools": ToolsListChanged(),
    "resources": ResourcesListChanged(),
    "prompts": PromptsListChanged(),
}
