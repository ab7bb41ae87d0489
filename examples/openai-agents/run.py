"""An OpenAI Agents SDK agent behind clearance, offline: a denied call, an approval round trip, the
audit trail.

Run with ``python examples/openai-agents/run.py``. It creates a throw-away data directory,
activates ``policy.yaml`` beside this file, opens a session as the orchestrator would, and runs an
``agents.Agent`` whose model is the SDK's own ``ScriptedModel`` (no network, no API key):

1. read an account balance            -> PERMIT, the tool runs
2. delete the payee table             -> DENY, the tool never runs; the model reads the rule
3. transfer 5,000 to another account  -> APPROVAL: the run stops with an interruption.
   The saved run state is resumed twice. First the app approves only inside the SDK: that proves
   nothing, clearance still says pending and the tool does not run. Then an operator approves in
   clearance, the app resumes the saved state again, and the transfer runs once.

Then it prints the decisions and outcomes from the signed audit log and verifies the log offline.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from agents import Agent, FunctionTool, RunConfig, Runner, RunResult, RunState, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call

from clearance.approvals.rules import Operator
from clearance.audit.verify.verify import verify_log
from clearance.cli.runtime import Runtime, create_keys, open_runtime, store_url_for
from clearance.formats.note import VerifierKey
from clearance.gate.clock import SystemClock
from clearance.gate.config import GateConfig
from clearance.integrations.mapping import SessionHandle, approval_link
from clearance.integrations.openai_agents import protect
from clearance.integrations.transport import InProcessTransport
from clearance.policy import load_policy
from clearance.store import open_store
from clearance.store.audit_sqlite import SQLiteAuditStorage

POLICY = Path(__file__).with_name("policy.yaml")
DASHBOARD = "http://127.0.0.1:8787"
CONFIG = RunConfig(tracing_disabled=True)


def scripted_model() -> ScriptedModel:
    """What the model "decides", one response per turn (two endings: the state resumes twice)."""
    steps: list[tuple[str, dict[str, Any]]] = [
        ("read_account", {"account_id": "acc-100"}),
        ("delete_records", {"table": "payees"}),
        ("transfer_funds", {"amount": 5000.0, "to_account": "acc-200"}),
    ]
    script: list[Any] = [
        [function_call(name, args, call_id=f"call-{n}")] for n, (name, args) in enumerate(steps)
    ]
    return ScriptedModel([*script, [assistant_message("Waiting.")], [assistant_message("Done.")]])


@dataclass
class Ledger:
    """The tools' side effects, so the run can show what really happened."""

    transfers: list[tuple[float, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def tools(self) -> list[FunctionTool]:
        @function_tool
        def read_account(account_id: str) -> str:
            """Read the balance of an account."""
            return f"{account_id}: 1,204.50 EUR"

        @function_tool
        def delete_records(table: str) -> str:
            """Delete every record of a table."""
            self.deleted.append(table)
            return f"deleted {table}"

        @function_tool
        def transfer_funds(amount: float, to_account: str) -> str:
            """Transfer money to an account."""
            self.transfers.append((amount, to_account))
            return f"sent {amount:.2f} to {to_account}"

        return [read_account, delete_records, transfer_funds]


@dataclass
class Outcome:
    """What the run did, for the reader and for the example's test."""

    ledger: Ledger = field(default_factory=Ledger)
    tool_results: list[str] = field(default_factory=list)
    sdk_only_result: str = ""
    approval_id: str = ""
    audit: list[dict[str, Any]] = field(default_factory=list)
    verified: bool = False


def tool_results(result: RunResult) -> list[str]:
    """The tool results the model was shown, in order."""
    return [str(i.output) for i in result.new_items if i.type == "tool_call_output_item"]


def approved_in_sdk(state: RunState[Any]) -> RunState[Any]:
    """What the host app does with an interruption: approve it in the SDK (a UX signal only)."""
    for item in state.get_interruptions():
        state.approve(item)
    return state


async def run_agent(runtime: Runtime, outcome: Outcome) -> None:
    """The orchestrator's side: open the session, run the agent, get the transfer approved."""
    opened = runtime.gate.open_session(
        agent_id="payments-bot-1", task="payments", environment="staging", principal="dana"
    )
    agent = protect(
        Agent(name="payments", model=scripted_model(), tools=list(outcome.ledger.tools())),
        InProcessTransport(runtime.gate, approvals=runtime.approvals),
        SessionHandle(agent_id=opened.agent_id, session_id=opened.session_id),
        approval_url=approval_link(DASHBOARD),
    )
    first = await Runner.run(agent, "Tidy up the books and pay acc-200.", run_config=CONFIG)
    outcome.tool_results = tool_results(first)
    for line in outcome.tool_results:
        say(f"tool result: {line}")
    [paused] = first.interruptions
    say(f"paused: `{paused.name}` {paused.arguments} waits for approval")
    saved = first.to_state().to_string()  # the app stores the run while it waits

    sdk_only = await Runner.run(
        agent, approved_in_sdk(await RunState.from_string(agent, saved)), run_config=CONFIG
    )
    outcome.sdk_only_result = tool_results(sdk_only)[-1]
    say(f"approved only in the SDK: {outcome.sdk_only_result}")

    pending = runtime.approvals.list_pending(Operator(id="op-alice"), SystemClock().now())
    outcome.approval_id = pending[0].approval_id
    runtime.approvals.approve(outcome.approval_id, Operator(id="op-alice"), SystemClock().now())
    say(f"op-alice approved {outcome.approval_id} in clearance")
    approved = await Runner.run(
        agent, approved_in_sdk(await RunState.from_string(agent, saved)), run_config=CONFIG
    )
    outcome.tool_results.append(tool_results(approved)[-1])
    say(f"tool result: {outcome.tool_results[-1]}")


def audit_trail(runtime: Runtime) -> list[dict[str, Any]]:
    """Decision and outcome entries, read back from the audit log's storage."""
    runtime.audit_log.checkpoint_now()
    storage = SQLiteAuditStorage(runtime.data_dir / "audit.db")
    try:
        rows = storage.entries(runtime.audit_log.origin, 0, runtime.audit_log.size)
    finally:
        storage.close()
    entries = []
    for _, _, header, _, body in rows:
        entry = orjson.loads(header) if header else {}
        if entry.get("kind") in {"decision", "outcome"}:
            entries.append({**entry, "payload": orjson.loads(body) if body else None})
    return entries


def run(data: Path) -> Outcome:
    """Play the scenario in a fresh data directory and return what happened."""
    create_keys(data, GateConfig().deployment)
    open_store(store_url_for(data, None)).close()
    runtime = open_runtime(data, require_policy=False)
    outcome = Outcome()
    try:
        runtime.gate.activate(load_policy(POLICY), by="example")
        asyncio.run(run_agent(runtime, outcome))
        outcome.audit = audit_trail(runtime)
    finally:
        runtime.close()
    key = VerifierKey.parse((data / "keys" / "audit.pub").read_text("utf-8").strip())
    outcome.verified = verify_log(data / "audit.db", [key]).exit_code == 0
    return outcome


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run(Path(tmp) / "data")
    say("audit trail:")
    for entry in outcome.audit:
        if entry["kind"] == "decision":
            say(f"  decision {entry['tool']:<15} {entry['outcome']:<8} {entry['rule']}")
        else:
            say(f"  outcome  {entry['decision_id']} success={entry['payload']['success']}")
    say(f"audit log verified offline: {outcome.verified}")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


if __name__ == "__main__":
    main()
