"""A real gate for the adapter tests: a data directory initialised like ``clearance init``.

Store, audit shard, keys, approval service and policy are all real; only things outside clearance
(a dead sidecar, a scripted model) are doubles.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clearance.approvals.rules import Operator
from clearance.cli.runtime import Runtime, create_keys, open_runtime, store_url_for
from clearance.gate.clock import SystemClock
from clearance.gate.config import GateConfig
from clearance.integrations.mapping import SessionHandle
from clearance.model.decision import Decision
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.policy import load_policy
from clearance.store import open_store
from clearance.store.audit_sqlite import SQLiteAuditStorage

AGENT = "ops-agent-1"
APPROVER = Operator(id="op-alice")

POLICY = """\
version: "1"
name: integrations-test
default: deny
tools:
  read_account:
    tier: read-only
    params:
      account_id: {type: string, required: true, pattern: "acc-[0-9]{1,8}"}
  transfer_funds:
    tier: write-limited
    params:
      amount: {type: number, required: true, min: 0.01, max: 1000000}
      to_account: {type: string, required: true, pattern: "acc-[0-9]{1,8}"}
  delete_records:
    tier: destructive
    params:
      table: {type: string, required: true}
  run_code:
    tier: write-limited
    code_execution: true
    params:
      code: {type: string, required: true}
tasks:
  ops: {tools: [read_account, transfer_funds, delete_records, run_code]}
environments:
  staging: {}
  production: {}
approvals:
  timeout: 15m
  groups:
    finance: [op-alice]
  default_group: finance
rules:
  - id: reads
    tools: [read_account]
    outcome: permit
    reason: reads are harmless
  - id: small-transfer
    tools: [transfer_funds]
    when: args.amount <= 1000.0
    outcome: permit
    reason: small transfers
  - id: large-transfer
    tools: [transfer_funds]
    when: args.amount > 1000.0
    outcome: approval
    reason: transfers above 1000 need a human
  - id: never-delete
    tools: [delete_records]
    outcome: deny
    reason: the agent never deletes records
  - id: code-in-sandbox
    tools: [run_code]
    outcome: permit
    reason: code runs in the sandbox
sandbox:
  tools:
    run_code: {wall_time: 10s, memory_mb: 128}
"""


def init_data_dir(data_dir: Path, policy_text: str = POLICY) -> None:
    """What ``clearance init`` does, with the test policy."""
    data_dir.mkdir(parents=True, exist_ok=True)
    bundle = load_policy(policy_text, source_name="integrations.yaml")
    create_keys(data_dir, GateConfig().deployment)
    open_store(store_url_for(data_dir, None)).close()
    runtime = open_runtime(data_dir, require_policy=False)
    try:
        runtime.gate.activate(bundle, by="test")
    finally:
        runtime.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    init_data_dir(path)
    return path


@pytest.fixture
def runtime(data_dir: Path) -> Iterator[Runtime]:
    rt = open_runtime(data_dir, clock=SystemClock())
    yield rt
    rt.close()


@pytest.fixture
def session(runtime: Runtime) -> SessionHandle:
    s = runtime.gate.open_session(agent_id=AGENT, task="ops", environment="staging")
    return SessionHandle(agent_id=s.agent_id, session_id=s.session_id)


def audit_entries(runtime: Runtime) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """``(header, payload)`` of every committed entry of the runtime's shard, in order."""
    runtime.audit_log.checkpoint_now()
    storage = SQLiteAuditStorage(runtime.data_dir / "audit.db")
    try:
        rows = storage.entries(runtime.audit_log.origin, 0, runtime.audit_log.size)
    finally:
        storage.close()
    return [(json.loads(h or b"{}"), json.loads(b) if b else None) for _, _, h, _, b in rows]


def outcomes_for(runtime: Runtime, decision_id: str) -> list[dict[str, Any]]:
    """Outcome entries (header + payload merged) recorded against ``decision_id``."""
    return [
        {**header, **(payload or {})}
        for header, payload in audit_entries(runtime)
        if header.get("kind") == "outcome" and header.get("decision_id") == decision_id
    ]


def decisions_in_log(runtime: Runtime) -> list[dict[str, Any]]:
    """Decision entry headers, in order."""
    return [h for h, _ in audit_entries(runtime) if h.get("kind") == "decision"]


class DeadSidecar:
    """A transport whose network is down: every call raises, as httpx would."""

    def __init__(self) -> None:
        self.calls = 0

    def decide(self, request: Request) -> Decision:
        self.calls += 1
        raise ConnectionError("connection refused (127.0.0.1:8787)")

    def report(self, result: ActionResult, *, agent_id: str) -> None:
        raise ConnectionError("connection refused (127.0.0.1:8787)")

    def wait_for_approval(self, pending: Any, *, timeout_s: float) -> Any:
        raise ConnectionError("connection refused (127.0.0.1:8787)")


def approve(runtime: Runtime, approval_id: str) -> None:
    """The operator approves through the real approval service."""
    runtime.approvals.approve(approval_id, APPROVER, SystemClock().now())


def claim_token(runtime: Runtime, decision: Decision, session: SessionHandle) -> str:
    """The agent's side: read the status with the signed intent and receive the one-time token."""
    assert decision.approval_id is not None
    assert decision.intent is not None
    status = runtime.approvals.status(
        decision.approval_id,
        intent=decision.intent,
        agent_id=session.agent_id,
        session_id=session.session_id,
        now=SystemClock().now(),
    )
    assert status.token is not None, status
    return status.token


def first_pending(runtime: Runtime) -> str | None:
    """The id of the oldest pending approval, as the operator's dashboard lists it."""
    pending = runtime.approvals.list_pending(APPROVER, SystemClock().now())
    return pending[0].approval_id if pending else None


def operator_thread(runtime: Runtime, act: Any) -> threading.Thread:
    """A started thread that waits for a pending approval and hands its id to ``act``."""

    def run() -> None:
        for _ in range(400):
            approval_id = first_pending(runtime)
            if approval_id is not None:
                act(approval_id)
                return
            threading.Event().wait(0.02)

    thread = threading.Thread(target=run)
    thread.start()
    return thread
