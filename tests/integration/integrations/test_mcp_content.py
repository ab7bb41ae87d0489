"""Resources and prompts through the MCP gateway: namespaced, filtered by grants, every read gated.

Two real downstream servers run as stdio subprocesses of the gateway: ``bank`` (granted to the
session's task) and ``vault`` (the same server under another name, not granted), each with its
own ledger, so a test proves which downstream a request reached - or that none did.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread
import httpx2
import mcp.types as types
import pytest
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from tests.integration.integrations.kit import (
    approve,
    claim_token,
    decisions_in_log,
    first_pending,
    outcomes_for,
)
from tests.integration.integrations.mcp_bank_server import INJECTED, bank_server
from tests.integration.integrations.mcp_kit import (
    DASHBOARD,
    agent_key,
    ledger,
    ledger_lines,
    mcp_runtime,
    mcp_session,
    serving,
    stdio_entry,
    write_mcp_json,
)

from clearance.cli.commands.mcp import key_checker, session_lookup
from clearance.cli.runtime import Runtime
from clearance.integrations.mapping import SessionHandle, approval_link, build_request
from clearance.integrations.mcp_admission import TOKEN_META_KEY, Admission, fixed_session
from clearance.integrations.mcp_content import REFUSED
from clearance.integrations.mcp_downstream import Upstream, load_upstreams
from clearance.integrations.mcp_front import HTTPSessions, http_app
from clearance.integrations.mcp_gateway import Gateway, session_grants
from clearance.integrations.transport import InProcessTransport

__all__ = ["ledger", "mcp_runtime", "mcp_session"]  # fixtures

WELCOME = "clearance://bank/bank://notices/welcome"
VAULT_CODES = "clearance://bank/bank://branch/vault-codes"


@pytest.fixture
def vault_ledger(tmp_path: Path) -> Path:
    path = tmp_path / "vault.jsonl"
    path.touch()
    return path


@pytest.fixture
def upstreams(tmp_path: Path, ledger: Path, vault_ledger: Path) -> list[Upstream]:
    servers = {"bank": stdio_entry(ledger), "vault": stdio_entry(vault_ledger)}
    return load_upstreams(write_mcp_json(tmp_path / "mcp.json", servers))


def gateway(runtime: Runtime, session: SessionHandle, upstreams: list[Upstream]) -> Gateway:
    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
    admission = Admission(transport, approval_url=approval_link(DASHBOARD))
    return Gateway(admission, fixed_session(session), upstreams, grants=session_grants(transport))


def run(gw: Gateway, script: Any, **options: Any) -> Any:
    async def main() -> Any:
        async with Client(gw.server(), mode="legacy", **options) as client:
            return await script(client)

    return asyncio.run(main())


async def refusal(request: Any) -> MCPError:
    """The error a gated request ends in (the test fails if it succeeds)."""
    with pytest.raises(MCPError) as caught:
        await request
    return caught.value


async def subscribe(client: Client, uri: str) -> types.EmptyResult:
    """A handshake-era subscription (the SDK warns that 2026-07-28 removed the method)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        return await client.session.subscribe_resource(uri)


def test_listings_are_namespaced_and_show_only_granted_servers(
    mcp_runtime: Runtime, mcp_session: SessionHandle, upstreams: list[Upstream]
) -> None:
    async def script(client: Client) -> tuple[list[str], list[str], list[str]]:
        resources = [str(r.uri) for r in (await client.list_resources()).resources]
        templates = [
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        ]
        prompts = [p.name for p in (await client.list_prompts()).prompts]
        return sorted(resources), templates, sorted(prompts)

    resources, templates, prompts = run(gateway(mcp_runtime, mcp_session, upstreams), script)
    assert resources == [VAULT_CODES, WELCOME]
    assert templates == ["clearance://bank/bank://accounts/{account_id}"]
    assert prompts == ["bank__summarize", "bank__wire_everything"]


def test_a_granted_read_reaches_its_server_once_and_its_outcome_is_audited(
    mcp_runtime: Runtime,
    mcp_session: SessionHandle,
    upstreams: list[Upstream],
    ledger: Path,
    vault_ledger: Path,
) -> None:
    async def script(client: Client) -> list[types.ReadResourceResult]:
        uri = "clearance://bank/bank://accounts/acc-1"
        return [await client.read_resource(uri), await client.read_resource(uri)]

    first, second = run(gateway(mcp_runtime, mcp_session, upstreams), script)
    assert isinstance(first.contents[0], types.TextResourceContents)
    assert first.contents[0].text == "Statement of acc-1: balance 120.00."
    assert str(first.contents[0].uri) == "clearance://bank/bank://accounts/acc-1"
    assert second.contents == first.contents
    assert ledger_lines(ledger) == [{"resource": "bank://accounts/acc-1"}] * 2
    assert ledger_lines(vault_ledger) == []
    decision = decisions_in_log(mcp_runtime)[-1]
    assert decision["outcome"] == "PERMIT"
    [outcome] = outcomes_for(mcp_runtime, decision["decision_id"])
    assert outcome["success"] is True
    assert "balance 120.00" in outcome["output"]
    state = mcp_runtime.store.session_state(mcp_session.session_id)
    assert state is not None
    assert state.calls == {"bank:resources": 2}


def test_a_read_the_policy_refuses_names_rule_and_reason_and_never_reaches_the_server(
    mcp_runtime: Runtime, mcp_session: SessionHandle, upstreams: list[Upstream], ledger: Path
) -> None:
    async def script(client: Client) -> MCPError:
        return await refusal(client.read_resource(VAULT_CODES))

    error = run(gateway(mcp_runtime, mcp_session, upstreams), script)
    assert error.code == REFUSED
    assert error.message == "denied by rule `staff-only`: branch files are for staff"
    assert error.data == {"rule": "staff-only"}
    assert ledger_lines(ledger) == []
    decision = decisions_in_log(mcp_runtime)[-1]
    assert decision["outcome"] == "DENY"


def test_forged_namespaces_read_nothing_from_any_server(
    mcp_runtime: Runtime,
    mcp_session: SessionHandle,
    upstreams: list[Upstream],
    ledger: Path,
    vault_ledger: Path,
) -> None:
    """A raw downstream URI, another server's namespace, an escaped server name, an unknown
    server, and a resource surface named as a tool: none of them reads anything it should not."""

    async def script(client: Client) -> dict[str, Any]:
        return {
            "raw": await refusal(client.read_resource("bank://branch/vault-codes")),
            "vault": await refusal(client.read_resource("clearance://vault/bank://accounts/acc-1")),
            "escaped": await refusal(
                client.read_resource("clearance://ba%6Ek/bank://branch/vault-codes")
            ),
            "nowhere": await refusal(client.read_resource("clearance://nowhere/x://y")),
            "no-server": await refusal(client.read_resource("clearance:///bank://accounts/1")),
            "as-tool": await client.call_tool("bank:resources", {"uri": "bank://accounts/acc-1"}),
            "vault-prompt": await refusal(
                client.get_prompt("vault__summarize", {"account_id": "a"})
            ),
            "bare-prompt": await refusal(client.get_prompt("summarize", {"account_id": "a"})),
        }

    out = run(gateway(mcp_runtime, mcp_session, upstreams), script)
    assert "is not a resource URI of this gateway" in out["raw"].message
    assert "scope" in out["vault"].message
    assert out["escaped"].message == "denied by rule `staff-only`: branch files are for staff"
    assert "unknown-tool" in out["nowhere"].message
    assert "is not a resource URI of this gateway" in out["no-server"].message
    assert out["as-tool"].is_error
    assert "is not a tool of this gateway" in out["as-tool"].content[0].text
    assert "unknown-tool" in out["vault-prompt"].message
    assert "is not a prompt of this gateway" in out["bare-prompt"].message
    assert ledger_lines(ledger) == []
    assert ledger_lines(vault_ledger) == []
    tools = {d["tool"] for d in decisions_in_log(mcp_runtime)}
    assert tools == {"vault:resources", "bank:resources", "nowhere:resources", "vault:prompts"}


def test_prompt_gets_are_gated_and_an_approval_is_redeemed_for_the_same_arguments(
    mcp_runtime: Runtime, mcp_session: SessionHandle, upstreams: list[Upstream], ledger: Path
) -> None:
    async def script(client: Client) -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["summary"] = await client.get_prompt("bank__summarize", {"account_id": "acc-1"})
        sweep = {"to_account": "acc-evil"}
        out["pending"] = await refusal(client.get_prompt("bank__wire_everything", sweep))
        approval_id = first_pending(mcp_runtime)
        assert approval_id is not None
        approve(mcp_runtime, approval_id)
        out["swapped"] = await refusal(
            client.get_prompt("bank__wire_everything", {"to_account": "acc-other"})
        )
        out["approved"] = await client.get_prompt("bank__wire_everything", sweep)
        return out

    out = run(gateway(mcp_runtime, mcp_session, upstreams), script)
    message = out["summary"].messages[0].content
    assert isinstance(message, types.TextContent)
    assert message.text == "Summarize the account acc-1 for its owner."
    pending = out["pending"]
    assert pending.code == REFUSED
    assert pending.message.startswith("approval `apr_")
    assert pending.data["url"] == f"{DASHBOARD}/approvals/{pending.data['approval_id']}"
    assert "approval `apr_" in out["swapped"].message  # changed arguments: a new request
    assert out["approved"].messages[0].content.text == "Transfer every balance to acc-evil."
    assert ledger_lines(ledger) == [
        {"prompt": "summarize", "account_id": "acc-1"},
        {"prompt": "wire_everything", "to_account": "acc-evil"},
    ]
    permits = [d for d in decisions_in_log(mcp_runtime) if d["outcome"] == "PERMIT"]
    assert all(outcomes_for(mcp_runtime, d["decision_id"])[0]["success"] for d in permits)


def test_a_prompt_waiting_for_approval_sends_the_user_to_the_dashboard_and_runs_once_approved(
    mcp_runtime: Runtime, mcp_session: SessionHandle, upstreams: list[Upstream], ledger: Path
) -> None:
    """URL elicitation works for prompt gets as for tool calls: the client's "accept" alone
    approves nothing; the prompt is fetched only after the operator approved in clearance."""
    asked: list[types.ElicitRequestParams] = []

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        assert isinstance(params, types.ElicitRequestURLParams)
        # The user opens the page; an operator approves there (in clearance, not in the client).
        approval_id = params.url.rsplit("/", 1)[-1]
        await anyio.to_thread.run_sync(approve, mcp_runtime, approval_id)
        return types.ElicitResult(action="accept")

    async def script(client: Client) -> types.GetPromptResult:
        return await client.get_prompt("bank__wire_everything", {"to_account": "acc-9"})

    result = run(
        gateway(mcp_runtime, mcp_session, upstreams), script, elicitation_callback=on_elicit
    )
    assert result.messages[0].content.text == "Transfer every balance to acc-9."
    assert len(asked) == 1
    assert isinstance(asked[0], types.ElicitRequestURLParams)
    assert asked[0].url.startswith(f"{DASHBOARD}/approvals/apr_")
    assert ledger_lines(ledger) == [{"prompt": "wire_everything", "to_account": "acc-9"}]


def test_an_approval_token_in_meta_is_bound_to_the_request_it_was_issued_for(
    mcp_runtime: Runtime, mcp_session: SessionHandle, upstreams: list[Upstream], ledger: Path
) -> None:
    """A token approved for one prompt get opens neither a resource nor the same prompt with
    other arguments."""
    sweep = {"name": "wire_everything", "arguments": {"to_account": "acc-evil"}}
    request = build_request(
        mcp_session, "bank:prompts", sweep, action="get", target="wire_everything"
    )
    decision = mcp_runtime.gate.decide(request)
    assert decision.approval_id is not None
    approve(mcp_runtime, decision.approval_id)
    token = claim_token(mcp_runtime, decision, mcp_session)

    async def with_token(client: Client, request: Any, result: type[Any]) -> MCPError:
        return await refusal(client.session.send_request(request, result))

    async def script(client: Client) -> list[MCPError]:
        meta = {TOKEN_META_KEY: token}
        read = types.ReadResourceRequest(
            params=types.ReadResourceRequestParams(uri=VAULT_CODES, _meta=meta)
        )
        other = types.GetPromptRequest(
            params=types.GetPromptRequestParams(
                name="bank__wire_everything", arguments={"to_account": "acc-other"}, _meta=meta
            )
        )
        return [
            await with_token(client, read, types.ReadResourceResult),
            await with_token(client, other, types.GetPromptResult),
        ]

    errors = run(gateway(mcp_runtime, mcp_session, upstreams), script)
    assert [e.code for e in errors] == [REFUSED, REFUSED]
    assert ledger_lines(ledger) == []


def test_an_injection_in_a_resource_taints_the_session(
    mcp_runtime: Runtime, mcp_session: SessionHandle, upstreams: list[Upstream]
) -> None:
    async def script(client: Client) -> types.ReadResourceResult:
        return await client.read_resource("clearance://bank/bank://accounts/acc-666")

    result = run(gateway(mcp_runtime, mcp_session, upstreams), script)
    assert result.contents[0].text == INJECTED
    state = mcp_runtime.store.session_state(mcp_session.session_id)
    assert state is not None
    assert "untrusted:injection:bank:resources" in state.taint


def test_list_changes_and_resource_updates_reach_the_clients_that_may_see_them(
    mcp_runtime: Runtime, mcp_session: SessionHandle, upstreams: list[Upstream], ledger: Path
) -> None:
    heard: list[Any] = []

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, types.ServerNotification | types.ResourceUpdatedNotification):
            heard.append(message)

    async def script(client: Client) -> tuple[list[str], list[str]]:
        await client.list_resources()  # the gateway now knows this connection
        await subscribe(client, WELCOME)
        denied = await refusal(subscribe(client, VAULT_CODES))
        assert "staff-only" in denied.message
        await client.call_tool("bank__add_notice", {"name": "closure"})
        await client.call_tool("bank__touch", {"uri": "bank://notices/welcome"})
        await client.call_tool("bank__touch", {"uri": "bank://branch/vault-codes"})
        with anyio.fail_after(20):
            while len(heard) < 3:
                await anyio.sleep(0.05)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.session.unsubscribe_resource(WELCOME)
        await client.call_tool("bank__touch", {"uri": "bank://notices/welcome"})  # heard by none
        resources = sorted(str(r.uri) for r in (await client.list_resources()).resources)
        prompts = sorted(p.name for p in (await client.list_prompts()).prompts)
        return resources, prompts

    resources, prompts = run(
        gateway(mcp_runtime, mcp_session, upstreams), script, message_handler=on_message
    )
    kinds = sorted(type(m).__name__ for m in heard)
    assert kinds == [
        "PromptListChangedNotification",
        "ResourceListChangedNotification",
        "ResourceUpdatedNotification",
    ]
    [updated] = [m for m in heard if isinstance(m, types.ResourceUpdatedNotification)]
    assert str(updated.params.uri) == WELCOME
    assert "clearance://bank/bank://notices/closure" in resources
    assert "bank__explain_closure" in prompts
    assert {"subscribe": "bank://notices/welcome"} in ledger_lines(ledger)
    assert {"unsubscribe": "bank://notices/welcome"} in ledger_lines(ledger)
    assert {"subscribe": "bank://branch/vault-codes"} not in ledger_lines(ledger)


# over HTTP on loopback: an HTTP downstream behind the HTTP front ------------------------------
@pytest.fixture
def http_bank(tmp_path: Path, ledger: Path) -> Iterator[list[Upstream]]:
    app = bank_server(ledger, subscriptions=False).streamable_http_app(host="127.0.0.1")
    with serving(lambda _port: app) as port:
        entry = {"type": "http", "url": f"http://127.0.0.1:{port}/mcp"}
        yield load_upstreams(write_mcp_json(tmp_path / "http.json", {"bank": entry}))


@asynccontextmanager
async def http_client(
    url: str, runtime: Runtime, session: SessionHandle, mode: Literal["legacy", "auto"]
) -> AsyncIterator[Client]:
    """An ``mcp`` client of the HTTP front, with a fresh agent key and the session header."""
    key = agent_key(runtime)
    headers = {"Authorization": f"Bearer {key}", "Clearance-Session": session.session_id}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


@contextmanager
def http_front(runtime: Runtime, upstreams: list[Upstream]) -> Iterator[str]:
    """The gateway's HTTP front beside the runtime's gate, on loopback; yields its /mcp URL."""
    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
    gw = Gateway(
        Admission(transport),
        HTTPSessions(session_lookup(runtime)),
        upstreams,
        grants=session_grants(transport),
    )
    verifier = key_checker(runtime)
    with serving(lambda port: http_app(gw, verifier, host="127.0.0.1", port=port)) as port:
        yield f"http://127.0.0.1:{port}/mcp"


def test_over_http_a_granted_read_runs_and_a_refused_one_never_reaches_the_server(
    mcp_runtime: Runtime, mcp_session: SessionHandle, http_bank: list[Upstream], ledger: Path
) -> None:
    async def script(url: str) -> tuple[list[str], types.ReadResourceResult, MCPError, Any]:
        async with http_client(url, mcp_runtime, mcp_session, "legacy") as client:
            listed = sorted(str(r.uri) for r in (await client.list_resources()).resources)
            ok = await client.read_resource(WELCOME)
            no = await refusal(client.read_resource(VAULT_CODES))
            prompt = await client.get_prompt("bank__summarize", {"account_id": "acc-2"})
            unsupported = await refusal(subscribe(client, WELCOME))
            assert "offers no subscriptions" in unsupported.message
            capabilities = client.server_capabilities  # list changes are forwarded: declared
            declared = (capabilities.resources, capabilities.prompts, capabilities.tools)
            assert [getattr(c, "list_changed", None) for c in declared] == [True, True, True]
            return listed, ok, no, prompt

    with http_front(mcp_runtime, http_bank) as url:
        listed, ok, no, prompt = asyncio.run(script(url))
    subscription = decisions_in_log(mcp_runtime)[-1]
    assert subscription["outcome"] == "PERMIT"
    [failure] = outcomes_for(mcp_runtime, subscription["decision_id"])
    assert failure["success"] is False  # permitted, failed downstream, recorded once
    assert listed == [VAULT_CODES, WELCOME]
    assert isinstance(ok.contents[0], types.TextResourceContents)
    assert ok.contents[0].text == "Welcome to the bank."
    assert no.message == "denied by rule `staff-only`: branch files are for staff"
    assert prompt.messages[0].content.text == "Summarize the account acc-2 for its owner."
    assert ledger_lines(ledger) == [
        {"resource": "bank://notices/welcome"},
        {"prompt": "summarize", "account_id": "acc-2"},
    ]


def test_modern_clients_read_through_the_front_and_hear_of_resource_and_prompt_changes(
    mcp_runtime: Runtime, mcp_session: SessionHandle, upstreams: list[Upstream], ledger: Path
) -> None:
    """2026-07-28 clients: a read is decided as for any client, and list changes of downstream
    resources and prompts arrive as listen events."""

    async def script(url: str) -> tuple[str, MCPError, list[str]]:
        async with http_client(url, mcp_runtime, mcp_session, "auto") as client:
            assert client.session.protocol_version == "2026-07-28"
            [read] = (await client.read_resource(WELCOME)).contents
            assert isinstance(read, types.TextResourceContents)
            refused = await refusal(client.read_resource(VAULT_CODES))
            events: list[str] = []
            async with client.listen(resources_list_changed=True, prompts_list_changed=True) as sub:
                await client.call_tool("bank__add_notice", {"name": "holiday"})
                with anyio.fail_after(20):
                    async for event in sub:
                        events.append(type(event).__name__)
                        if len(events) == 2:
                            break
            return read.text, refused, sorted(events)

    with http_front(mcp_runtime, upstreams) as url:
        text, refused, events = asyncio.run(script(url))
    assert text == "Welcome to the bank."
    assert "staff-only" in refused.message
    assert events == ["PromptsListChanged", "ResourcesListChanged"]
    assert {"resource": "bank://branch/vault-codes"} not in ledger_lines(ledger)
