"""SIEM export: the standard field set on every line, tail and follow."""

from __future__ import annotations

import json
from pathlib import Path

from clearance.audit.export import DECISION_FIELDS, STANDARD_FIELDS, export_lines, tail
from clearance.audit.testing import ORIGIN, decision_fields, sample_store
from clearance.store.audit_sqlite import SQLiteAuditStorage


def test_every_event_has_the_standard_fields(tmp_path: Path) -> None:
    sample_store(tmp_path, entries=3)
    storage = SQLiteAuditStorage(tmp_path / "clearance.db", readonly=True)
    events = [json.loads(line) for line in export_lines(storage)]
    assert [e["kind"] for e in events] == ["genesis", "decision", "decision", "decision"]
    decision = events[2]
    for name in (*STANDARD_FIELDS, *DECISION_FIELDS):
        assert name in decision
    assert decision["session_id"] == "ses_sample1"
    assert decision["tool_input"] == {"amount": 11, "to_account": "acc-1"}
    assert decision["risk_tier"] == "write-limited"
    assert decision["reasoning"] == "customer asked for a refund"
    assert decision["timestamp"].endswith("Z")
    assert decision["outcome"] == "PERMIT"
    assert decision["payload_pruned"] is False


def test_tail_and_follow(tmp_path: Path) -> None:
    store = sample_store(tmp_path, entries=5)
    storage = SQLiteAuditStorage(store.db)
    assert [json.loads(x)["index"] for x in tail(storage, ORIGIN, last=2)] == [4, 5]
    log, log_storage = store.open_log()
    rounds = []

    def wait() -> bool:
        if not rounds:
            log.append("decision", decision_fields(99), None)
        rounds.append(1)
        return len(rounds) < 2

    seen = [json.loads(x)["index"] for x in tail(storage, ORIGIN, last=1, follow=True, wait=wait)]
    log.close()
    log_storage.close()
    assert seen == [5, 6]
