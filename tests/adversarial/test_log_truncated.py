"""Attack: the newest entries are cut off the end of the log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clearance.audit.testing import sample_store
from clearance.audit.verify.verify import main, verify_log
from clearance.formats.note import VerifierKey


def test_truncation_below_a_checkpoint_is_tampering(tmp_path: Path) -> None:
    store = sample_store(tmp_path, entries=8)
    conn = sqlite3.connect(store.db)
    conn.execute("DELETE FROM audit_entry WHERE idx >= 6")
    conn.commit()
    report = verify_log(tmp_path, [VerifierKey.parse(store.vkey)])
    assert report.exit_code == 1
    assert any("truncated" in f.message for f in report.findings)


def test_truncation_with_checkpoints_and_head_rewritten_needs_the_state_file(
    tmp_path: Path,
) -> None:
    store = sample_store(tmp_path / "data", entries=8)
    state = tmp_path / "state.json"
    assert main(["log", str(store.db), "--key", store.vkey, "--state", str(state)]) == 0
    conn = sqlite3.connect(store.db)
    conn.execute("DELETE FROM audit_entry WHERE idx >= 6")
    conn.execute("DELETE FROM audit_checkpoint")
    conn.execute("UPDATE audit_shard SET size = 6")
    conn.commit()
    assert main(["log", str(store.db), "--key", store.vkey, "--state", str(state)]) == 1
