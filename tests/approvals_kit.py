"""Shared setup for the approval, break-glass and credential tests: a real gate, store and policy.

Only the audit sink is a double (a recorder of events, optionally failing), because the tests
assert on what was recorded and on what happens when recording fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from clearance.approvals.breakglass import BreakGlass
from clearance.approvals.decay import DecayOverride
from clearance.approvals.notify import Notification
from clearance.approvals.rules import Operator
from clearance.approvals.service import ApprovalService
from clearance.approvals.settings import approval_settings, breakglass_settings
from clearance.approvals.tokens import IntentKey
from clearance.errors import AuditWriteError
from clearance.gate.clock import FixedClock
from clearance.gate.gate import Gate
from clearance.model.decision import Decision
from clearance.model.request import Request
from clearance.model.session import Session
from clearance.policy import load_policy
from clearance.store import open_store
from clearance.store.protocol import Store

APPROVAL_POLICY = """\
version: "1"
name: approvals-test
default: deny
tools:
  read_account:
    tier: read-only
    params:
      account_id: {type: string, required: true}
  pay_vendor:
    tier: write-limited
    summary: "pay {args.amount} from {args.from_account} to {args.vendor} because {request.reasoning}"
    params:
      amount: {type: number, required: true, min: 0.01, max: 1000000}
      from_account: {type: string, required: true}
      vendor: {type: string, required: true}
  transfer_funds:
    tier: write-broad
    params:
      amount: {type: number, required: true, min: 0.01, max: 1000000}
      to_account: {type: string, required: true}
  drop_table:
    tier: destructive
    params:
      table: {type: string, required: true}
  wire_abroad:
    tier: write-broad
    params:
      amount: {type: number, required: true}
tasks:
  payments: {tools: [read_account, pay_vendor, transfer_funds, wire_abroad]}
  maintenance: {tools: [read_account, drop_table]}
environments:
  development: {}
  staging: {}
  production: {}
approvals:
  timeout: 15m
  groups:
    payments: [alice, bob, carol, mallory]
    dba: [dora, dave]
  default_group: payments
  decay:
    after: 3
rules:
  - id: reads
    tools: [read_account]
    outcome: permit
  - id: vendor-payments
    tools: [pay_vendor]
    outcome: approval
    reason: vendor payments need a human
  - id: transfers
    tools: [transfer_funds]
    outcome: approval
    reason: transfers need a human
  - id: drops
    tools: [drop_table]
    outcome: approval
    group: dba
    reason: dropping a table needs two DBAs
  - id: no-wires
    tools: [wire_abroad]
    outcome: deny
    reason: wires abroad are forbidden
redaction:
  hash: [args.from_account]
credentials:
  tools:
    pay_vendor: {secret: vendor_api, scope: payments, ttl: 5m}
    transfer_funds: {secret: bank_api, environments: [production]}
breakglass:
  operators: [alice]
  scope:
    agents: ["*"]
    tools: [wire_abroad, transfer_funds, pay_vendor]
    tiers: [write-limited, write-broad]
  max_duration: 1h
"""

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

ALICE = Operator("alice")
BOB = Operator("bob")
CAROL = Operator("carol")
DORA = Operator("dora")
DAVE = Operator("dave")


class RecordingAudit:
    """An audit sink that keeps events in memory; ``fail`` makes every write raise."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.fail = False

    def record_event(self, kind: str, fields: dict[str, Any], payload: dict[str, Any]) -> None:
        if self.fail:
            raise AuditWriteError("the audit log is not writable (test)")
        self.events.append((kind, fields, payload))

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.events]

    def reasons(self, kind: str) -> list[str]:
        return [payload.get("reason", "") for k, _, payload in self.events if k == kind]


class ListNotifier:
    """Keeps notifications; stands in for a chat channel."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)


@dataclass
class Kit:
    """A gate with approvals, break-glass and decay wired as the CLI wires them."""

    store: Store
    clock: FixedClock
    gate: Gate
    service: ApprovalService
    breakglass: BreakGlass
    decay: DecayOverride
    key: IntentKey
    audit: RecordingAudit
    notifier: ListNotifier
    alerts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def session(
        self,
        agent_id: str = "fin-1",
        task: str = "payments",
        environment: str = "staging",
        **kw: Any,
    ) -> Session:
        return self.gate.open_session(agent_id=agent_id, task=task, environment=environment, **kw)

    def request(self, session: Session, tool: str, **args: Any) -> Request:
        return Request(
            agent_id=session.agent_id,
            session_id=session.session_id,
            tool=tool,
            args=args,
            reasoning="invoice #4471 is due today",
        )

    def decide(self, request: Request, token: str | None = None) -> Decision:
        if token is not None:
            request = request.model_copy(update={"approval_token": token})
        return self.gate.decide(request)

    def token_for(self, decision: Decision, request: Request) -> str:
        """The agent's side: claim the token with the signed intent."""
        assert decision.approval_id is not None
        assert decision.intent is not None
        status = self.service.status(
            decision.approval_id,
            intent=decision.intent,
            agent_id=request.agent_id,
            session_id=request.session_id,
            now=self.clock.now(),
        )
        assert status.token is not None, status
        return status.token


def build_kit(store: Store, clock: FixedClock, policy_text: str = APPROVAL_POLICY) -> Kit:
    bundle = load_policy(policy_text, source_name="approvals-test.yaml")
    audit = RecordingAudit()
    notifier = ListNotifier()
    key = IntentKey.generate()
    settings = approval_settings(bundle.compiled)
    alerts: list[tuple[str, dict[str, Any]]] = []
    service = ApprovalService(store, key=key, audit=audit, settings=settings, notifiers=[notifier])
    glass = BreakGlass(
        store,
        key=key,
        audit=audit,
        settings=breakglass_settings(bundle.compiled),
        alert=lambda title, details: alerts.append((title, details)),
    )
    decay = DecayOverride(store, settings=settings, notifiers=[notifier])
    gate = Gate(
        store,
        clock=clock,
        approvals=service,  # type: ignore[arg-type]
        overrides=[glass, decay],
        observers=[decay],
    )
    gate.activate(bundle, by="test")
    return Kit(
        store=store,
        clock=clock,
        gate=gate,
        service=service,
        breakglass=glass,
        decay=decay,
        key=key,
        audit=audit,
        notifier=notifier,
        alerts=alerts,
    )


@pytest.fixture(name="kit")
def kit_fixture(tmp_path: Path) -> Iterator[Kit]:
    """A fresh kit on a temporary SQLite store (import this name to use the ``kit`` fixture)."""
    store = open_store(f"sqlite:///{tmp_path / 'clearance.db'}")
    try:
        yield build_kit(store, FixedClock(START))
    finally:
        store.close()
