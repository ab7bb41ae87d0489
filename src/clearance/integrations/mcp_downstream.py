"""The MCP servers behind the gateway: read from an ``mcp.json``, connected, their tools cached.

An ``mcp.json`` is the ``mcpServers`` map clients already use. Each entry is either a stdio server
(``command``, ``args``, ``env``, ``cwd``) or a streamable-HTTP server (``"type": "http"`` or just a
``url``, with optional ``headers`` and ``timeout``). Values of ``env`` and ``headers`` may name
environment variables as ``${env:VAR}`` (Cursor's spelling) or ``${VAR}`` (Claude Code's), so a
bearer token stays out of the file; a variable that is not set is an error, never an empty
header::

    upstreams = load_upstreams(Path("mcp.json"))
    async with Downstreams(upstreams, on_change=notify).connected() as servers:
        tools = servers.tools()["bank"]          # cached; refreshed on tools/list_changed
        prompts = await servers.list_prompts("bank")      # live: prompts and resources

Downstream servers are untrusted: their tool lists only describe what they offer, and a server
that does not start stops the gateway rather than leaving a silent gap.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
import anyio.abc
import httpx2
import mcp.types as types
from mcp import Client, StdioServerParameters
from mcp.client.session import IncomingMessage, MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client

from clearance.errors import ConfigError
from clearance.integrations.mcp_names import SEPARATOR, Kind

DEFAULT_HTTP_TIMEOUT_S = 30.0
HTTP_READ_TIMEOUT_S = 300.0
_VARIABLE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)\}")
_KNOWN_KEYS = frozenset({"type", "command", "args", "env", "cwd", "url", "headers", "timeout"})

log = logging.getLogger("clearance.integrations.mcp")

Change = Literal["tools", "resources", "prompts"]
OnChange = Callable[[str, Change], Coroutine[Any, Any, None]]
OnUpdated = Callable[[str, str], Coroutine[Any, Any, None]]
_CHANGES: dict[type[Any], Change] = {
    types.ResourceListChangedNotification: "resources",
    types.PromptListChangedNotification: "prompts",
}
_Page = TypeVar(
    "_Page",
    types.ListToolsResult,
    types.ListResourcesResult,
    types.ListResourceTemplatesResult,
    types.ListPromptsResult,
)


@dataclass(frozen=True, slots=True)
class HTTPServer:
    """A streamable-HTTP downstream: its URL, the headers sent with every request, a timeout."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = DEFAULT_HTTP_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class Upstream:
    """One downstream MCP server: stdio parameters or a streamable-HTTP endpoint."""

    name: str
    server: StdioServerParameters | HTTPServer


def load_upstreams(path: Path, environ: Mapping[str, str] | None = None) -> list[Upstream]:
    """The downstream servers of an ``mcp.json``, environment variables expanded."""
    _, servers = read_servers(path)
    return parse_upstreams(path, servers, os.environ if environ is None else environ)


def read_servers(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(whole document, its mcpServers map)`` of an ``mcp.json``, unexpanded."""
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the MCP server list `{path}`: {exc}") from exc
    servers = document.get("mcpServers") if isinstance(document, dict) else None
    if not isinstance(servers, dict) or not servers:
        raise ConfigError(
            f"`{path}` has no `mcpServers` object", hint='{"mcpServers": {"name": {...}}}'
        )
    return document, servers


def parse_upstreams(
    path: Path, servers: Mapping[str, Any], environ: Mapping[str, str]
) -> list[Upstream]:
    """Check every entry of ``servers`` (read from ``path``) and expand its variables."""
    return [_upstream(path, name, entry, environ) for name, entry in servers.items()]


def _upstream(path: Path, name: str, entry: Any, env: Mapping[str, str]) -> Upstream:
    where = f"`{path}`: mcpServers.{name}"
    if SEPARATOR in name or not name or name.endswith("_"):
        # `<server>__<tool>` splits at its first `__`: only then does it name one server.
        raise ConfigError(
            f"`{path}`: server name `{name}` must be non-empty, without `{SEPARATOR}`, "
            "and must not end with `_`",
            hint="rename the entry in the mcpServers map (its tools are then `<name>__<tool>`)",
        )
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is not an object")
    unknown = sorted(set(entry) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"{where} has unknown keys {', '.join(f'`{k}`' for k in unknown)}",
            hint="stdio servers take command/args/env/cwd, HTTP servers type/url/headers/timeout",
        )
    kind = entry.get("type")
    if kind in ("http", "streamable-http") or (kind is None and "url" in entry):
        return Upstream(name, _http_server(where, entry, env))
    if kind not in (None, "stdio"):
        raise ConfigError(
            f"{where}.type `{kind}` is not supported",
            hint='use "stdio" or "http" (streamable HTTP); SSE servers are not proxied',
        )
    if not isinstance(entry.get("command"), str):
        raise ConfigError(f"{where} needs `command` (stdio) or `url` (HTTP)")
    return Upstream(
        name,
        StdioServerParameters(
            command=_expand(entry["command"], env, f"{where}.command"),
            args=[_expand(str(a), env, f"{where}.args") for a in entry.get("args", [])],
            env=_strings(entry.get("env"), env, f"{where}.env") or None,
            cwd=entry.get("cwd"),
        ),
    )


def _http_server(where: str, entry: dict[str, Any], env: Mapping[str, str]) -> HTTPServer:
    url = entry.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.url must be an http:// or https:// URL")
    timeout = entry.get("timeout", DEFAULT_HTTP_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{where}.timeout must be a positive number of seconds")
    return HTTPServer(
        url=_expand(url, env, f"{where}.url"),
        headers=_strings(entry.get("headers"), env, f"{where}.headers"),
        timeout_s=float(timeout),
    )


def _strings(value: Any, env: Mapping[str, str], where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object of strings")
    return {str(k): _expand(str(v), env, f"{where}.{k}") for k, v in value.items()}


def _expand(value: str, env: Mapping[str, str], where: str) -> str:
    """``value`` with ``${env:VAR}`` / ``${VAR}`` replaced; an unset variable is an error."""

    def variable(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(
                f"{where} names `${{{match.group(0)[2:-1]}}}` but `{name}` is not set",
                hint=f"export {name} in the environment that starts the gateway",
            )
        return env[name]

    return _VARIABLE.sub(variable, value)


def _first_cause(exc: BaseException) -> str:
    """The innermost error of a task-group failure, as one line."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


class Downstreams:
    """The connected downstream servers and their cached tool lists.

    The cache is what ``tools/list`` answers from; a downstream's
    ``notifications/tools/list_changed`` refreshes its entry and then calls ``on_change`` with the
    server's name and ``"tools"``, so the gateway can tell its own clients. Resources and prompts
    are listed live (a server need not announce their changes); their list-changed notices call
    ``on_change`` with ``"resources"`` or ``"prompts"``, and ``notifications/resources/updated``
    calls ``on_updated`` with the server and the URI as that server spells it.
    """

    def __init__(
        self,
        upstreams: list[Upstream],
        *,
        on_change: OnChange | None = None,
        on_updated: OnUpdated | None = None,
    ) -> None:
        names = [u.name for u in upstreams]
        if len(set(names)) != len(names):
            raise ConfigError("two downstream MCP servers share a name")
        self.upstreams = upstreams
        self.on_change = on_change
        self.on_updated = on_updated
        self._clients: dict[str, Client] = {}
        self._tools: dict[str, list[types.Tool]] = {}
        self._tasks: anyio.abc.TaskGroup | None = None

    def client(self, server: str) -> Client | None:
        """The connected client of ``server``, or None if there is no such downstream."""
        return self._clients.get(server)

    def tools(self) -> dict[str, list[types.Tool]]:
        """Every downstream's tools (raw names), by server name, as last listed."""
        return self._tools

    def offering(self, kind: Kind) -> list[tuple[str, Client]]:
        """The connected servers that declared ``kind`` (resources or prompts), with their clients."""
        offering: list[tuple[str, Client]] = []
        for name, client in self._clients.items():
            capabilities = client.server_capabilities
            declared = capabilities.resources if kind == "resources" else capabilities.prompts
            if declared is not None:
                offering.append((name, client))
        return offering

    async def list_resources(self, server: str) -> list[types.Resource]:
        """``server``'s resources, every page, as it lists them now."""
        client = self._clients[server]
        pages = await _pages(
            lambda cursor: client.list_resources(cursor=cursor, cache_mode="bypass")
        )
        return [r for page in pages for r in page.resources]

    async def list_resource_templates(self, server: str) -> list[types.ResourceTemplate]:
        """``server``'s resource templates, every page, as it lists them now."""
        client = self._clients[server]
        pages = await _pages(
            lambda cursor: client.list_resource_templates(cursor=cursor, cache_mode="bypass")
        )
        return [t for page in pages for t in page.resource_templates]

    async def list_prompts(self, server: str) -> list[types.Prompt]:
        """``server``'s prompts, every page, as it lists them now."""
        client = self._clients[server]
        pages = await _pages(lambda cursor: client.list_prompts(cursor=cursor, cache_mode="bypass"))
        return [p for page in pages for p in page.prompts]

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[Downstreams]:
        """Connect every downstream server and list its tools; a failure stops the gateway."""
        async with AsyncExitStack() as stack:
            for upstream in self.upstreams:
                try:
                    await self._connect(stack, upstream)
                except Exception as exc:
                    raise ConfigError(
                        f"the downstream MCP server `{upstream.name}` could not be reached: "
                        f"{_first_cause(exc)}",
                        hint="check its entry in the mcp.json; start it alone to see its errors",
                    ) from exc
            # Re-listing after a notification is a request of its own: it runs in this task
            # group, never inside the client's read loop that delivered the notification.
            async with anyio.create_task_group() as self._tasks:
                try:
                    yield self
                finally:
                    self._tasks.cancel_scope.cancel()
                    self._tasks = None
                    self._clients.clear()
                    self._tools.clear()

    async def _connect(self, stack: AsyncExitStack, upstream: Upstream) -> None:
        client = Client(
            await self._transport(stack, upstream.server),
            mode="legacy",
            message_handler=self._handler(upstream.name),
        )
        self._clients[upstream.name] = await stack.enter_async_context(client)
        await self.refresh(upstream.name)

    @staticmethod
    async def _transport(stack: AsyncExitStack, server: StdioServerParameters | HTTPServer) -> Any:
        if isinstance(server, StdioServerParameters):
            return server
        http = await stack.enter_async_context(
            httpx2.AsyncClient(
                headers=dict(server.headers),
                timeout=httpx2.Timeout(server.timeout_s, read=HTTP_READ_TIMEOUT_S),
            )
        )
        return streamable_http_client(server.url, http_client=http)

    async def refresh(self, server: str) -> None:
        """List ``server``'s tools again (every page) into the cache."""
        client = self._clients[server]
        pages = await _pages(lambda cursor: client.list_tools(cursor=cursor, cache_mode="bypass"))
        self._tools[server] = [t for page in pages for t in page.tools]

    def _handler(self, server: str) -> MessageHandlerFnT:
        async def handle(message: IncomingMessage) -> None:
            if self._tasks is None:
                return
            if isinstance(message, types.ToolListChangedNotification):
                self._tasks.start_soon(self._tools_changed, server)
            elif type(message) in _CHANGES and self.on_change is not None:
                self._tasks.start_soon(self.on_change, server, _CHANGES[type(message)])
            elif isinstance(message, types.ResourceUpdatedNotification) and self.on_updated:
                self._tasks.start_soon(self.on_updated, server, message.params.uri)

        return handle

    async def _tools_changed(self, server: str) -> None:
        if server not in self._clients:
            return
        try:
            await self.refresh(server)
        except Exception:  # a broken re-list keeps the old list; calls are still decided
            log.exception("could not re-list the tools of downstream `%s`", server)
            return
        if self.on_change is not None:
            await self.on_change(server, "tools")


async def _pages(fetch: Callable[[str | None], Awaitable[_Page]]) -> list[_Page]:
    """Every page of a paginated listing, following ``next_cursor``."""
    pages: list[_Page] = []
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        pages.append(page)
        cursor = page.next_cursor
        if not cursor:
            return pages
