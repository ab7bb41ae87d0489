"""Cross-shard anchors (AUDIT.md 3.11): when an appender anchors its peers, and what it writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clearance.audit.log import ANCHOR_INTERVAL, AuditLog
from clearance.audit.sign import AuditKey
from clearance.audit.testing import DEPLOYMENT, decision_fields, decision_payload
from clearance.audit.verify.verify import verify_log
from clearance.formats.note import VerifierKey
from clearance.store.audit_sqlite import SQLiteAuditStorage

KEY = AuditKey(DEPLOYMENT, bytes(range(32)))
A = f"{DEPLOYMENT}/gate-a/2026"
B = f"{DEPLOYMENT}/gate-b/2026"


class ManualClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


Shards = tuple[AuditLog, AuditLog, ManualClock, SQLiteAuditStorage]


@pytest.fixture
def shards(tmp_path: Path) -> Iterator[Shards]:
    """Two replicas' shards in one database (as on PostgreSQL), on a clock the test moves."""
    clock = ManualClock()
    storage = SQLiteAuditStorage(tmp_path / "audit.db")
    a = AuditLog(storage, KEY, A, clock)
    b = AuditLog(storage, KEY, B, clock)
    yield a, b, clock, storage
    a.close()
    b.close()
    storage.close()


def headers(storage: SQLiteAuditStorage, origin: str) -> list[dict[str, Any]]:
    rows = storage.entries(origin, 0, storage.size(origin))
    return [json.loads(row[2] or b"null") for row in rows]


def test_a_busy_shard_anchors_the_latest_checkpoint_of_every_peer(shards: Shards) -> None:
    a, b, clock, storage = shards
    for i in range(3):
        b.append("decision", decision_fields(i), decision_payload(i))
    b_note = b.checkpoint_now()
    assert b_note is not None
    a.append("decision", decision_fields(10), decision_payload(10))
    assert [h["kind"] for h in headers(storage, A)] == ["genesis", "decision"]  # not due yet

    clock.now += ANCHOR_INTERVAL
    entry = a.append("decision", decision_fields(11), decision_payload(11))
    kinds = [h["kind"] for h in headers(storage, A)]
    assert kinds == ["genesis", "decision", "decision", "anchor"]
    anchor = headers(storage, A)[-1]
    assert anchor["index"] == entry.index + 1  # the anchor goes in the same batch, after it
    [claim] = anchor["anchors"]
    assert claim["log"] == B
    assert claim["size"] == 4  # genesis + 3 decisions, as B's checkpoint signs
    assert b_note.decode().splitlines()[1] == "4"


def test_an_idle_shard_or_one_without_peers_anchors_nothing(tmp_path: Path) -> None:
    clock = ManualClock()
    storage = SQLiteAuditStorage(tmp_path / "audit.db")
    alone = AuditLog(storage, KEY, A, clock)
    alone.append("decision", decision_fields(0), decision_payload(0))
    clock.now += ANCHOR_INTERVAL * 3
    alone.append("decision", decision_fields(1), decision_payload(1))
    alone.checkpoint_now()
    assert [h["kind"] for h in headers(storage, A)] == ["genesis", "decision", "decision"]
    alone.close()
    storage.close()


def test_anchors_stop_once_both_shards_are_idle(shards: Shards) -> None:
    a, b, clock, storage = shards
    b.append("decision", decision_fields(0), decision_payload(0))
    b.checkpoint_now()
    a.append("decision", decision_fields(1), decision_payload(1))
    a.checkpoint_now()
    for _ in range(4):  # each appender wakes up and decides on its own whether to anchor
        clock.now += ANCHOR_INTERVAL
        a.checkpoint_now()
        b.checkpoint_now()
    kinds = [h["kind"] for h in headers(storage, A)] + [h["kind"] for h in headers(storage, B)]
    # one anchor each for the activity they had; the anchors themselves do not count as activity
    assert kinds.count("anchor") == 2


def test_a_store_with_anchors_verifies(shards: Shards, tmp_path: Path) -> None:
    a, b, clock, _ = shards
    for step in range(3):
        for i in range(5):
            a.append("decision", decision_fields(step * 10 + i), decision_payload(i))
            b.append("decision", decision_fields(step * 10 + i), decision_payload(i))
        a.checkpoint_now()
        b.checkpoint_now()
        clock.now += ANCHOR_INTERVAL + timedelta(seconds=1)
    a.append("decision", decision_fields(99), decision_payload(99))
    a.checkpoint_now()
    b.checkpoint_now()
    report = verify_log(tmp_path / "audit.db", [VerifierKey.parse(KEY.vkey)])
    assert report.exit_code == 0, [f.to_line() for f in report.findings]
    checked = [f for f in report.findings if "anchors of this shard" in f.message]
    assert {f.source for f in checked} == {A, B}
