"""SQLite audit storage: batch commits never fold the WAL back; a background thread does.

A WAL checkpoint copies every page written since the last one into the database file and syncs
it. Run inside a commit (SQLite's automatic checkpoint), it stalls that batch and every caller
queued behind it; the storage runs it on its own thread instead.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from clearance.audit.log import AuditLog
from clearance.audit.sign import AuditKey
from clearance.audit.testing import DEPLOYMENT, ORIGIN, StepClock, decision_fields
from clearance.store.audit_sqlite import SQLiteAuditStorage

KEY = AuditKey(DEPLOYMENT, bytes(32))


def _fill(storage: SQLiteAuditStorage, entries: int) -> None:
    log = AuditLog(storage, KEY, ORIGIN, StepClock(datetime(2026, 3, 1, tzinfo=UTC)))
    payload = {"args": {"note": "x" * 2000}}
    for start in range(0, entries, 100):
        log.append_many(
            [("decision", decision_fields(i), payload) for i in range(start, start + 100)]
        )
    log.close()


def test_commits_leave_the_wal_to_the_checkpoint_thread(tmp_path: Path) -> None:
    storage = SQLiteAuditStorage(tmp_path / "audit.db")
    storage.checkpoint_interval_s = 3600.0  # from its next wait on, the thread stays asleep
    time.sleep(storage.__class__.checkpoint_interval_s * 2)
    _fill(storage, 1500)  # about 3 MB: several automatic checkpoints' worth of pages
    assert (tmp_path / "audit.db-wal").stat().st_size > 3_000_000
    # Nothing but the schema reached the database file: no commit ran a checkpoint.
    assert (tmp_path / "audit.db").stat().st_size < 200_000, "a commit checkpointed the WAL"
    storage.close()
    assert not (tmp_path / "audit.db-wal").exists() or (
        (tmp_path / "audit.db-wal").stat().st_size == 0
    )
    rows = sqlite3.connect(tmp_path / "audit.db").execute("SELECT count(*) FROM audit_entry")
    assert rows.fetchone()[0] == 1501


def test_the_checkpoint_thread_folds_the_wal_into_the_database(tmp_path: Path) -> None:
    storage = SQLiteAuditStorage(tmp_path / "audit.db")
    _fill(storage, 1500)
    deadline = time.monotonic() + 10
    while (tmp_path / "audit.db").stat().st_size < 3_000_000 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (tmp_path / "audit.db").stat().st_size >= 3_000_000
    storage.close()
