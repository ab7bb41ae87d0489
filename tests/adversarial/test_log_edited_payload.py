"""Attack: an argument inside a stored payload is edited. The commitment no longer matches."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clearance.audit.testing import sample_store
from clearance.audit.verify.verify import main, verify_log
from clearance.formats.note import VerifierKey


def test_edited_payload_argument_is_tampering(tmp_path: Path) -> None:
    store = sample_store(tmp_path, entries=6)
    conn = sqlite3.connect(store.db)
    body = conn.execute("SELECT body FROM audit_payload WHERE idx = 3").fetchone()[0]
    edited = body.replace(b'"amount":12', b'"amount":12000')
    assert edited != body
    conn.execute("UPDATE audit_payload SET body = ? WHERE idx = 3", (edited,))
    conn.commit()
    report = verify_log(tmp_path, [VerifierKey.parse(store.vkey)])
    assert report.exit_code == 1
    [finding] = [f for f in report.findings if f.severity.name == "TAMPERED"]
    assert finding.index == 3
    assert "payload was edited" in finding.message
    assert main(["log", str(tmp_path), "--key", store.vkey]) == 1


def test_edited_header_is_tampering(tmp_path: Path) -> None:
    store = sample_store(tmp_path, entries=6)
    conn = sqlite3.connect(store.db)
    conn.execute("UPDATE audit_entry SET header = replace(header, 'PERMIT', 'DENY') WHERE idx = 2")
    conn.commit()
    report = verify_log(tmp_path, [VerifierKey.parse(store.vkey)])
    assert report.exit_code == 1
    assert any(
        f.index == 2 and "header or its hash was altered" in f.message for f in report.findings
    )
