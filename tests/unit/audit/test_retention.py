"""Retention classes, legal holds and pruning that the verifier tells apart from tampering."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from clearance.audit.log import AuditLog
from clearance.audit.retention import (
    HIGH_RISK_DAYS,
    Pruner,
    RetentionClass,
    RetentionPolicy,
    default_retention,
)
from clearance.audit.sign import AuditKey
from clearance.audit.testing import DEPLOYMENT, ORIGIN, StepClock, decision_fields, decision_payload
from clearance.audit.verify.verify import verify_log
from clearance.formats.note import VerifierKey
from clearance.store.audit_sqlite import SQLiteAuditStorage

KEY = AuditKey(DEPLOYMENT, bytes(32))


def test_default_classes() -> None:
    assert default_retention("decision", {"tier": "read-only"}) == ("default", 180)
    assert default_retention("decision", {"tier": "destructive"}) == ("high-risk", HIGH_RISK_DAYS)
    assert default_retention("approval.granted", {}) == ("high-risk", HIGH_RISK_DAYS)
    assert default_retention("decision", {"outcome": "APPROVAL"})[0] == "high-risk"


def test_policy_longest_matching_class_wins() -> None:
    policy = RetentionPolicy(
        [RetentionClass("pay", 400), RetentionClass("short", 30)],
        {"pay": lambda k, f: f.get("tool", "").startswith("pay"), "short": lambda k, f: True},
    )
    assert policy("decision", {"tool": "payments.refund"}) == ("pay", 400)
    assert policy("decision", {"tool": "read"}) == ("default", 180)


def test_prune_honours_holds_logs_and_still_verifies(tmp_path: Path) -> None:
    storage = SQLiteAuditStorage(tmp_path / "clearance.db")
    log = AuditLog(
        storage,
        KEY,
        ORIGIN,
        StepClock(datetime(2026, 3, 1, tzinfo=UTC)),
        retention_for=default_retention,
    )
    for i in range(6):
        fields = decision_fields(i) | ({"tier": "destructive"} if i == 5 else {})
        log.append("decision", fields, decision_payload(i))
    pruner = Pruner(log, storage)
    pruner.place_hold("case-17", 2, 3, created_at="2026-03-02T00:00:00.000000Z")
    report = pruner.prune(date(2026, 12, 1))
    assert (report.pruned, report.held) == (3, 2)
    assert storage.expired_payloads(ORIGIN, "2026-12-01") == [2, 3]
    assert pruner.release_hold("case-17")
    assert not pruner.release_hold("case-17")
    log.checkpoint_now()
    log.close()
    result = verify_log(tmp_path, [VerifierKey.parse(KEY.vkey)])
    assert result.exit_code == 0, [f.to_line() for f in result.findings]
    assert storage.entries(ORIGIN, 6, 7)[0][4] is not None  # the high-risk payload stays


def test_nothing_to_prune_appends_nothing(tmp_path: Path) -> None:
    storage = SQLiteAuditStorage(tmp_path / "clearance.db")
    log = AuditLog(storage, KEY, ORIGIN, StepClock(datetime(2026, 3, 1, tzinfo=UTC)))
    log.append("decision", decision_fields(0), decision_payload(0))
    report = Pruner(log, storage).prune(date(2026, 3, 2))
    assert report.entry_index is None
    assert storage.size(ORIGIN) == 2
    log.close()
