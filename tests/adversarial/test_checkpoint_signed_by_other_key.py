"""Attack: a checkpoint is replaced by one signed with a key the auditor does not trust."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clearance.audit.sign import AuditKey
from clearance.audit.testing import DEPLOYMENT, sample_store
from clearance.audit.verify.verify import verify_log
from clearance.formats.checkpoint import Checkpoint
from clearance.formats.note import VerifierKey, add_signatures


def test_checkpoint_by_other_key_is_tampering(tmp_path: Path) -> None:
    store = sample_store(tmp_path, entries=5)
    conn = sqlite3.connect(store.db)
    size, root = conn.execute(
        "SELECT size, root FROM audit_checkpoint ORDER BY size DESC"
    ).fetchone()
    text = Checkpoint(store.origin, size, root).to_text()
    mallory = AuditKey(DEPLOYMENT, b"m" * 32)
    conn.execute(
        "UPDATE audit_checkpoint SET note = ? WHERE size = ?",
        (add_signatures(text, [mallory.sign_note(text, store.origin)]), size),
    )
    conn.commit()
    report = verify_log(tmp_path, [VerifierKey.parse(store.vkey)])
    assert report.exit_code == 1
    assert any(
        f"checkpoint at size {size}" in f.message and "trusted key" in f.message
        for f in report.findings
    )
