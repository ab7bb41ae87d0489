"""Shared setup for the taint and provenance tests: a real gate, SQLite store, approvals and
:class:`SessionTaint` wired as the composition root wires them, plus a payments policy whose rules
read provenance (``from_trusted``, ``only_untrusted``), the session taint and ``scan``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.approvals_kit import RecordingAudit

from clearance.approvals.service import ApprovalService
from clearance.approvals.settings import approval_settings
from clearance.approvals.tokens import IntentKey
from clearance.gate.clock import FixedClock
from clearance.gate.gate import Gate
from clearance.gate.taint import DEFAULT_CACHE_SESSIONS, SessionTaint
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.model.session import Session
from clearance.policy import load_policy
from clearance.store.protocol import Store

TAINT_POLICY = """\
version: "1"
name: taint-test
default: deny
tools:
  fetch_url:
    tier: read-only
    untrusted_source: true
    params:
      url: {type: string, required: true}
  lookup_payee:
    tier: read-only
    params:
      name: {type: string, required: true}
  transfer_funds:
    tier: write-broad
    params:
      to_account: {type: string, required: true}
      amount: {type: number, required: true, min: 0.01, max: 1000000}
  send_email:
    tier: write-limited
    params:
      recipient: {type: string, required: true}
      body: {type: string, required: true}
tasks:
  pay_invoice: {tools: [fetch_url, lookup_payee, transfer_funds]}
  correspond: {tools: [fetch_url, send_email]}
environments:
  staging: {}
  production: {approval_tiers: [write-broad]}
data:
  known_payees: [ACC-100001]
  contacts: [bob@partner.example]
rules:
  - id: reads
    tools: [fetch_url, lookup_payee]
    outcome: permit
    reason: reads are harmless
  - id: payee-trusted
    tools: [transfer_funds]
    when: from_trusted(args.to_account) && args.amount <= 5000.0
    outcome: permit
    reason: the payee is known, named by the principal or returned by a trusted tool
  - id: payee-only-untrusted
    tools: [transfer_funds]
    when: only_untrusted(args.to_account)
    outcome: approval
    reason: the payee was seen only in untrusted content
  - id: injection-seen
    tools: [transfer_funds, send_email]
    when: session.taint.exists(t, t.startsWith("untrusted:injection:"))
    outcome: deny
    reason: an injection attempt entered this session
  - id: email-secret
    tools: [send_email]
    when: size(scan.secrets) > 0
    outcome: deny
    reason: the message carries a secret
  - id: email-untrusted-link
    tools: [send_email]
    when: scan.urls.exists(u, !from_trusted(u))
    outcome: approval
    reason: a link in the message came from neither the instruction nor trusted data
  - id: email-contacts
    tools: [send_email]
    when: args.recipient in data.contacts
    outcome: permit
    reason: mail to a known contact
"""


@dataclass
class TaintKit:
    """A gate whose sessions accumulate taint and provenance from reported results."""

    store: Store
    clock: FixedClock
    gate: Gate
    taint: SessionTaint

    def session(self, task: str = "pay_invoice", instruction: str | None = None) -> Session:
        return self.gate.open_session(
            agent_id="agent-1", task=task, environment="staging", instruction=instruction
        )

    def decide(self, session: Session, tool: str, **args: Any) -> Decision:
        return self.gate.decide(
            Request(agent_id=session.agent_id, session_id=session.session_id, tool=tool, args=args)
        )

    def call(self, session: Session, tool: str, output: Any, **args: Any) -> Decision:
        """A permitted read whose output the agent reports, as a framework adapter does."""
        decision = self.decide(session, tool, **args)
        assert decision.outcome is Outcome.PERMIT, decision
        self.gate.report(
            ActionResult(decision_id=decision.decision_id, success=True, output=output),
            agent_id=session.agent_id,
        )
        return decision

    def taint_of(self, session: Session) -> set[str]:
        state = self.store.session_state(session.session_id)
        assert state is not None
        return set(state.taint)


def build_taint_kit(
    store: Store,
    clock: FixedClock,
    policy_text: str = TAINT_POLICY,
    *,
    cache_sessions: int = DEFAULT_CACHE_SESSIONS,
) -> TaintKit:
    bundle = load_policy(policy_text, source_name="taint-test.yaml")
    gate = Gate(store, clock=clock)
    gate.approvals = ApprovalService(
        store,
        key=IntentKey.generate(),
        audit=RecordingAudit(),
        settings=approval_settings(bundle.compiled),
        notifiers=[],
    )
    taint = SessionTaint(
        store,
        policies=lambda digest: gate.bundle_by_digest(digest).compiled,
        clock=clock,
        cache_sessions=cache_sessions,
    )
    gate.provenance = taint
    gate.observers.append(taint)
    gate.activate(bundle, by="test")
    return TaintKit(store=store, clock=clock, gate=gate, taint=taint)
