"""Deterministic audit stores for tests, demos and documentation examples.

Not for production: the clock steps one millisecond per reading and the audit key comes from a
caller-chosen seed. The adversarial tests build a store here and then attack it with plain SQL,
the way an attacker with write access to the database would.

Example::

    >>> from clearance.audit.testing import sample_store
    >>> store = sample_store(tmp_path, entries=5)            # doctest: +SKIP
    >>> store.vkey                                            # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clearance.audit.log import AuditLog
from clearance.audit.sign import AuditKey
from clearance.store.audit_sqlite import SQLiteAuditStorage

DEPLOYMENT = "audit.test.example/clearance"
ORIGIN = DEPLOYMENT + "/node/2026"


class StepClock:
    """A wall clock that advances by ``step`` on every reading (deterministic, thread-safe)."""

    def __init__(self, start: datetime, step: timedelta = timedelta(milliseconds=1)) -> None:
        self._now = start
        self._step = step
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._now += self._step
            return self._now


@dataclass
class SampleStore:
    """A closed, checkpointed sample store and what is needed to verify or extend it."""

    db: Path
    key: AuditKey
    origin: str

    @property
    def vkey(self) -> str:
        """The deployment vkey (the auditor's trust anchor)."""
        return self.key.vkey

    def open_log(
        self, clock: StepClock | None = None, **kwargs: Any
    ) -> tuple[AuditLog, SQLiteAuditStorage]:
        """Reopen the shard for appending (a new epoch); close both when done."""
        clock = clock or StepClock(datetime(2026, 6, 1, tzinfo=UTC))
        storage = SQLiteAuditStorage(self.db)
        return AuditLog(storage, self.key, self.origin, clock, **kwargs), storage


def decision_fields(i: int) -> dict[str, Any]:
    """Header fields of a sample decision."""
    return {
        "decision_id": f"01JSAMPLE{i:08d}QRSTVWXYZAB",
        "request_digest": "sha256:" + hashlib.sha256(b"request %d" % i).hexdigest(),
        "policy": "sha256:" + hashlib.sha256(b"policy").hexdigest(),
        "tool": "payments.refund",
        "action": "call",
        "outcome": "PERMIT",
        "rule": "refund-small",
        "tier": "write-limited",
        "shadow": False,
    }


def decision_payload(i: int) -> dict[str, Any]:
    """A sample payload carrying the standard audit field set."""
    return {
        "agent_id": "agent-7",
        "session_id": f"ses_sample{i}",
        "tool": "payments.refund",
        "action": "call",
        "args": {"amount": 10 + i, "to_account": "acc-1"},
        "target": "acc-1",
        "reasoning": "customer asked for a refund",
        "context_hash": None,
        "reason": "small refunds are permitted",
    }


def sample_store(
    directory: Path, *, entries: int = 10, seed: bytes = b"sample audit key"
) -> SampleStore:
    """Create ``directory/clearance.db`` with a genesis entry, ``entries`` decisions and a checkpoint."""
    db = Path(directory) / "clearance.db"
    key = AuditKey(DEPLOYMENT, hashlib.sha256(seed).digest())
    storage = SQLiteAuditStorage(db)
    log = AuditLog(storage, key, ORIGIN, StepClock(datetime(2026, 3, 1, tzinfo=UTC)))
    for i in range(entries):
        log.append("decision", decision_fields(i), decision_payload(i))
    log.checkpoint_now()
    log.close()
    storage.close()
    return SampleStore(db, key, ORIGIN)
