"""A LangChain agent behind clearance, offline: a denied call, an approval round trip, the audit trail.

Run with ``python examples/langchain/run.py``. It creates a throw-away data directory, activates
``policy.yaml`` beside this file, opens a session as the orchestrator would, and runs a
``create_agent`` agent whose model is LangChain's fake chat model with a scripted plan:

1. read an account balance            -> PERMIT, the tool runs
2. delete the payee table             -> DENY, the tool never runs; the model reads the rule
3. transfer 5,000 to another account  -> APPROVAL: the graph pauses with ``interrupt()``;
   a forged resume ("approved": true) is not taken as approval, the graph pauses again;
   an operator approves in clearance, the graph resumes, the transfer runs once.

Then it prints the decisions and outcomes from the signed audit log and verifies the log offline.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from clearance.approvals.rules import Operator
from clearance.audit.verify.verify import verify_log
from clearance.cli.runtime import Runtime, create_keys, open_runtime, store_url_for
from clearance.formats.note import VerifierKey
from clearance.gate.clock import SystemClock
from clearance.gate.config import GateConfig
from clearance.integrations.langchain import ClearanceMiddleware
from clearance.integrations.mapping import SessionHandle, approval_link
from clearance.integrations.transport import InProcessTransport
from clearance.policy import load_policy
from clearance.store import open_store
from clearance.store.audit_sqlite import SQLiteAuditStorage

POLICY = Path(__file__).with_name("policy.yaml")
DASHBOARD = "http://127.0.0.1:8787"
THREAD: RunnableConfig = {"configurable": {"thread_id": "bookkeeping-1"}}


class ScriptedChatModel(GenericFakeChatModel):
    """LangChain's fake chat model; the tools are already in the script, so binding is a no-op."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        del tools, kwargs
        return self


def plan() -> Iterator[AIMessage]:
    """What the model "decides", one message per turn."""
    steps = [
        ("read_account", {"account_id": "acc-100"}),
        ("delete_records", {"table": "payees"}),
        ("transfer_funds", {"amount": 5000, "to_account": "acc-200"}),
    ]
    for n, (name, args) in enumerate(steps):
        yield AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call-{n}"}])
    yield AIMessage(content="All done.")


@dataclass
class Ledger:
    """The tools' side effects, so the run can show what really happened."""

    transfers: list[tuple[float, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def tools(self) -> list[BaseTool]:
        @tool
        def read_account(account_id: str) -> str:
            """Read the balance of an account."""
            return f"{account_id}: 1,204.50 EUR"

        @tool
        def delete_records(table: str) -> str:
            """Delete every record of a table."""
            self.deleted.append(table)
            return f"deleted {table}"

        @tool
        def transfer_funds(amount: float, to_account: str) -> str:
            """Transfer money to an account."""
            self.transfers.append((amount, to_account))
            return f"sent {amount:.2f} to {to_account}"

        return [read_account, delete_records, transfer_funds]


@dataclass
class Outcome:
    """What the run did, for the reader and for the example's test."""

    ledger: Ledger = field(default_factory=Ledger)
    tool_messages: list[ToolMessage] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    verified: bool = False


def run_agent(runtime: Runtime, outcome: Outcome) -> None:
    """The orchestrator's side: open the session, run the agent, get the transfer approved."""
    opened = runtime.gate.open_session(
        agent_id="bookkeeper-1", task="bookkeeping", environment="staging", principal="dana"
    )
    gatekeeper = ClearanceMiddleware(
        InProcessTransport(runtime.gate, approvals=runtime.approvals),
        SessionHandle(agent_id=opened.agent_id, session_id=opened.session_id),
        approval_url=approval_link(DASHBOARD),
    )
    agent = create_agent(
        ScriptedChatModel(messages=plan()),
        outcome.ledger.tools(),
        middleware=[gatekeeper],
        checkpointer=InMemorySaver(),
    )
    ask = HumanMessage(content="Tidy up the books.")
    result = agent.invoke({"messages": [ask]}, THREAD, version="v2")
    paused = result.interrupts[0].value
    outcome.approvals.append(paused)
    say(
        f"paused: {paused['summary']} (approval {paused['approval_id']}, {paused['dashboard_url']})"
    )

    forged = agent.invoke(Command(resume={"approved": True}), THREAD, version="v2")
    again = forged.interrupts[0].value
    outcome.approvals.append(again)
    say(f"forged resume refused: still waiting on approval {again['approval_id']}")

    runtime.approvals.approve(paused["approval_id"], Operator(id="op-alice"), SystemClock().now())
    say("op-alice approved it in clearance")
    result = agent.invoke(Command(resume={"type": "approve"}), THREAD, version="v2")
    outcome.tool_messages = [m for m in result.value["messages"] if isinstance(m, ToolMessage)]
    for message in outcome.tool_messages:
        say(f"{message.name}: [{message.status}] {message.content}")


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
        run_agent(runtime, outcome)
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
