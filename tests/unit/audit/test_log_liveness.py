"""The appender never strands a caller: whatever fails inside a batch, every waiter wakes.

Callers of one batch are woken one after another, each by the one before; a leader that fails
part-way (here its clock raises) must still pass the chain on, or every caller queued behind it
waits forever - and a gate thread waiting on the audit log never answers.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clearance.audit.log import AuditLog
from clearance.audit.sign import AuditKey
from clearance.audit.testing import DEPLOYMENT, ORIGIN, decision_fields, decision_payload
from clearance.store.audit_sqlite import SQLiteAuditStorage

KEY = AuditKey(DEPLOYMENT, bytes(32))


class FlakyClock:
    """A clock that fails on every ``every``-th reading (a broken time source mid-run)."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.calls = 0
        self.lock = threading.Lock()
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        with self.lock:
            self.calls += 1
            if self.calls % self.every == 0:
                raise RuntimeError("the clock is unreadable")
            self.now += timedelta(milliseconds=1)
            return self.now


# the idle timer reads the clock too: it must survive a failed reading, not die silently
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("every", [3, 7])
def test_every_caller_returns_when_a_leader_fails(tmp_path: Path, every: int) -> None:
    storage = SQLiteAuditStorage(tmp_path / "audit.db")
    log = AuditLog(storage, KEY, ORIGIN, FlakyClock(every))
    outcomes: list[str] = []
    record = threading.Lock()

    def work(t: int) -> None:
        for i in range(25):
            try:
                log.append("decision", decision_fields(t * 100 + i), decision_payload(i))
            except Exception as exc:
                with record:
                    outcomes.append(type(exc).__name__)
            else:
                with record:
                    outcomes.append("ok")

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    stranded = [t.name for t in threads if t.is_alive()]
    assert stranded == [], f"callers never woke: {stranded}"
    assert len(outcomes) == 8 * 25
    assert "ok" in outcomes
    assert any(o != "ok" for o in outcomes)
    log.close()
