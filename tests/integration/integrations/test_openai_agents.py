"""The OpenAI Agents SDK adapter against the real library, its scripted model and a real gate.

The model is the SDK's own ``agents.testing.ScriptedModel`` (no network); the gate, store, audit
shard and approval service are real, and one test goes through the sidecar over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from agents import (
    Agent,
    CustomTool,
    FunctionTool,
    RunConfig,
    Runner,
    RunResult,
    RunState,
    ShellCommandRequest,
    ShellTool,
    Tool,
    ToolInputGuardrailTripwireTriggered,
    WebSearchTool,
    function_tool,
    handoff,
)
from agents.mcp import MCPServerStdio
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from tests.integration.integrations.kit import (
    AGENT,
    APPROVER,
    POLICY,
    DeadSidecar,
    approve,
    decisions_in_log,
    first_pending,
    init_data_dir,
    outcomes_for,
)
from tests.integration.integrations.served import Sidecar, sidecar

from clearance.cli.runtime import Runtime, open_runtime
from clearance.control.operator import Operator
from clearance.control.scope import Scope
from clearance.errors import ConfigError
from clearance.gate.clock import SystemClock
from clearance.gate.gate import Gate
from clearance.integrations.errors import UngatedToolError
from clearance.integrations.mapping import SessionHandle, approval_link
from clearance.integrations.openai_agents import clearance_approval, protect
from clearance.integrations.sidecar import SidecarTransport
from clearance.integrations.transport import InProcessTransport, Transport

__all__ = ["sidecar"]

CONFIG = RunConfig(tracing_disabled=True)


class Bank:
    """The tools' side effects, so a test can prove a call never happened."""

    def __init__(self) -> None:
        self.transfers: list[tuple[float, str]] = []
        self.deleted: list[str] = []

    def tools(self) -> list[Tool]:
        @function_tool
        def transfer_funds(amount: float, to_account: str) -> str:
            """Send money."""
            self.transfers.append((amount, to_account))
            return f"sent {amount} to {to_account}"

        @function_tool
        def delete_records(table: str) -> str:
            """Delete a table."""
            self.deleted.append(table)
            return f"deleted {table}"

        @function_tool
        def read_account(account_id: str) -> str:
            """Read an account."""
            raise LookupError(f"no account {account_id}")

        return [transfer_funds, delete_records, read_account]


def call(tool: str, args: dict[str, Any], call_id: str = "call-1") -> list[Any]:
    return [function_call(tool, args, call_id=call_id)]


def scripted(*steps: Sequence[Any] | ModelStep) -> ScriptedModel:
    return ScriptedModel([*steps, [assistant_message("done")]])


def tool_outputs(model: ScriptedModel) -> list[str]:
    """What the model was shown as tool results in its last call."""
    last = model.last_call
    assert last is not None
    items = last.input if isinstance(last.input, list) else []
    return [
        str(item["output"])
        for item in items
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]


@pytest.fixture
def transport(runtime: Runtime) -> InProcessTransport:
    return InProcessTransport(runtime.gate, approvals=runtime.approvals)


def agent_for(
    bank: Bank,
    model: ScriptedModel,
    transport: Transport | Gate,
    session: SessionHandle,
    **kw: Any,
) -> Agent[Any]:
    agent = Agent(name="ops", model=model, tools=bank.tools())
    return protect(agent, transport, session, **kw)


def run(agent: Agent[Any], start: str | RunState[Any]) -> RunResult:
    return asyncio.run(Runner.run(agent, start, run_config=CONFIG))


def test_permitted_call_runs_and_its_outcome_reaches_the_audit_log(
    transport: InProcessTransport, session: SessionHandle, runtime: Runtime
) -> None:
    bank, model = Bank(), scripted(call("transfer_funds", {"amount": 10.0, "to_account": "acc-1"}))
    result = run(agent_for(bank, model, transport, session), "pay acc-1")
    assert result.final_output == "done"
    assert bank.transfers == [(10.0, "acc-1")]
    assert tool_outputs(model) == ["sent 10.0 to acc-1"]
    decisions = decisions_in_log(runtime)
    assert [d["outcome"] for d in decisions] == ["PERMIT"]  # needs_approval and guard share it
    outcome = outcomes_for(runtime, decisions[0]["decision_id"])
    assert [o["success"] for o in outcome] == [True]
    assert outcome[0]["output_size"] == len("sent 10.0 to acc-1")


def test_denied_call_never_reaches_the_tool_and_the_model_sees_the_rule(
    transport: InProcessTransport, session: SessionHandle
) -> None:
    bank, model = Bank(), scripted(call("delete_records", {"table": "payees"}))
    run(agent_for(bank, model, transport, session), "clean up")
    assert bank.deleted == []
    [shown] = tool_outputs(model)
    assert shown.startswith("denied by rule `never-delete`")
    assert "never deletes" in shown


def test_a_tool_that_raises_is_reported_as_a_failure(
    transport: InProcessTransport, session: SessionHandle, runtime: Runtime
) -> None:
    bank, model = Bank(), scripted(call("read_account", {"account_id": "acc-7"}))
    run(agent_for(bank, model, transport, session), "read")
    decision = decisions_in_log(runtime)[-1]
    assert decision["outcome"] == "PERMIT"
    [outcome] = outcomes_for(runtime, decision["decision_id"])
    assert outcome["success"] is False
    assert "no account acc-7" in outcome["error"]


def pause_for_approval(
    bank: Bank, transport: Transport, session: SessionHandle, call_id: str = "call-1"
) -> tuple[Agent[Any], ScriptedModel, RunResult]:
    model = scripted(call("transfer_funds", {"amount": 5000.0, "to_account": "acc-2"}, call_id))
    agent = agent_for(bank, model, transport, session, approval_url=approval_link("http://gate"))
    result = run(agent, "pay the supplier")
    assert [i.name for i in result.interruptions] == ["transfer_funds"]
    assert bank.transfers == []
    return agent, model, result


def resume_approved_in_sdk(agent: Agent[Any], state: RunState[Any]) -> RunResult:
    for item in state.get_interruptions():
        state.approve(item)
    return run(agent, state)


def test_approval_round_trip_through_the_real_approval_service(
    transport: InProcessTransport, session: SessionHandle, runtime: Runtime
) -> None:
    bank = Bank()
    agent, model, paused = pause_for_approval(bank, transport, session)
    approval_id = first_pending(runtime)
    assert approval_id is not None
    shown = clearance_approval(paused.interruptions[0])  # what the app shows while it waits
    assert shown is not None
    assert shown.approval_id == approval_id
    assert shown.url == f"http://gate/approvals/{approval_id}"
    assert shown.rule == "large-transfer"
    approve(runtime, approval_id)
    resume_approved_in_sdk(agent, paused.to_state())
    assert bank.transfers == [(5000.0, "acc-2")]
    assert tool_outputs(model) == ["sent 5000.0 to acc-2"]
    outcomes = [d["outcome"] for d in decisions_in_log(runtime)]
    assert outcomes == ["APPROVAL", "PERMIT"]
    permit = decisions_in_log(runtime)[-1]
    assert permit["rule"] == f"approval:{approval_id}"
    assert [o["success"] for o in outcomes_for(runtime, permit["decision_id"])] == [True]


def test_approval_trap_an_sdk_only_approval_does_not_run_the_tool(
    transport: InProcessTransport, session: SessionHandle, runtime: Runtime
) -> None:
    """The app approves inside the SDK; nobody approved in clearance: the tool must not run."""
    bank = Bank()
    agent, model, paused = pause_for_approval(bank, transport, session)
    resume_approved_in_sdk(agent, paused.to_state())
    assert bank.transfers == []
    [shown] = tool_outputs(model)
    approval_id = first_pending(runtime)
    assert f"approval `{approval_id}` pending at http://gate/approvals/{approval_id}" in shown


def test_an_operators_denial_reaches_the_model_with_the_reason(
    transport: InProcessTransport, session: SessionHandle, runtime: Runtime
) -> None:
    bank = Bank()
    agent, model, paused = pause_for_approval(bank, transport, session)
    approval_id = first_pending(runtime)
    assert approval_id is not None
    runtime.approvals.deny(approval_id, APPROVER, SystemClock().now(), comment="not this month")
    resume_approved_in_sdk(agent, paused.to_state())
    assert bank.transfers == []
    assert tool_outputs(model) == ["denied by rule `approval:denied`: not this month"]


def test_a_retry_of_a_waiting_call_joins_its_approval_instead_of_opening_another(
    transport: InProcessTransport, session: SessionHandle, runtime: Runtime
) -> None:
    """The app resumed too early; the model retries the identical call under a new call id."""
    args = {"amount": 5000.0, "to_account": "acc-2"}

    def operator_approves_then_model_retries(_: Any) -> list[Any]:
        approval_id = first_pending(runtime)
        assert approval_id is not None
        approve(runtime, approval_id)
        return call("transfer_funds", args, "call-retry")

    bank = Bank()
    model = ScriptedModel(
        [
            call("transfer_funds", args, "call-first"),
            ModelStep.respond(operator_approves_then_model_retries),
            [assistant_message("done")],
        ]
    )
    agent = agent_for(bank, model, transport, session)
    first = run(agent, "pay")
    second = resume_approved_in_sdk(agent, first.to_state())  # too early: still pending
    assert bank.transfers == []
    assert [i.call_id for i in second.interruptions] == ["call-retry"]
    resume_approved_in_sdk(agent, second.to_state())
    assert bank.transfers == [(5000.0, "acc-2")]
    assert [d["outcome"] for d in decisions_in_log(runtime)] == ["APPROVAL", "PERMIT"]


def test_arguments_edited_in_the_stored_run_state_after_approval_are_refused(
    transport: InProcessTransport, session: SessionHandle, runtime: Runtime
) -> None:
    bank = Bank()
    agent, model, paused = pause_for_approval(bank, transport, session)
    approval_id = first_pending(runtime)
    assert approval_id is not None
    approve(runtime, approval_id)
    # The attacker holds the serialised state: swap the payee and drop the SDK's own fingerprint.
    blob = paused.to_state().to_json()
    blob["context"]["tool_invocations"] = {}
    tampered = json.dumps(blob).replace("acc-2", "acc-666")
    state = asyncio.run(RunState.from_string(agent, tampered))
    resume_approved_in_sdk(agent, state)
    assert bank.transfers == []
    [shown] = tool_outputs(model)
    assert shown.startswith("denied by rule `idempotency-conflict`")


def test_gate_unreachable_halts_the_run_and_the_tool_is_not_called(
    session: SessionHandle,
) -> None:
    dead = DeadSidecar()
    bank, model = Bank(), scripted(call("transfer_funds", {"amount": 1.0, "to_account": "acc-1"}))
    with pytest.raises(ToolInputGuardrailTripwireTriggered) as halted:
        run(agent_for(bank, model, dead, session), "pay")
    assert bank.transfers == []
    assert dead.calls == 2  # needs_approval asked, then the guardrail asked again
    assert "connection refused" in halted.value.output.output_info["refusal"]


def test_gate_unreachable_can_be_told_to_the_model_instead(session: SessionHandle) -> None:
    bank, model = Bank(), scripted(call("transfer_funds", {"amount": 1.0, "to_account": "acc-1"}))
    run(agent_for(bank, model, DeadSidecar(), session, on_unavailable="tell_model"), "pay")
    assert bank.transfers == []
    [shown] = tool_outputs(model)
    assert shown.startswith("blocked: the gate did not decide")


def test_the_kill_switch_halts_the_run(
    transport: InProcessTransport, session: SessionHandle, runtime: Runtime
) -> None:
    runtime.control.killswitch.halt(
        Scope.agent(session.agent_id),
        operator=Operator("root", frozenset({"admin"})),
        reason="incident 42",
        now=SystemClock().now(),
    )
    bank, model = Bank(), scripted(call("transfer_funds", {"amount": 1.0, "to_account": "acc-1"}))
    with pytest.raises(ToolInputGuardrailTripwireTriggered) as halted:
        run(agent_for(bank, model, transport, session), "pay")
    assert bank.transfers == []
    assert halted.value.output.output_info["rule"] == "kill-switch"


def test_a_call_id_that_already_ran_is_not_run_again(
    transport: InProcessTransport, session: SessionHandle
) -> None:
    """A repeated key gets the stored PERMIT from the gate; the adapter must not run it twice."""
    args = {"amount": 10.0, "to_account": "acc-1"}
    bank = Bank()
    model = ScriptedModel([call("transfer_funds", args, "c-9"), [assistant_message("done")]] * 2)
    protected = protect(Agent(name="ops", model=model, tools=bank.tools()), transport, session)
    run(protected, "pay")
    run(protected, "pay again")  # a new run in the same session replays the call id
    assert bank.transfers == [(10.0, "acc-1")]
    assert tool_outputs(model) == [
        "blocked: tool call `c-9` already ran; a new call needs a new id"
    ]


def test_hosted_tools_are_refused_at_protect_time(
    transport: InProcessTransport, session: SessionHandle
) -> None:
    agent = Agent(name="ops", tools=[WebSearchTool()])
    with pytest.raises(UngatedToolError) as refused:
        protect(agent, transport, session)
    assert "WebSearchTool runs without tool guardrails" in str(refused.value)
    assert refused.value.hint


def test_an_agent_tool_over_an_unprotected_agent_is_refused(
    transport: InProcessTransport, session: SessionHandle
) -> None:
    inner = Agent(name="payer", tools=Bank().tools())
    outer = Agent(name="ops", tools=[inner.as_tool(tool_name="payer", tool_description="pays")])
    with pytest.raises(UngatedToolError, match="whose tools are not gated"):
        protect(outer, transport, session)
    safe = protect(inner, transport, session).as_tool(tool_name="payer", tool_description="pays")
    protect(Agent(name="ops", tools=[safe]), transport, session)


def test_handoffs_are_protected_and_an_opaque_handoff_is_refused(
    transport: InProcessTransport, session: SessionHandle
) -> None:
    helper = Agent(name="helper", tools=Bank().tools())
    front = Agent(name="front", handoffs=[helper])
    protected = protect(front, transport, session)
    [target] = protected.handoffs
    assert isinstance(target, Agent)
    assert all(t is not o for t, o in zip(target.tools, helper.tools, strict=True))
    assert all(t.tool_input_guardrails for t in target.tools if isinstance(t, FunctionTool))
    with pytest.raises(UngatedToolError, match="target agent is not protected"):
        protect(Agent(name="front", handoffs=[handoff(helper)]), transport, session)


def test_protect_leaves_the_users_tools_untouched(
    transport: InProcessTransport, session: SessionHandle
) -> None:
    agent = Agent(name="ops", tools=Bank().tools())
    protect(agent, transport, session)
    assert all(
        isinstance(t, FunctionTool) and not t.tool_input_guardrails and t.needs_approval is False
        for t in agent.tools
    )


def test_tools_protected_for_one_session_are_not_reused_for_another(
    transport: InProcessTransport, session: SessionHandle, runtime: Runtime
) -> None:
    """Reusing them would decide the second agent's calls as the first session: refused."""
    first = protect(Agent(name="ops", tools=Bank().tools()), transport, session)
    other = runtime.gate.open_session(agent_id="ops-agent-1", task="ops", environment="staging")
    handle = SessionHandle(agent_id=other.agent_id, session_id=other.session_id)
    with pytest.raises(ConfigError, match=f"already protected for session `{session.session_id}`"):
        protect(Agent(name="ops-2", tools=first.tools), transport, handle)


def test_a_gate_can_be_passed_instead_of_a_transport(
    session: SessionHandle, runtime: Runtime
) -> None:
    bank = Bank()
    model = scripted(call("transfer_funds", {"amount": 10.0, "to_account": "acc-1"}))
    run(agent_for(bank, model, runtime.gate, session), "pay")
    assert bank.transfers == [(10.0, "acc-1")]


@pytest.fixture
def over_http(sidecar: Sidecar) -> Iterator[SidecarTransport]:
    with SidecarTransport.connect(sidecar.base_url, api_key=sidecar.agent_key) as t:
        yield t


def test_the_same_guarantees_through_the_sidecar(
    over_http: SidecarTransport, session: SessionHandle, runtime: Runtime
) -> None:
    bank, model = Bank(), scripted(call("delete_records", {"table": "payees"}))
    run(agent_for(bank, model, over_http, session), "clean up")
    assert bank.deleted == []
    assert tool_outputs(model)[0].startswith("denied by rule `never-delete`")

    agent, model, paused = pause_for_approval(bank, over_http, session, "call-2")
    resume_approved_in_sdk(agent, paused.to_state())  # SDK-only approval: still pending
    assert bank.transfers == []
    approval_id = first_pending(runtime)
    assert approval_id is not None
    approve(runtime, approval_id)  # too late for that run: its token was never claimed
    agent, model, paused = pause_for_approval(bank, over_http, session, "call-3")
    approval_id = first_pending(runtime)
    assert approval_id is not None
    approve(runtime, approval_id)
    # Another process resumes the stored run: a fresh protection finds the approval by its key.
    other_bank = Bank()
    elsewhere = agent_for(other_bank, model, over_http, session)
    state = asyncio.run(RunState.from_string(elsewhere, paused.to_state().to_string()))
    [item] = state.get_interruptions()
    shown = clearance_approval(item)
    assert shown is not None
    assert shown.approval_id == approval_id
    resume_approved_in_sdk(elsewhere, state)
    assert other_bank.transfers == [(5000.0, "acc-2")]
    assert tool_outputs(model) == ["sent 5000.0 to acc-2"]
    permit = decisions_in_log(runtime)[-1]
    assert permit["outcome"] == "PERMIT"
    assert [o["success"] for o in outcomes_for(runtime, permit["decision_id"])] == [True]


BANK_SERVER = Path(__file__).with_name("mcp_bank_server.py")


def ledger_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_with_bank_server(
    ledger: Path, steps: Sequence[Sequence[Any] | ModelStep], protect_it: Any
) -> ScriptedModel:
    """One run of an agent whose tools come from a real MCP server over stdio."""

    async def go() -> ScriptedModel:
        env = {**os.environ, "BANK_LEDGER": str(ledger)}
        server = MCPServerStdio(
            params={"command": sys.executable, "args": [str(BANK_SERVER)], "env": env}
        )
        model = scripted(*steps)
        async with server:
            agent = protect_it(Agent(name="ops", model=model, mcp_servers=[server]))
            await Runner.run(agent, "go", run_config=CONFIG)
        return model

    return asyncio.run(go())


def test_local_mcp_server_tools_are_gated(
    transport: InProcessTransport, session: SessionHandle, runtime: Runtime, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    model = run_with_bank_server(
        ledger,
        [
            call("delete_records", {"table": "payees"}, "m-1"),
            call("read_account", {"account_id": "acc-1"}, "m-2"),
        ],
        lambda agent: protect(agent, transport, session),
    )
    assert ledger_of(ledger) == [{"tool": "read_account", "account_id": "acc-1"}]
    denied, read = tool_outputs(model)
    assert denied.startswith("denied by rule `never-delete`")
    assert "acc-1: 120.00" in read
    permit = decisions_in_log(runtime)[-1]
    assert permit["outcome"] == "PERMIT"
    assert [o["success"] for o in outcomes_for(runtime, permit["decision_id"])] == [True]


def approver_within(runtime: Runtime, *, seconds: float) -> threading.Thread:
    """An operator who approves the first pending request that shows up within ``seconds``
    (the MCP server process may take a while to start on a busy machine)."""

    def act() -> None:
        pause = threading.Event()
        for _ in range(int(seconds / 0.05)):
            approval_id = first_pending(runtime)
            if approval_id is not None:
                approve(runtime, approval_id)
                return
            pause.wait(0.05)

    thread = threading.Thread(target=act)
    thread.start()
    return thread


def test_an_mcp_tool_waits_for_the_clearance_approval(
    transport: InProcessTransport, session: SessionHandle, runtime: Runtime, tmp_path: Path
) -> None:
    """MCP tools have no per-call pause in the SDK: the guardrail waits for the operator."""
    ledger = tmp_path / "ledger"
    approver = approver_within(runtime, seconds=60.0)
    model = run_with_bank_server(
        ledger,
        [call("transfer_funds", {"amount": 5000.0, "to_account": "acc-2"}, "m-3")],
        lambda agent: protect(agent, transport, session, approval_wait_s=60.0),
    )
    approver.join()
    assert "sent 5000.0 to acc-2" in tool_outputs(model)[0]
    assert ledger_of(ledger) == [
        {"tool": "transfer_funds", "amount": 5000.0, "to_account": "acc-2"}
    ]
    assert decisions_in_log(runtime)[-1]["rule"].startswith("approval:")


def test_an_mcp_tools_retry_runs_once_the_operator_approved(
    transport: InProcessTransport, session: SessionHandle, runtime: Runtime, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    args = {"amount": 5000.0, "to_account": "acc-2"}

    def operator_approves_then_model_retries(_: Any) -> list[Any]:
        approval_id = first_pending(runtime)
        assert approval_id is not None
        approve(runtime, approval_id)
        return call("transfer_funds", args, "m-retry")

    model = run_with_bank_server(
        ledger,
        [
            call("transfer_funds", args, "m-first"),
            ModelStep.respond(operator_approves_then_model_retries),
        ],
        lambda agent: protect(agent, transport, session),
    )
    pending, ran = tool_outputs(model)
    assert pending.startswith("approval `")
    assert "sent 5000.0 to acc-2" in ran
    assert ledger_of(ledger) == [{"tool": "transfer_funds", **args}]
    assert [d["outcome"] for d in decisions_in_log(runtime)] == ["APPROVAL", "PERMIT"]


SHELL_POLICY = POLICY.replace(
    "tasks:\n  ops: {tools: [read_account, transfer_funds, delete_records, run_code]}",
    "  shell:\n"
    "    tier: destructive\n"
    "    additional_params: true\n"
    "    params:\n"
    "      commands: {type: array, required: true}\n"
    "  notes:\n"
    "    tier: write-limited\n"
    "    params:\n"
    "      input: {type: string, required: true}\n"
    "tasks:\n  ops: {tools: [read_account, transfer_funds, delete_records, run_code, shell, notes]}",
).replace(
    "rules:\n",
    "rules:\n"
    "  - id: listings\n"
    "    tools: [shell]\n"
    '    when: args.commands.all(c, c.startsWith("ls "))\n'
    "    outcome: permit\n"
    "    reason: listing files changes nothing\n"
    "  - id: no-other-commands\n"
    "    tools: [shell]\n"
    '    when: args.commands.exists(c, !c.startsWith("ls "))\n'
    "    outcome: deny\n"
    "    reason: only listings\n"
    "  - id: polite-notes\n"
    "    tools: [notes]\n"
    "    when: '!args.input.contains(\"password\")'\n"
    "    outcome: permit\n"
    "    reason: notes without secrets\n",
)


def shell_call(commands: list[str], call_id: str) -> list[Any]:
    return [
        {
            "type": "shell_call",
            "id": call_id,
            "call_id": call_id,
            "status": "completed",
            "action": {"commands": commands, "timeout_ms": 1000},
        }
    ]


def shell_outputs(model: ScriptedModel) -> list[str]:
    last = model.last_call
    assert last is not None
    items = last.input if isinstance(last.input, list) else []
    return [
        str(item["output"][0]["stdout"])
        for item in items
        if isinstance(item, dict) and item.get("type") == "shell_call_output"
    ]


def test_a_local_shell_tool_is_gated_in_its_executor(tmp_path: Path) -> None:
    data = tmp_path / "shell-data"
    init_data_dir(data, SHELL_POLICY)
    runtime = open_runtime(data, clock=SystemClock())
    try:
        opened = runtime.gate.open_session(agent_id=AGENT, task="ops", environment="staging")
        session = SessionHandle(agent_id=opened.agent_id, session_id=opened.session_id)
        ran: list[list[str]] = []

        def executor(request: ShellCommandRequest) -> str:
            ran.append(request.data.action.commands)
            return "a.txt b.txt"

        model = scripted(shell_call(["rm -rf /srv"], "sh-1"), shell_call(["ls /srv"], "sh-2"))
        agent = Agent(name="ops", model=model, tools=[ShellTool(executor=executor)])
        protected = protect(agent, InProcessTransport(runtime.gate), session)
        run(protected, "tidy")
        assert ran == [["ls /srv"]]
        denied, listed = shell_outputs(model)
        assert denied.startswith("denied by rule `no-other-commands`")
        assert listed == "a.txt b.txt"
        permit = decisions_in_log(runtime)[-1]
        assert (permit["outcome"], permit["rule"]) == ("PERMIT", "listings")
        assert [o["success"] for o in outcomes_for(runtime, permit["decision_id"])] == [True]
    finally:
        runtime.close()


def test_a_hosted_shell_is_refused(transport: InProcessTransport, session: SessionHandle) -> None:
    hosted = ShellTool(environment={"type": "container_auto"})
    with pytest.raises(UngatedToolError, match="hosted shell runs on OpenAI's side"):
        protect(Agent(name="ops", tools=[hosted]), transport, session)


def test_a_custom_tool_is_gated_in_its_invoker(tmp_path: Path) -> None:
    data = tmp_path / "custom-data"
    init_data_dir(data, SHELL_POLICY)
    runtime = open_runtime(data, clock=SystemClock())
    try:
        opened = runtime.gate.open_session(agent_id=AGENT, task="ops", environment="staging")
        session = SessionHandle(agent_id=opened.agent_id, session_id=opened.session_id)
        noted: list[str] = []

        def invoke(ctx: Any, text: str) -> str:
            noted.append(text)
            return "noted"

        def custom_call(text: str, call_id: str) -> list[Any]:
            item = {"type": "custom_tool_call", "id": call_id, "call_id": call_id}
            return [{**item, "name": "notes", "input": text}]

        model = scripted(custom_call("the password is hunter2", "cu-1"), custom_call("hi", "cu-2"))
        notes = CustomTool(name="notes", description="keep a note", on_invoke_tool=invoke)
        agent = Agent(name="ops", model=model, tools=[notes])
        run(protect(agent, InProcessTransport(runtime.gate), session), "note")
        assert noted == ["hi"]
        last = model.last_call
        assert last is not None
        outputs = [
            str(i["output"])
            for i in last.input
            if isinstance(i, dict) and i.get("type") == "custom_tool_call_output"
        ]
        assert outputs[0] == "denied by rule `default`: no rule matched; the policy default is deny"
        assert outputs[1] == "noted"
        permit = decisions_in_log(runtime)[-1]
        assert (permit["outcome"], permit["rule"]) == ("PERMIT", "polite-notes")
        assert [o["success"] for o in outcomes_for(runtime, permit["decision_id"])] == [True]
    finally:
        runtime.close()
