"""Overhead of a gated tool call, in process, against calling the tool directly (one run).

Run from the repository root with ``python -m bench.integrations``. The gate is a real one: a data directory initialised like
``clearance init`` (SQLite store, audit shard with signed receipts, approval service). Each timed
call checks its result, so a broken path cannot look fast. Figures go into docs/integrations.md,
never into assertions. The LangChain middleware is also measured over the sidecar (real uvicorn on
loopback, agent key), against the same gate. The OpenAI Agents SDK adapter is measured as whole
``Runner.run`` calls (the SDK's scripted model asks for one tool call, then answers), protected
in process and over the sidecar, against the same run of the unprotected agent, the three timed
round-robin. The MCP gateway
is measured per ``tools/call`` against calling the same stdio downstream directly. A Claude Code
hook is measured in process (the command hook's work without its process start) and as the
sidecar's HTTP hook endpoint.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from agents import Agent, FunctionTool, RunConfig, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool
from langgraph.prebuilt.tool_node import ToolCallRequest, ToolRuntime
from mcp import Client, StdioServerParameters
from tests.integration.integrations.kit import AGENT, POLICY, init_data_dir
from tests.integration.integrations.mcp_kit import MCP_POLICY, SERVER_SCRIPT
from tests.integration.integrations.served import serve_sidecar

from clearance.cli.runtime import open_runtime
from clearance.gate.clock import SystemClock
from clearance.gate.toolevents import HOOK_ROUTE, SESSION_HEADER
from clearance.integrations.guard import Guard
from clearance.integrations.hooks import HookAdapter
from clearance.integrations.langchain import ClearanceMiddleware
from clearance.integrations.mapping import SessionHandle
from clearance.integrations.mcp_admission import Admission, fixed_session
from clearance.integrations.mcp_downstream import Upstream
from clearance.integrations.mcp_gateway import Gateway, session_grants
from clearance.integrations.openai_agents import protect
from clearance.integrations.sidecar import SidecarTransport
from clearance.integrations.transport import InProcessTransport

RUNS = 500


def transfer_funds(amount: float, to_account: str) -> str:
    return f"sent {amount} to {to_account}"


def langchain_call(n: int) -> ToolCallRequest:
    """The request LangChain's tool node hands a middleware, with a fresh tool call id."""
    call_id = f"call-{n}"
    runtime: ToolRuntime[Any, Any] = ToolRuntime(
        state={}, context=None, config={"configurable": {"thread_id": "bench"}},
        stream_writer=lambda _: None, tool_call_id=call_id, store=None,
    )  # fmt: skip
    return ToolCallRequest(
        tool_call={"name": "transfer_funds", "args": {"amount": 5.0, "to_account": "acc-1"},
                   "id": call_id, "type": "tool_call"},
        tool=lc_transfer, state={}, runtime=runtime,
    )  # fmt: skip


@tool("transfer_funds")
def lc_transfer(amount: float, to_account: str) -> str:
    """The same tool as a LangChain tool."""
    return transfer_funds(amount, to_account)


def run_lc_tool(request: ToolCallRequest) -> ToolMessage:
    """What LangChain's tool node does with a call: invoke the tool with the call's arguments."""
    result = lc_transfer.invoke(request.tool_call)
    if not isinstance(result, ToolMessage):
        raise SystemExit("langchain tool call broke")
    return result


oa_transfer: FunctionTool = function_tool(transfer_funds)


class AgentRuns:
    """Whole SDK runs of one agent on one event loop, each with a fresh tool call id."""

    def __init__(self, agent: Agent[Any], model: ScriptedModel, calls: Any) -> None:
        self.agent, self.model, self.calls = agent, model, calls
        self.loop = asyncio.new_event_loop()

    def __call__(self) -> None:
        args = {"amount": 5.0, "to_account": "acc-1"}
        call = function_call("transfer_funds", args, call_id=f"oa-{next(self.calls)}")
        self.model.extend([[call], [assistant_message("done")]])
        run = Runner.run(self.agent, "pay", run_config=RunConfig(tracing_disabled=True))
        result = self.loop.run_until_complete(run)
        outputs = [i.output for i in result.new_items if i.type == "tool_call_output_item"]
        if outputs != ["sent 5.0 to acc-1"]:
            raise SystemExit(f"openai agents run broke: {outputs}")


def agent_runs(calls: Any, gate: Any = None, session: SessionHandle | None = None) -> AgentRuns:
    model = ScriptedModel()
    agent: Agent[Any] = Agent(name="bench", model=model, tools=[oa_transfer])
    if gate is not None and session is not None:
        agent = protect(agent, gate, session)
    return AgentRuns(agent, model, calls)


def interleaved(calls: dict[str, Callable[[], object]], runs: int = RUNS) -> list[str]:
    """Time the calls round-robin, so a busy machine slows each alike; ratios to the first."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    (first, base_samples), *rest = samples.items()
    base_line, base = describe(first, base_samples)
    lines = [base_line]
    for name, times in rest:
        line, median = describe(name, times)
        lines.append(f"{line}   x{median / base:,.2f} {first}, +{(median - base) * 1e3:.2f} ms")
    return lines


def timed(call: Callable[[], object], runs: int = RUNS) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def describe(name: str, samples: list[float]) -> tuple[str, float]:
    ordered = sorted(samples)
    median = statistics.median(ordered)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"{name:<28} median {median * 1e6:9.1f} us   p99 {p99 * 1e6:9.1f} us", median


async def mcp_samples(gateways: dict[str, Gateway], ledger: Path) -> dict[str, list[float]]:
    """Per-call times of tools/call: the stdio bank directly, then through each gateway front."""
    args = {"amount": 5.0, "to_account": "acc-1"}
    bank = StdioServerParameters(
        command=sys.executable, args=[str(SERVER_SCRIPT)], env={"BANK_LEDGER": str(ledger)}
    )
    clients: dict[str, Any] = {"mcp downstream (no gate)": bank}
    clients.update({name: gw.server() for name, gw in gateways.items()})
    samples: dict[str, list[float]] = {}
    for name, server in clients.items():
        tool = "transfer_funds" if server is bank else "bank__transfer_funds"
        async with Client(server) as client:
            times = []
            for _ in range(RUNS):
                start = time.perf_counter()
                result = await client.call_tool(tool, args)
                times.append(time.perf_counter() - start)
                if result.is_error:
                    raise SystemExit(f"{name} broke: {result.content}")
        samples[name] = times
    return samples


def mcp_lines(tmp: Path) -> list[str]:
    """MCP gateway overhead per tools/call against calling the same downstream directly."""
    data = tmp / "mcpdata"
    # Thousands of identical calls a second are what the rate-spike breaker exists to stop.
    init_data_dir(data, MCP_POLICY + "breakers:\n  rate_spike: {enabled: false}\n")
    ledger = tmp / "ledger.jsonl"
    runtime = open_runtime(data, clock=SystemClock())
    try:
        s = runtime.gate.open_session(agent_id=AGENT, task="payments", environment="staging")
        session = SessionHandle(agent_id=s.agent_id, session_id=s.session_id)
        upstreams = [Upstream("bank", StdioServerParameters(
            command=sys.executable, args=[str(SERVER_SCRIPT)], env={"BANK_LEDGER": str(ledger)}))]  # fmt: skip
        transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
        with (
            serve_sidecar(runtime) as served,
            SidecarTransport.connect(served.base_url, api_key=served.agent_key) as over_http,
        ):
            gateways = {
                "mcp gateway (in process)": Gateway(
                    Admission(transport), fixed_session(session), upstreams,
                    grants=session_grants(transport)),
                "mcp gateway (sidecar)": Gateway(
                    Admission(over_http), fixed_session(session), upstreams),
            }  # fmt: skip
            samples = asyncio.run(mcp_samples(gateways, ledger))
    finally:
        runtime.close()
    (name, first), *rest = samples.items()
    base_line, base = describe(name, first)
    lines = [base_line]
    for name, times in rest:
        line, median = describe(name, times)
        lines.append(f"{line}   x{median / base:,.1f} mcp direct, +{(median - base) * 1e3:.2f} ms")
    return lines


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        # Hundreds of calls a second by one agent are what the rate-spike breaker exists to stop.
        init_data_dir(data, POLICY + "breakers:\n  rate_spike: {enabled: false}\n")
        runtime = open_runtime(data, clock=SystemClock())
        try:
            s = runtime.gate.open_session(agent_id=AGENT, task="ops", environment="staging")
            session = SessionHandle(agent_id=s.agent_id, session_id=s.session_id)
            transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
            guarded = Guard(transport, session).tool("transfer_funds")(transfer_funds)
            hook = HookAdapter(transport, session, "claude-code", approval_wait_s=0)
            event = {"hook_event_name": "PreToolUse", "tool_name": "transfer_funds",
                     "tool_input": {"amount": 5.0, "to_account": "acc-1"}}  # fmt: skip

            def direct() -> None:
                if transfer_funds(5.0, "acc-1") != "sent 5.0 to acc-1":
                    raise SystemExit("direct call broke")

            def gated() -> None:
                if guarded(5.0, "acc-1") != "sent 5.0 to acc-1":
                    raise SystemExit("guarded call broke")

            def hooked() -> None:
                if hook.handle(event).exit_code != 0:
                    raise SystemExit("hook broke")

            gatekeeper = ClearanceMiddleware(transport, session)
            calls = iter(range(10**9))

            def lc_direct() -> None:
                if run_lc_tool(langchain_call(next(calls))).content != "sent 5.0 to acc-1":
                    raise SystemExit("langchain tool broke")

            def lc_gated() -> None:
                out = gatekeeper.wrap_tool_call(langchain_call(next(calls)), run_lc_tool)
                if not isinstance(out, ToolMessage) or out.content != "sent 5.0 to acc-1":
                    raise SystemExit("langchain middleware broke")

            lines = []
            base_line, base = describe("direct call", timed(direct))
            lines.append(base_line)
            with (
                serve_sidecar(runtime) as served,
                SidecarTransport.connect(served.base_url, api_key=served.agent_key) as over_http,
                httpx.Client(
                    base_url=served.base_url,
                    headers={
                        "Authorization": f"Bearer {served.agent_key}",
                        SESSION_HEADER: session.session_id,
                    },
                ) as hook_http,
            ):
                remote = ClearanceMiddleware(over_http, session)

                def lc_sidecar() -> None:
                    out = remote.wrap_tool_call(langchain_call(next(calls)), run_lc_tool)
                    if not isinstance(out, ToolMessage) or out.content != "sent 5.0 to acc-1":
                        raise SystemExit("langchain middleware over the sidecar broke")

                guard_remote = Guard(over_http, session).tool("transfer_funds")(transfer_funds)

                def hooked_http() -> None:
                    body = {**event, "tool_use_id": f"toolu_{next(calls)}"}
                    answer = hook_http.post(f"{HOOK_ROUTE}/claude-code", json=body)
                    if answer.status_code != 200 or "permissionDecision" in answer.text:
                        raise SystemExit(f"hook endpoint broke: {answer.text}")

                def gated_sidecar() -> None:
                    if guard_remote(5.0, "acc-1") != "sent 5.0 to acc-1":
                        raise SystemExit("guarded call over the sidecar broke")

                for name, call in (
                    ("guard (decide+report)", gated),
                    ("guard (sidecar)", gated_sidecar),
                    ("hook pre-tool (decide)", hooked),
                    ("hook pre-tool (HTTP endpoint)", hooked_http),
                    ("langchain tool (no gate)", lc_direct),
                    ("langchain middleware", lc_gated),
                    ("langchain mw (sidecar)", lc_sidecar),
                ):
                    line, median = describe(name, timed(call))
                    lines.append(
                        f"{line}   x{median / base:,.0f} direct, +{(median - base) * 1e3:.2f} ms"
                    )
                lines.extend(
                    interleaved(
                        {
                            "openai-agents run (no gate)": agent_runs(calls),
                            "openai-agents protected": agent_runs(calls, transport, session),
                            "openai-agents (sidecar)": agent_runs(calls, over_http, session),
                        }
                    )
                )
        finally:
            runtime.close()
        lines.extend(mcp_lines(Path(tmp)))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
