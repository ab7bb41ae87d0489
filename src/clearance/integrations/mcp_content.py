"""Resources and prompts of the downstream servers: namespaced, filtered by grants, every read gated.

A resource's text or a prompt's messages go straight into the model's context, so reading them is
an action like a tool call: ``resources/read`` is decided as action ``read`` on the server's
surface ``<server>:resources`` (the URI as target and ``args.uri``), ``resources/subscribe`` as
action ``subscribe`` on the same surface, and ``prompts/get`` as action ``get`` on
``<server>:prompts`` (the prompt's name as target, ``args.name`` and ``args.arguments``); see
:mod:`clearance.integrations.mcp_names`. A surface the policy does not declare is an unknown tool:
SILENCE, nothing read. Listings show a server's resources or prompts only to sessions whose task
grants its surface.

What comes back is untrusted input, reported to the gate as a tool's output is: the outcome is
recorded against the decision, and a surface the policy marks ``untrusted_source`` (or does not
know) taints the session and has its text scanned for injections.

Refusals are JSON-RPC errors (a resource has no ``is_error``) whose message names the rule and the
reason, or the approval id, link and expiry; approvals take the same roads as tool calls
(:mod:`clearance.integrations.mcp_admission`)::

    content = Content(admission, identify, downstreams, grants=grants)
    Server("clearance", **content.handlers(), ...)
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import mcp.types as types
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from clearance.errors import ClearanceError, RequestError
from clearance.integrations.errors import ApprovalPending, ToolRefused
from clearance.integrations.mapping import SessionHandle, refusal_text
from clearance.integrations.mcp_admission import Admission, Call, Grants, Identify
from clearance.integrations.mcp_downstream import Downstreams
from clearance.integrations.mcp_names import (
    GET,
    PROMPTS,
    READ,
    RESOURCES,
    SUBSCRIBE,
    Kind,
    namespaced,
    resource_uri,
    split_name,
    split_resource_uri,
    surface,
)
from clearance.model.decision import Decision

log = logging.getLogger("clearance.integrations.mcp")

REFUSED = -32003
"""JSON-RPC error code of a request the gate did not permit (``data.rule`` names the rule)."""

MCP_SESSION_HEADER = "mcp-session-id"

Remember = Callable[[Any, SessionHandle], None]
_Entry = TypeVar("_Entry", types.Resource, types.ResourceTemplate, types.Prompt)


def connection_of(ctx: Any) -> str:
    """A stable key of the client connection ``ctx`` came on.

    ``ctx.session`` is a new object for every request; over HTTP the MCP session id names the
    connection, and a stdio or in-process server has one connection.
    """
    request = getattr(ctx, "request", None)
    return request.headers.get(MCP_SESSION_HEADER, "") if request is not None else ""


def refused(exc: ToolRefused) -> MCPError:
    """The error a client gets instead of a resource or prompt: rule and reason (or approval)."""
    data: dict[str, Any] = {"rule": exc.rule}
    if isinstance(exc, ApprovalPending):
        data.update(approval_id=exc.approval_id, expires_at=exc.expires_at, url=exc.url)
    return MCPError(REFUSED, refusal_text(exc), data)


def contents_text(contents: list[types.TextResourceContents | types.BlobResourceContents]) -> str:
    """What a resource read put in the model's reach, as text for the outcome record."""
    return "\n".join(
        c.text if isinstance(c, types.TextResourceContents) else f"[{c.mime_type or 'blob'}]"
        for c in contents
    )


def prompt_text(result: types.GetPromptResult) -> str:
    """The description and text messages of a prompt, for the outcome record."""
    texts = [result.description or ""]
    texts += [m.content.text for m in result.messages if isinstance(m.content, types.TextContent)]
    return "\n".join(t for t in texts if t)


def resource_call(
    server: str, uri: str, params: types.RequestParams, *, action: str = READ
) -> Call:
    """What the gate decides for reading (or subscribing to) ``server``'s resource ``uri``."""
    return Call(surface(server, RESOURCES), {"uri": uri}, params, action=action, target=uri)


def prompt_call(server: str, params: types.GetPromptRequestParams, name: str) -> Call:
    """What the gate decides for getting ``server``'s prompt ``name`` with its arguments."""
    args = {"name": name, "arguments": dict(params.arguments or {})}
    return Call(surface(server, PROMPTS), args, params, action=GET, target=name)


async def clear(
    admission: Admission, identify: Identify, ctx: Any, call: Call
) -> tuple[SessionHandle, Decision | types.InputRequiredResult]:
    """The caller and the gate's PERMIT (or input request) for ``call``; else an ``MCPError``."""
    try:
        session = identify(ctx)
        return session, await admission.clear(ctx, session, call)
    except ToolRefused as exc:
        raise refused(exc) from exc
    except ClearanceError as exc:  # arguments that are not JSON, a store that failed
        raise MCPError(REFUSED, f"blocked: {exc}") from exc


class Content:
    """The gateway's ``resources/*`` and ``prompts/*`` handlers over the downstream servers."""

    def __init__(
        self,
        admission: Admission,
        identify: Identify,
        downstreams: Downstreams,
        *,
        grants: Grants | None = None,
        remember: Remember | None = None,
    ) -> None:
        self.admission = admission
        self.identify = identify
        self.downstreams = downstreams
        self.grants = grants
        self.remember = remember
        # Handshake-era subscribers of each downstream resource: (server, URI) -> the session of
        # each subscribed connection, by connection (see `connection_of`).
        self._subscribers: dict[tuple[str, str], dict[str, Any]] = {}

    def handlers(self) -> dict[str, Any]:
        """The low-level ``Server`` constructor arguments that serve resources and prompts."""
        return {
            "on_list_resources": self.list_resources,
            "on_list_resource_templates": self.list_resource_templates,
            "on_read_resource": self.read_resource,
            "on_subscribe_resource": self.subscribe,
            "on_unsubscribe_resource": self.unsubscribe,
            "on_list_prompts": self.list_prompts,
            "on_get_prompt": self.get_prompt,
        }

    def sees(self, session: SessionHandle, server: str, kind: Kind) -> bool:
        """Whether ``session``'s task grants ``server``'s resources or prompts (listing only)."""
        granted = self.grants(session) if self.grants is not None else None
        return granted is None or surface(server, kind) in granted

    # listings -------------------------------------------------------------------------------
    async def list_resources(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        """Every granted server's resources, their URIs under the gateway's namespace."""
        del params
        listing = self.downstreams.list_resources
        resources = await self._collect(ctx, RESOURCES, listing, _rename_resource)
        return types.ListResourcesResult(resources=resources)

    async def list_resource_templates(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        """Every granted server's URI templates, under the gateway's namespace."""
        del params
        listing = self.downstreams.list_resource_templates
        templates = await self._collect(ctx, RESOURCES, listing, _rename_template)
        return types.ListResourceTemplatesResult(resource_templates=templates)

    async def list_prompts(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        """Every granted server's prompts, named ``<server>__<prompt>``."""
        del params
        listing = self.downstreams.list_prompts
        prompts = await self._collect(ctx, PROMPTS, listing, _rename_prompt)
        return types.ListPromptsResult(prompts=prompts)

    async def _collect(
        self,
        ctx: Any,
        kind: Kind,
        listing: Callable[[str], Awaitable[list[_Entry]]],
        rename: Callable[[str, _Entry], _Entry],
    ) -> list[_Entry]:
        """The entries of every server the caller may see, renamed into the namespace.

        A server that fails to list is left out, not the others: a listing decides nothing.
        """
        entries: list[_Entry] = []
        for server in await self._servers(ctx, kind):
            try:
                listed = await listing(server)
            except Exception:  # one broken server must not hide the rest
                log.warning("downstream `%s` could not be listed", server, exc_info=True)
                continue
            entries.extend(rename(server, entry) for entry in listed)
        return entries

    async def _servers(self, ctx: Any, kind: Kind) -> list[str]:
        """The servers offering ``kind`` whose listing the caller may see (none for no caller)."""
        try:
            session = self.identify(ctx)
        except Exception:  # noqa: BLE001 - no caller sees nothing; reads say why
            return []
        if self.remember is not None and getattr(ctx.session, "can_send_request", False):
            self.remember(ctx, session)
        offering = self.downstreams.offering(kind)
        return [name for name, _ in offering if self.sees(session, name, kind)]

    # gated requests -------------------------------------------------------------------------
    async def read_resource(
        self, ctx: Any, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        """Read a resource once the gate permits action ``read`` on its server's surface."""
        server, uri = _split_uri(params.uri)
        call = resource_call(server, uri, params)
        session, decision = await clear(self.admission, self.identify, ctx, call)
        if isinstance(decision, types.InputRequiredResult):
            return decision
        client = await self._client(session, decision, server)
        try:
            result = await client.read_resource(uri, cache_mode="bypass")
        except Exception as exc:
            raise await self._failed(session, decision, exc) from exc
        await self.admission.record_output(session, decision, output=contents_text(result.contents))
        contents = [
            c.model_copy(update={"uri": resource_uri(server, c.uri)}) for c in result.contents
        ]
        return result.model_copy(update={"contents": contents})

    async def get_prompt(
        self, ctx: Any, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        """Get a prompt once the gate permits action ``get`` on its server's prompts surface."""
        server, name = split_name(params.name)
        if not server:
            raise MCPError(
                INVALID_PARAMS,
                f"`{params.name[:200]}` is not a prompt of this gateway; "
                "use a name `prompts/list` returns (<server>__<prompt>)",
            )
        call = prompt_call(server, params, name)
        session, decision = await clear(self.admission, self.identify, ctx, call)
        if isinstance(decision, types.InputRequiredResult):
            return decision
        client = await self._client(session, decision, server)
        try:
            result = await client.get_prompt(name, params.arguments)
        except Exception as exc:
            raise await self._failed(session, decision, exc) from exc
        await self.admission.record_output(session, decision, output=prompt_text(result))
        return result

    async def subscribe(self, ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        """Subscribe to a resource once the gate permits action ``subscribe`` on its surface.

        Downstream subscriptions are shared by the gateway's clients: the first subscriber
        subscribes downstream, and each ``notifications/resources/updated`` reaches the clients
        that subscribed to that URI.
        """
        server, uri = _split_uri(params.uri)
        call = resource_call(server, uri, params, action=SUBSCRIBE)
        session, decision = await clear(self.admission, self.identify, ctx, call)
        if isinstance(decision, types.InputRequiredResult):
            raise MCPError(INVALID_PARAMS, "subscriptions need a handshake-era connection")
        subscribers = self._subscribers.setdefault((server, uri), {})
        if not subscribers:
            client = await self._client(session, decision, server)
            try:
                await _subscribe_downstream(client, server, uri)
            except Exception as exc:
                raise await self._failed(session, decision, exc) from exc
        subscribers[connection_of(ctx)] = ctx.session
        await self.admission.record_output(session, decision, output=f"subscribed to {uri}")
        return types.EmptyResult()

    async def unsubscribe(
        self, ctx: Any, params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        """Stop sending this client updates of a resource (nothing to decide: it only stops).

        The last subscriber's leaving ends the downstream subscription too.
        """
        server, uri = _split_uri(params.uri)
        subscribers = self._subscribers.get((server, uri), {})
        if subscribers.pop(connection_of(ctx), None) is None:
            return types.EmptyResult()
        client = self.downstreams.client(server)
        if not subscribers and client is not None:
            del self._subscribers[(server, uri)]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    await client.session.unsubscribe_resource(uri)
            except Exception:  # the client is unsubscribed either way; updates are dropped
                log.info("downstream `%s` kept its subscription to %s", server, uri, exc_info=True)
        return types.EmptyResult()

    async def updated(self, server: str, uri: str) -> None:
        """Tell each client subscribed to ``server``'s ``uri`` that it changed."""
        subscribers = self._subscribers.get((server, uri), {})
        for connection, client in list(subscribers.items()):
            try:
                await client.send_resource_updated(resource_uri(server, uri))
            except Exception:  # a client that went away must not stop the others' notices
                log.info("a subscriber left before hearing of %s", uri, exc_info=True)
                subscribers.pop(connection, None)

    async def _client(self, session: SessionHandle, decision: Decision, server: str) -> Client:
        """The permitted request's downstream, or (recorded as its failure) the error to raise."""
        client = self.downstreams.client(server)
        if client is None:
            raise await self._failed(
                session, decision, LookupError(f"no downstream server `{server}`")
            )
        return client

    async def _failed(self, session: SessionHandle, decision: Decision, exc: Exception) -> MCPError:
        """Record a permitted request that failed downstream; the error the client gets."""
        failure = f"{type(exc).__name__}: {exc}"
        await self.admission.record_output(session, decision, error=failure)
        if isinstance(exc, MCPError):
            return MCPError(exc.code, f"the downstream server failed: {exc.message}")
        return MCPError(INTERNAL_ERROR, f"the downstream server failed: {exc}")


async def _subscribe_downstream(client: Client, server: str, uri: str) -> None:
    resources = client.server_capabilities.resources
    if resources is None or not resources.subscribe:
        raise LookupError(f"the downstream server `{server}` offers no subscriptions")
    with warnings.catch_warnings():
        # resources/subscribe is handshake-era only; the gateway's downstreams speak it.
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await client.session.subscribe_resource(uri)


def _rename_resource(server: str, resource: types.Resource) -> types.Resource:
    return resource.model_copy(update={"uri": resource_uri(server, str(resource.uri))})


def _rename_template(server: str, template: types.ResourceTemplate) -> types.ResourceTemplate:
    return template.model_copy(update={"uri_template": resource_uri(server, template.uri_template)})


def _rename_prompt(server: str, prompt: types.Prompt) -> types.Prompt:
    return prompt.model_copy(update={"name": namespaced(server, prompt.name)})


def _split_uri(uri: str) -> tuple[str, str]:
    try:
        return split_resource_uri(uri)
    except RequestError as exc:
        raise MCPError(INVALID_PARAMS, str(exc)) from exc
