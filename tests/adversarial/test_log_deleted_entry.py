"""Attack: one entry is deleted from the middle of the log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clearance.audit.testing import sample_store
from clearance.audit.verify.verify import verify_log
from clearance.formats.note import VerifierKey


def test_deleted_entry_is_reported_by_index(tmp_path: Path) -> None:
    store = sample_store(tmp_path, entries=8)
    conn = sqlite3.connect(store.db)
    conn.execute("DELETE FROM audit_entry WHERE idx = 4")
    conn.execute("DELETE FROM audit_payload WHERE idx = 4")
    conn.commit()
    report = verify_log(tmp_path, [VerifierKey.parse(store.vkey)])
    assert report.exit_code == 1
    assert any(f.index == 4 and "was deleted" in f.message for f in report.findings)


def test_deleted_and_renumbered_entries_break_the_chain(tmp_path: Path) -> None:
    store = sample_store(tmp_path, entries=8)
    conn = sqlite3.connect(store.db)
    conn.execute("DELETE FROM audit_entry WHERE idx = 4")
    conn.execute("UPDATE audit_entry SET idx = idx - 1 WHERE idx > 4")
    conn.commit()
    report = verify_log(tmp_path, [VerifierKey.parse(store.vkey)])
    assert report.exit_code == 1
    assert any(f.index == 4 for f in report.findings if f.severity.name == "TAMPERED")
