"""Attack: two entries swap places (their rows keep the index, the contents move)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clearance.audit.testing import sample_store
from clearance.audit.verify.verify import verify_log
from clearance.formats.note import VerifierKey


def test_swapped_entries_are_reported(tmp_path: Path) -> None:
    store = sample_store(tmp_path, entries=8)
    conn = sqlite3.connect(store.db)
    (h5, l5), (h6, l6) = conn.execute(
        "SELECT header, leaf_hash FROM audit_entry WHERE idx IN (5, 6) ORDER BY idx"
    ).fetchall()
    conn.execute("UPDATE audit_entry SET header = ?, leaf_hash = ? WHERE idx = 5", (h6, l6))
    conn.execute("UPDATE audit_entry SET header = ?, leaf_hash = ? WHERE idx = 6", (h5, l5))
    conn.commit()
    report = verify_log(tmp_path, [VerifierKey.parse(store.vkey)])
    assert report.exit_code == 1
    [finding] = [f for f in report.findings if f.severity.name == "TAMPERED"]
    assert finding.index == 5
    assert "reordered" in finding.message
