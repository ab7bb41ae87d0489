"""The scheduled integrity check: state advances on success, alerts on tampering."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from clearance.audit.monitor import IntegrityMonitor
from clearance.audit.testing import decision_fields, sample_store
from clearance.audit.verify.verify import Report
from clearance.formats.note import VerifierKey


def test_incremental_runs_and_alert(tmp_path: Path) -> None:
    store = sample_store(tmp_path / "data", entries=4)
    state = tmp_path / "state.json"
    alerts: list[Report] = []
    monitor = IntegrityMonitor(
        store.db, [VerifierKey.parse(store.vkey)], state, on_failure=alerts.append
    )
    assert monitor.run_once().exit_code == 0
    assert json.loads(state.read_text())["shards"][store.origin]["size"] == 5
    log, log_storage = store.open_log()
    log.append("decision", decision_fields(50), None)
    log.checkpoint_now()
    log.close()
    log_storage.close()
    second = monitor.run_once()
    assert second.exit_code == 0
    assert second.entries_checked == 1
    conn = sqlite3.connect(store.db)
    conn.execute("DELETE FROM audit_entry WHERE idx = 5")
    conn.commit()
    assert monitor.run_once().exit_code == 1
    assert monitor.failures_total == 1
    assert len(alerts) == 1
    assert json.loads(state.read_text())["shards"][store.origin]["size"] == 6
