"""Attack/failure: the database fills up or turns read-only during appends.

Every append that is not durable raises AuditWriteError (the gate answers SILENCE), and every
append that returned is still in the log and verifies.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clearance.audit.log import AuditLog
from clearance.audit.sign import AuditKey
from clearance.audit.testing import DEPLOYMENT, ORIGIN, StepClock, decision_fields, decision_payload
from clearance.audit.verify.verify import verify_log
from clearance.errors import AuditWriteError
from clearance.formats.note import VerifierKey
from clearance.store.audit_sqlite import SQLiteAuditStorage

KEY = AuditKey(DEPLOYMENT, bytes(32))


def test_full_database_refuses_and_keeps_acknowledged_entries(tmp_path: Path) -> None:
    storage = SQLiteAuditStorage(tmp_path / "clearance.db", max_pages=40)
    log = AuditLog(storage, KEY, ORIGIN, StepClock(datetime(2026, 3, 1, tzinfo=UTC)))
    acknowledged: list[int] = []

    def fill() -> None:
        for i in range(10_000):
            acknowledged.append(
                log.append("decision", decision_fields(i), decision_payload(i)).index
            )

    with pytest.raises(AuditWriteError, match="could not be committed"):
        fill()
    assert len(acknowledged) > 10
    log.close()
    storage.close()
    stored = SQLiteAuditStorage(tmp_path / "clearance.db", readonly=True)
    assert stored.size(ORIGIN) == acknowledged[-1] + 1
    assert [e[0] for e in stored.entries(ORIGIN, 1, acknowledged[-1] + 1)] == acknowledged
    report = verify_log(tmp_path, [VerifierKey.parse(KEY.vkey)])
    assert report.exit_code in (0, 3)  # intact; the tail may not be checkpointed


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_database_refuses(tmp_path: Path) -> None:
    storage = SQLiteAuditStorage(tmp_path / "clearance.db")
    log = AuditLog(storage, KEY, ORIGIN, StepClock(datetime(2026, 3, 1, tzinfo=UTC)))
    done = log.append("decision", decision_fields(0), None)
    log.close()
    storage.close()
    for p in tmp_path.iterdir():
        p.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(AuditWriteError):
            AuditLog(
                SQLiteAuditStorage(tmp_path / "clearance.db"),
                KEY,
                ORIGIN,
                StepClock(datetime(2026, 3, 1, tzinfo=UTC)),
            )
    finally:
        tmp_path.chmod(0o755)
    assert (
        SQLiteAuditStorage(tmp_path / "clearance.db", readonly=True).size(ORIGIN) == done.index + 1
    )


def test_read_only_connection_refuses_appends(tmp_path: Path) -> None:
    storage = SQLiteAuditStorage(tmp_path / "clearance.db")
    log = AuditLog(storage, KEY, ORIGIN, StepClock(datetime(2026, 3, 1, tzinfo=UTC)))
    done = log.append("decision", decision_fields(0), None)
    log.close()
    storage.close()
    with pytest.raises(AuditWriteError):
        AuditLog(
            SQLiteAuditStorage(tmp_path / "clearance.db", readonly=True),
            KEY,
            ORIGIN,
            StepClock(datetime(2026, 3, 1, tzinfo=UTC)),
        )
    assert (
        SQLiteAuditStorage(tmp_path / "clearance.db", readonly=True).size(ORIGIN) == done.index + 1
    )
