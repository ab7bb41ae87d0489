"""The policy's ``retention`` periods are the ones fixed into each audit header at write time."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clearance.cli.commands.core import example_policy_text
from clearance.cli.runtime import create_keys, open_runtime, store_url_for
from clearance.gate.config import GateConfig
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.policy import load_policy
from clearance.store import open_store


def _headers(data: Path) -> list[dict[str, object]]:
    with sqlite3.connect(data / "audit.db") as conn:
        rows = conn.execute("SELECT header FROM audit_entry ORDER BY idx").fetchall()
    return [json.loads(bytes(row[0])) for row in rows]


def _policy(default: str, high_risk: str) -> str:
    section = "\nretention:\n  default: 180d\n  high-risk: 3y\n"
    text = example_policy_text()
    assert section in text, "the example policy's retention section changed"
    return text.replace(section, f"\nretention:\n  default: {default}\n  high-risk: {high_risk}\n")


def test_headers_carry_the_active_policys_periods(tmp_path: Path) -> None:
    data = tmp_path / ".clearance"
    create_keys(data, GateConfig().deployment)
    open_store(store_url_for(data, None)).close()
    runtime = open_runtime(data, require_policy=False)
    try:
        runtime.gate.activate(load_policy(_policy("30d", "2y")), by="test")
        session = runtime.gate.open_session(agent_id="a", task="transfer", environment="staging")
        read = runtime.gate.decide(
            Request(
                agent_id="a",
                session_id=session.session_id,
                tool="read_account",
                args={"account_id": "ACC-100001"},
            )
        )
        large = runtime.gate.decide(
            Request(
                agent_id="a",
                session_id=session.session_id,
                tool="transfer_funds",
                args={"from_account": "ACC-100001", "to_account": "ACC-100002", "amount": 20000},
            )
        )
        assert (read.outcome, large.outcome) == (Outcome.PERMIT, Outcome.APPROVAL)
        runtime.gate.activate(load_policy(_policy("60d", "5y")), by="test")
        later = runtime.gate.decide(
            Request(
                agent_id="a",
                session_id=session.session_id,
                tool="read_account",
                args={"account_id": "ACC-100001"},
            )
        )
    finally:
        runtime.close()
    by_decision = {
        h["decision_id"]: h["retention"] for h in _headers(data) if h["kind"] == "decision"
    }
    today = datetime.now(UTC).date()

    def until(days: int) -> set[str]:  # the day may roll over between the write and this check
        return {(today + timedelta(days=days + d)).isoformat() for d in (-1, 0)}

    assert by_decision[read.decision_id]["class"] == "default"
    assert by_decision[read.decision_id]["until"] in until(30)
    assert by_decision[large.decision_id]["class"] == "high-risk"
    assert by_decision[large.decision_id]["until"] in until(2 * 365)
    # A later policy changes what is written after it, never what was written before.
    assert by_decision[later.decision_id]["until"] in until(60)
    assert by_decision[read.decision_id]["until"] in until(30)
