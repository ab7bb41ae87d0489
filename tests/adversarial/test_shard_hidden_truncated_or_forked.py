"""Attack: make one replica's audit shard disappear, shrink or fork, even with the signing key.

Each shard's own chain and checkpoints cannot catch an insider who deletes a whole shard (registry
row included) or rewrites it and re-signs the checkpoints with the deployment key. The other
shards' ``anchor`` entries can: they committed, in their own hash chains, to the victim's size and
root. Every attack below leaves the victim shard self-consistent and must still be reported as
tampering by ``clearance audit verify``.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clearance.audit.log import ANCHOR_INTERVAL, AuditLog
from clearance.audit.sign import AuditKey
from clearance.audit.testing import DEPLOYMENT, decision_fields, decision_payload
from clearance.audit.verify.errors import ExitCode
from clearance.audit.verify.verify import verify_log
from clearance.formats.note import VerifierKey
from clearance.store.audit_sqlite import SQLiteAuditStorage

KEY = AuditKey(DEPLOYMENT, bytes(range(32)))
TRUSTED = [VerifierKey.parse(KEY.vkey)]
A = f"{DEPLOYMENT}/gate-a/2026"
B = f"{DEPLOYMENT}/gate-b/2026"
TABLES = ("audit_entry", "audit_payload", "audit_checkpoint", "audit_shard")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def build(db: Path, decisions_b: int) -> None:
    """Shards A and B; A anchors B once B has ``decisions_b`` decisions checkpointed."""
    clock = Clock()
    storage = SQLiteAuditStorage(db)
    a = AuditLog(storage, KEY, A, clock)
    b = AuditLog(storage, KEY, B, clock)
    for i in range(decisions_b):
        b.append("decision", decision_fields(i), decision_payload(i))
    b.checkpoint_now()
    a.append("decision", decision_fields(100), decision_payload(100))
    clock.now += ANCHOR_INTERVAL
    a.append("decision", decision_fields(101), decision_payload(101))
    a.checkpoint_now()
    a.close()
    b.close()
    storage.close()


def replace_shard(db: Path, origin: str, decisions: list[int], tmp: Path) -> None:
    """Rewrite ``origin`` from scratch with the real key: a self-consistent, re-signed shard."""
    forged_db = tmp / "forged.db"
    storage = SQLiteAuditStorage(forged_db)
    log = AuditLog(storage, KEY, origin, Clock())
    for i in decisions:
        log.append("decision", decision_fields(i), decision_payload(i))
    log.checkpoint_now()
    log.close()
    storage.close()
    with sqlite3.connect(db) as conn:
        conn.execute("ATTACH DATABASE ? AS forged", (str(forged_db),))
        for table in TABLES:
            conn.execute(f"DELETE FROM {table} WHERE origin = ?", (origin,))
            conn.execute(f"INSERT INTO {table} SELECT * FROM forged.{table}")


def delete_shard(db: Path, origin: str) -> None:
    with sqlite3.connect(db) as conn:
        for table in TABLES:
            conn.execute(f"DELETE FROM {table} WHERE origin = ?", (origin,))


def tampering(db: Path) -> list[str]:
    report = verify_log(db, TRUSTED)
    assert report.exit_code == ExitCode.TAMPERED, [f.to_line() for f in report.findings]
    return [f.to_line() for f in report.findings if f.severity.name == "TAMPERED"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    build(path, decisions_b=5)
    report = verify_log(path, TRUSTED)
    assert report.exit_code == ExitCode.VERIFIED, [f.to_line() for f in report.findings]
    return path


def test_a_deleted_shard_is_revealed_by_its_peers_anchor(db: Path) -> None:
    delete_shard(db, B)
    [line] = tampering(db)
    assert B in line
    assert "not in the store" in line


def test_a_shard_rewritten_shorter_and_resigned_is_caught(db: Path, tmp_path: Path) -> None:
    replace_shard(db, B, [0, 1, 2], tmp_path)  # drop the last two decisions
    [line] = tampering(db)
    assert "holds only 4 entries" in line
    assert "truncated or rolled back" in line


def test_a_shard_forked_and_resigned_is_caught(db: Path, tmp_path: Path) -> None:
    replace_shard(db, B, [0, 1, 2, 3, 77], tmp_path)  # same size, one decision swapped
    [line] = tampering(db)
    assert "rewritten or forked" in line


def test_a_forged_anchor_claim_is_caught(db: Path) -> None:
    """Rewriting the anchor itself breaks A's chain: the anchor is evidence, not a hint."""
    with sqlite3.connect(db) as conn:
        idx, header = conn.execute(
            "SELECT idx, header FROM audit_entry WHERE origin = ? AND CAST(header AS TEXT) LIKE ?",
            (A, '%"kind":"anchor"%'),
        ).fetchone()
        forged = header.replace(b'"size":6', b'"size":5')
        assert forged != header
        conn.execute(
            "UPDATE audit_entry SET header = ? WHERE origin = ? AND idx = ?", (forged, A, idx)
        )
    lines = tampering(db)
    assert any("header or its hash was altered" in line for line in lines)


def test_a_running_replica_notices_a_peer_fork_at_its_next_anchor(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The gate side: before anchoring, a replica checks each peer extends what it saw before."""
    db = tmp_path / "audit.db"
    clock = Clock()
    storage = SQLiteAuditStorage(db)
    a = AuditLog(storage, KEY, A, clock)
    b = AuditLog(storage, KEY, B, clock)
    for i in range(5):
        b.append("decision", decision_fields(i), decision_payload(i))
    b.checkpoint_now()
    for n in range(2):  # two anchors over honest growth of B: no alarm
        clock.now += ANCHOR_INTERVAL
        a.append("decision", decision_fields(100 + n), decision_payload(n))
        b.append("decision", decision_fields(200 + n), decision_payload(n))
        b.checkpoint_now()
    assert not [r for r in caplog.records if r.levelname == "CRITICAL"]
    b.close()
    replace_shard(db, B, [0, 1, 2, 3, 77, 200, 201, 202], tmp_path)  # re-signed, longer, forked
    clock.now += ANCHOR_INTERVAL
    a.append("decision", decision_fields(102), decision_payload(2))
    a.close()
    storage.close()
    [alarm] = [r for r in caplog.records if r.levelname == "CRITICAL"]
    assert B in alarm.getMessage()
    assert "rewritten, forked or rolled back" in alarm.getMessage()
    # and the fork stays on record for the verifier, in A's chain
    assert any("rewritten or forked" in line for line in tampering(db))
