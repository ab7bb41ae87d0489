"""The core guard, offline: a permitted call, a denied call, an approval round trip, the audit trail.

Run with ``python examples/python-guard/run.py``. It creates a throw-away data directory with the
FinanceApp example policy, opens a session as the orchestrator would, and gates three tools.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from clearance.approvals.rules import Operator
from clearance.cli.commands.core import example_policy_text
from clearance.cli.runtime import create_keys, open_runtime, store_url_for
from clearance.gate.clock import SystemClock
from clearance.gate.config import GateConfig
from clearance.integrations.errors import ApprovalPending, Denied
from clearance.integrations.guard import CallOptions, Guard
from clearance.integrations.mapping import SessionHandle
from clearance.integrations.transport import InProcessTransport
from clearance.policy import load_policy
from clearance.store import open_store


def main(data: Path) -> None:
    create_keys(data, GateConfig().deployment)
    open_store(store_url_for(data, None)).close()
    runtime = open_runtime(data, require_policy=False)
    try:
        runtime.gate.activate(load_policy(example_policy_text()), by="example")
        opened = runtime.gate.open_session(
            agent_id="financeapp-1", task="transfer", environment="staging", principal="dana"
        )
        session = SessionHandle(agent_id=opened.agent_id, session_id=opened.session_id)
        guard = Guard(InProcessTransport(runtime.gate, approvals=runtime.approvals), session)

        @guard.tool()
        def read_account(account_id: str) -> str:
            return f"{account_id}: 1,204.50 EUR"

        @guard.tool()
        def transfer_funds(from_account: str, to_account: str, amount: float) -> str:
            return f"moved {amount} from {from_account} to {to_account}"

        say(read_account("ACC-100001"))
        token = CallOptions()
        try:
            transfer_funds("ACC-100001", "ACC-999999", 250.0)
        except ApprovalPending as pending:
            say(f"waiting: {pending}")
            runtime.approvals.approve(
                pending.approval_id, Operator(id="op-alice"), SystemClock().now()
            )
            intent = pending.decision.intent if pending.decision else None
            if intent is None:
                raise SystemExit(
                    "an APPROVAL decision always carries its signed intent"
                ) from pending
            status = runtime.approvals.status(
                pending.approval_id,
                intent=intent,
                agent_id=session.agent_id,
                session_id=session.session_id,
                now=SystemClock().now(),
            )
            token = CallOptions(approval_token=status.token)
            say(transfer_funds("ACC-100001", "ACC-999999", 250.0, clearance=token))
        try:
            transfer_funds("ACC-100001", "ACC-999999", 9999.0, clearance=token)
        except Denied as denied:
            say(f"refused: {denied}")
        runtime.audit_log.checkpoint_now()
        say(f"audit log: {runtime.audit_log.size} signed entries in {runtime.audit_log.origin}")
    finally:
        runtime.close()


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp) / "data")
