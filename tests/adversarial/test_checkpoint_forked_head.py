"""Attack: two different roots signed for one tree size (a forked head)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clearance.audit.testing import decision_fields, sample_store
from clearance.audit.verify.verify import main
from clearance.formats.merkle import CompactRange


def test_fork_against_saved_state_is_tampering(tmp_path: Path) -> None:
    store = sample_store(tmp_path / "honest", entries=5)
    state = tmp_path / "state.json"
    assert main(["log", str(store.db), "--key", store.vkey, "--state", str(state)]) == 0
    # A second history of the same length signed by the same (compromised) key replaces the first.
    conn = sqlite3.connect(store.db)
    conn.execute("DELETE FROM audit_entry WHERE idx >= 3")
    conn.execute("DELETE FROM audit_payload WHERE idx >= 3")
    conn.execute("DELETE FROM audit_checkpoint")
    conn.execute(
        "UPDATE audit_shard SET size = 3, head = (SELECT leaf_hash FROM audit_entry WHERE idx = 2)"
    )
    cr = CompactRange()
    for (h,) in conn.execute("SELECT leaf_hash FROM audit_entry ORDER BY idx"):
        cr.append(h)
    conn.execute("UPDATE audit_shard SET compact = ?", (cr.to_bytes(),))
    conn.commit()
    conn.close()
    log, log_storage = store.open_log()
    log.append("decision", decision_fields(777), None)
    log.append("decision", decision_fields(778), None)
    log.checkpoint_now()
    log.close()
    log_storage.close()
    assert main(["log", str(store.db), "--key", store.vkey, "--state", str(state)]) == 1
    assert main(["log", str(store.db), "--key", store.vkey, "--state", str(state), "--full"]) == 1
