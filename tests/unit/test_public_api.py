"""The root API is small, pinned, lazy, and enough to run a decision end to end."""

from __future__ import annotations

import subprocess
import sys

import clearance

PINNED = {
    "ActionResult",
    "ApprovalError",
    "AuditError",
    "Bundle",
    "ClearanceError",
    "ConfigError",
    "Decision",
    "Environment",
    "Gate",
    "GateConfig",
    "Obligation",
    "Outcome",
    "PolicyError",
    "Request",
    "RequestError",
    "RiskTier",
    "Session",
    "StoreError",
    "Verdict",
    "__version__",
    "load_policy",
    "open_store",
}


def test_all_is_pinned() -> None:
    assert set(clearance.__all__) == PINNED
    for name in clearance.__all__:
        assert getattr(clearance, name) is not None


def test_importing_the_verifier_loads_no_gate_code() -> None:
    code = (
        "import sys, clearance.audit.verify\n"
        "bad = [m for m in sys.modules if m.startswith(('clearance.gate', 'clearance.store', "
        "'clearance.policy', 'pydantic', 'yaml', 'psycopg', 'starlette'))]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_root_names_decide_end_to_end(tmp_path) -> None:
    from tests.conftest import SMALL_POLICY

    gate = clearance.Gate(clearance.open_store(f"sqlite:///{tmp_path / 'c.db'}"))
    gate.activate(clearance.load_policy(SMALL_POLICY), by="test")
    session = gate.open_session(agent_id="a", task="balance_check", environment="staging")
    decision = gate.decide(
        clearance.Request(
            agent_id="a",
            session_id=session.session_id,
            tool="read_account",
            args={"account_id": "acc-1"},
        )
    )
    assert decision.outcome is clearance.Outcome.PERMIT
