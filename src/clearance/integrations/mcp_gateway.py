"""MCP gateway: one MCP server in front of many, every ``tools/call`` decided by the gate.

The gateway connects to the downstream servers of an ``mcp.json`` (``mcpServers``: stdio entries
with ``command``/``args``/``env``/``cwd``, HTTP entries with ``url``), and offers their tools under
namespaced names ``<server>__<tool>`` - the name the gate and the policy see. ``tools/list`` shows
only the tools the session's task grants; ``tools/call`` runs downstream only after a PERMIT for the
exact arguments, and its outcome is reported to the gate.

Refusals come back as tool results with ``is_error`` set, so the model reads the rule and reason
and can re-plan. An APPROVAL answers with the approval id, expiry and dashboard link (after waiting
``approval_wait_s`` for an operator, if set); the client retries the identical call with the
execution token in ``_meta["clearance/approval_token"]``. Tool annotations from downstream servers
are hints from untrusted code and play no part in decisions::

    gateway = Gateway(transport, session, load_upstreams(Path("mcp.json")), grants=grants)
    await gateway.serve_stdio()            # what `clearance mcp proxy` runs
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcp.types as types
from mcp import Client, StdioServerParameters
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from clearance.approvals.service import State
from clearance.approvals.waiting import PendingApproval
from clearance.errors import ConfigError, RequestError
from clearance.integrations.errors import (
    ApprovalPending,
    Denied,
    GateUnavailable,
    SandboxRequired,
    ToolRefused,
)
from clearance.integrations.mapping import (
    ApprovalLink,
    SessionHandle,
    build_request,
    refusal,
    refusal_text,
    result_of,
    sandbox_obligation,
)
from clearance.integrations.transport import (
    Transport,
    authorize,
    redemption,
    report,
    wait,
)
from clearance.model.decision import Decision
from clearance.model.request import Request

SEPARATOR = "__"
TOKEN_META_KEY = "clearance/approval_token"  # noqa: S105 - a metadata key name, not a secret

Grants = Callable[[], frozenset[str] | None]


@dataclass(frozen=True, slots=True)
class Upstream:
    """One downstream MCP server: stdio parameters or a streamable-HTTP URL."""

    name: str
    server: StdioServerParameters | str


def load_upstreams(path: Path) -> list[Upstream]:
    """The downstream servers of an ``mcp.json`` (the ``mcpServers`` map clients already use)."""
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the MCP server list `{path}`: {exc}") from exc
    servers = document.get("mcpServers") if isinstance(document, dict) else None
    if not isinstance(servers, dict) or not servers:
        raise ConfigError(
            f"`{path}` has no `mcpServers` object", hint='{"mcpServers": {"name": {...}}}'
        )
    return [_upstream(path, name, entry) for name, entry in servers.items()]


def _upstream(path: Path, name: str, entry: Any) -> Upstream:
    if SEPARATOR in name or not name:
        raise ConfigError(f"`{path}`: server name `{name}` must be non-empty without `{SEPARATOR}`")
    if not isinstance(entry, dict):
        raise ConfigError(f"`{path}`: mcpServers.{name} is not an object")
    if isinstance(entry.get("url"), str):
        return Upstream(name, entry["url"])
    if not isinstance(entry.get("command"), str):
        raise ConfigError(f"`{path}`: mcpServers.{name} needs `command` (stdio) or `url` (HTTP)")
    return Upstream(
        name,
        StdioServerParameters(
            command=entry["command"],
            args=[str(a) for a in entry.get("args", [])],
            env={str(k): str(v) for k, v in (entry.get("env") or {}).items()} or None,
            cwd=entry.get("cwd"),
        ),
    )


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


class Gateway:
    """The gateway for one trusted session; build the MCP server with :meth:`server`."""

    def __init__(
        self,
        transport: Transport,
        session: SessionHandle,
        upstreams: list[Upstream],
        *,
        grants: Grants | None = None,
        approval_url: ApprovalLink | None = None,
        approval_wait_s: float = 0.0,
    ) -> None:
        names = [u.name for u in upstreams]
        if len(set(names)) != len(names):
            raise ConfigError("two downstream MCP servers share a name")
        self.transport = transport
        self.session = session
        self.upstreams = upstreams
        self.grants = grants
        self.approval_url = approval_url
        self.approval_wait_s = approval_wait_s
        self._clients: dict[str, Client] = {}
        self._pending: dict[str, tuple[PendingApproval, Decision]] = {}

    # the MCP server -------------------------------------------------------------------------
    def server(self) -> Server[Any]:
        """The low-level MCP server; downstream connections live as long as it runs."""

        @asynccontextmanager
        async def lifespan(_: Server[Any]) -> AsyncIterator[dict[str, Any]]:
            async with self.connected():
                yield {}

        return Server(
            "clearance",
            instructions="Tools behind the clearance authorization gate.",
            lifespan=lifespan,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    async def serve_stdio(self) -> None:
        """Serve the gateway on this process's stdin and stdout."""
        server = self.server()
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[None]:
        """Connect every downstream server; a server that does not start stops the gateway."""
        async with AsyncExitStack() as stack:
            for upstream in self.upstreams:
                client = Client(upstream.server)
                self._clients[upstream.name] = await stack.enter_async_context(client)
            try:
                yield
            finally:
                self._clients.clear()

    # handlers -------------------------------------------------------------------------------
    async def _list_tools(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        del ctx, params
        granted = self.grants() if self.grants is not None else None
        tools: list[types.Tool] = []
        for server, client in self._clients.items():
            for tool in (await client.list_tools()).tools:
                name = f"{server}{SEPARATOR}{tool.name}"
                if granted is None or name in granted:
                    tools.append(tool.model_copy(update={"name": name}))
        return types.ListToolsResult(tools=tools)

    async def _call_tool(
        self, ctx: Any, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        del ctx
        server, _, raw = params.name.partition(SEPARATOR)
        client = self._clients.get(server)
        args = dict(params.arguments or {})
        token = (params.meta or {}).get(TOKEN_META_KEY) if params.meta is not None else None
        try:
            request = build_request(
                self.session,
                params.name,
                args,
                approval_token=token if isinstance(token, str) else None,
            )
            decision = await asyncio.to_thread(self._authorize, request)
            if sandbox_obligation(decision) is not None:
                raise SandboxRequired(params.name, decision)
        except ToolRefused as exc:
            return _error(refusal_text(exc))
        except RequestError as exc:
            return _error(f"blocked: {exc}")
        if client is None or not raw:
            return _error(f"no downstream server offers `{params.name}`")
        return await self._forward(client, raw, args, decision)

    def _authorize(self, request: Request) -> Decision:
        """A PERMIT, or the refusal; a retry of a call waiting for approval does not ask again.

        The gateway keeps the signed intent of each pending approval, so when the model retries
        the identical call after an operator approved it, the gateway claims the one-time token
        and redeems it for exactly that call. A token the client sends in ``_meta`` is honoured
        too; either way the gate checks it against the request digest.
        """
        held = self._pending.get(request.digest) if request.approval_token is None else None
        if held is not None:
            pending, first = held
            status = wait(self.transport, pending, timeout_s=0)
            if status.state is State.PENDING:
                still = refusal(first, approval_url=self.approval_url)
                raise still if still is not None else GateUnavailable("approval state unknown")
            del self._pending[request.digest]
            if status.token is None:
                raise Denied(
                    rule=f"approval:{status.state.value}",
                    reason=status.reason or f"the approval request was {status.state.value}",
                    decision=first,
                )
            request = redemption(request, status.token)
        try:
            return authorize(
                self.transport,
                request,
                approval_url=self.approval_url,
                wait_s=self.approval_wait_s,
            )
        except ApprovalPending as exc:
            if exc.decision is not None:
                self._pending[request.digest] = (
                    PendingApproval.from_decision(exc.decision, request),
                    exc.decision,
                )
            raise

    async def _forward(
        self, client: Client, raw: str, args: Mapping[str, Any], decision: Decision
    ) -> types.CallToolResult:
        try:
            result = await client.call_tool(raw, dict(args))
        except Exception as exc:  # noqa: BLE001 - a downstream failure is the tool's failure
            await asyncio.to_thread(self._record, decision, None, f"{type(exc).__name__}: {exc}")
            return _error(f"the downstream server failed: {exc}")
        error = _text_of(result) or "the tool reported an error" if result.is_error else None
        output = None if result.is_error else (result.structured_content or _text_of(result))
        await asyncio.to_thread(self._record, decision, output, error)
        return result

    def _record(self, decision: Decision, output: Any, error: str | None) -> None:
        result = result_of(decision, success=error is None, output=output, error=error)
        report(self.transport, result, agent_id=self.session.agent_id)
