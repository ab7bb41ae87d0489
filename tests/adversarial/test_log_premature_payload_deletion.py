"""Attack: a payload is deleted before its retention date (or without a prune entry)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clearance.audit.testing import sample_store
from clearance.audit.verify.verify import verify_log
from clearance.formats.note import VerifierKey


def test_premature_deletion_is_tampering(tmp_path: Path) -> None:
    store = sample_store(tmp_path, entries=5)
    conn = sqlite3.connect(store.db)
    conn.execute("DELETE FROM audit_payload WHERE idx = 2")
    conn.commit()
    report = verify_log(tmp_path, [VerifierKey.parse(store.vkey)])
    assert report.exit_code == 1
    [finding] = [f for f in report.findings if f.severity.name == "TAMPERED"]
    assert finding.index == 2
    assert "deleted prematurely" in finding.message
