"""The appender: dense indexes, group commit under concurrency, checkpoints, proofs, fencing."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from clearance.audit.log import CHECKPOINT_ENTRIES, AuditLog
from clearance.audit.redact import Redactor
from clearance.audit.sign import AuditKey
from clearance.audit.testing import (
    DEPLOYMENT,
    ORIGIN,
    StepClock,
    decision_fields,
    decision_payload,
    sample_store,
)
from clearance.audit.verify.verify import verify_log
from clearance.errors import AuditWriteError
from clearance.formats.canonical import canonical_bytes
from clearance.formats.checkpoint import verify_checkpoint
from clearance.formats.entry import EntryError
from clearance.formats.note import VerifierKey
from clearance.formats.proof import (
    ConsistencyProof,
    verify_consistency_proof,
    verify_inclusion_proof,
)
from clearance.store.audit_sqlite import SQLiteAuditStorage

KEY = AuditKey(DEPLOYMENT, bytes(32))


class ManualClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _log(
    tmp_path: Path, clock: Callable[[], datetime] | None = None, **kw: Any
) -> tuple[AuditLog, SQLiteAuditStorage]:
    storage = SQLiteAuditStorage(tmp_path / "clearance.db")
    return AuditLog(
        storage, KEY, ORIGIN, clock or StepClock(datetime(2026, 3, 1, tzinfo=UTC)), **kw
    ), storage


def test_genesis_then_dense_indexes(tmp_path: Path) -> None:
    log, storage = _log(tmp_path)
    first = log.append("decision", decision_fields(0), decision_payload(0))
    second = log.append("outcome", {"decision_id": "d"}, {"success": True})
    assert (first.index, second.index) == (1, 2)
    assert first.log == ORIGIN
    assert first.leaf_hash.startswith("sha256:")
    genesis = orjson.loads(storage.entries(ORIGIN, 0, 1)[0][2] or b"")
    assert genesis["kind"] == "genesis"
    assert genesis["vkey"] == KEY.vkey
    log.close()


def test_concurrent_appends_share_commits_and_verify(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    got: list[int] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(40):
            e = log.append("decision", decision_fields(t * 100 + i), decision_payload(i))
            with lock:
                got.append(e.index)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.checkpoint_now()
    log.close()
    assert sorted(got) == list(range(1, 321))
    report = verify_log(tmp_path, [VerifierKey.parse(KEY.vkey)])
    assert report.exit_code == 0, [f.to_line() for f in report.findings]
    assert report.entries_checked == 321


def test_checkpoint_after_1024_entries_without_time_passing(tmp_path: Path) -> None:
    clock = ManualClock()
    log, storage = _log(tmp_path, clock)
    log.append_many([("decision", decision_fields(i), None) for i in range(CHECKPOINT_ENTRIES)])
    latest = storage.latest_checkpoint(ORIGIN)
    assert latest is not None
    assert latest[0] >= CHECKPOINT_ENTRIES
    log.close()


def test_checkpoint_after_one_second_when_grown(tmp_path: Path) -> None:
    clock = ManualClock()
    log, storage = _log(tmp_path, clock)
    log.append("decision", decision_fields(1), None)
    assert storage.latest_checkpoint(ORIGIN) is None
    clock.now += timedelta(seconds=1)
    log.append("decision", decision_fields(2), None)
    latest = storage.latest_checkpoint(ORIGIN)
    assert latest is not None
    assert latest[0] == 3
    signed = verify_checkpoint(latest[2], [VerifierKey.parse(KEY.vkey)], origin=ORIGIN)
    assert signed.checkpoint.size == 3
    log.close()


def test_inclusion_and_consistency_proofs_verify(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    entries = [log.append("decision", decision_fields(i), decision_payload(i)) for i in range(9)]
    old = log.checkpoint_now()
    assert old is not None
    old_cp = verify_checkpoint(old, [VerifierKey.parse(KEY.vkey)]).checkpoint
    for i in range(4):
        log.append("decision", decision_fields(20 + i), None)
    keys = [VerifierKey.parse(KEY.vkey)]
    proof = verify_inclusion_proof(log.inclusion_proof(entries[4].index).encode(), keys)
    assert proof.index == entries[4].index
    assert "sha256:" + proof.leaf_hash.hex() == entries[4].leaf_hash
    text = log.consistency_proof(old_cp.size).encode()
    assert ConsistencyProof.from_bytes(text).old_size == old_cp.size
    assert verify_consistency_proof(old_cp, text, keys).checkpoint.size == 14
    log.close()


def test_payload_is_masked_before_storage(tmp_path: Path) -> None:
    log, _ = _log(tmp_path, redactor=Redactor())
    secret = "AKIAABCDEFGHIJKLMNOP"
    log.append("decision", decision_fields(0), {"args": {"note": f"use {secret} please"}})
    log.close()
    raw = (tmp_path / "clearance.db").read_bytes() + (tmp_path / "clearance.db-wal").read_bytes()
    assert secret.encode() not in raw
    body = (
        sqlite3.connect(tmp_path / "clearance.db")
        .execute("SELECT body FROM audit_payload")
        .fetchone()[0]
    )
    assert b"redacted:aws-access-key" in body


def test_caller_errors_are_raised_in_the_caller(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    with pytest.raises(EntryError, match="set by the log"):
        log.append("decision", {"index": 3}, None)
    with pytest.raises(EntryError, match="kind"):
        log.append("Decision!", {}, None)
    assert log.append("decision", {}, None).index == 1
    log.close()
    with pytest.raises(AuditWriteError, match="closed"):
        log.append("decision", {}, None)


def test_second_writer_fences_the_first(tmp_path: Path) -> None:
    first, _ = _log(tmp_path)
    first.append("decision", {}, None)
    second, _ = _log(tmp_path)
    with pytest.raises(AuditWriteError, match="could not be committed"):
        first.append("decision", {}, None)
    assert second.append("decision", {}, None).index == 2
    first.close()
    second.close()


@pytest.mark.parametrize("text", ["".join(chr(i) for i in range(128)), "\u2028 é 😀 \x7f", ""])
def test_orjson_header_bytes_equal_rfc8785(text: str) -> None:
    value = {"b": text, "a": [1, -2, 2**53 - 1, True, None, {"z": text}]}
    assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == canonical_bytes(value)


def test_float_fields_still_canonical(tmp_path: Path) -> None:
    log, storage = _log(tmp_path)
    log.append("decision", {"score": 1e30}, {"amount": 0.1})
    log.checkpoint_now()
    log.close()
    assert b'"score":1e+30' in (storage.entries(ORIGIN, 1, 2)[0][2] or b"")
    assert (
        verify_log(tmp_path, [VerifierKey.parse(KEY.vkey)]).exit_code == 1
    )  # floats: not a v1 header


def test_sample_store_verifies(tmp_path: Path) -> None:
    store = sample_store(tmp_path, entries=5)
    assert verify_log(tmp_path, [VerifierKey.parse(store.vkey)]).exit_code == 0


def test_payload_salts_are_never_reused_across_concurrent_callers(tmp_path: Path) -> None:
    # Salts are drawn from the OS in blocks; each must still be handed out once, or two payload
    # commitments would share a key and pruned payloads become confirmable by guessing.
    log, storage = _log(tmp_path)

    def work(t: int) -> None:
        for i in range(60):
            log.append("decision", decision_fields(t * 100 + i), decision_payload(i))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    salts = [row[3] for row in storage.entries(ORIGIN, 0, storage.size(ORIGIN)) if row[3]]
    assert len(salts) == 360
    assert len(set(salts)) == 360
    assert all(len(s) == 32 for s in salts)


def test_a_batch_too_large_for_one_statement_commits_whole_and_verifies(tmp_path: Path) -> None:
    log, storage = _log(tmp_path)
    items = [("decision", decision_fields(i), decision_payload(i)) for i in range(3000)]
    appended = log.append_many(items)
    log.checkpoint_now()
    log.close()
    assert [e.index for e in appended] == list(range(1, 3001))
    assert storage.size(ORIGIN) == 3001
    report = verify_log(tmp_path, [VerifierKey.parse(KEY.vkey)])
    assert report.exit_code == 0, [f.to_line() for f in report.findings]
    assert report.entries_checked == 3001


def test_every_waiter_hears_its_batch_end_even_when_the_disk_fills(tmp_path: Path) -> None:
    """Callers of one batch are woken one after another; a failed batch must still reach all.

    The database is capped so that commits start failing part way (a full disk, for real): every
    caller must return, with its committed entry or with ``AuditWriteError``, and what was
    acknowledged must be in the log.
    """
    storage = SQLiteAuditStorage(tmp_path / "clearance.db", max_pages=60)
    log = AuditLog(storage, KEY, ORIGIN, StepClock(datetime(2026, 3, 1, tzinfo=UTC)))
    acknowledged: list[int] = []
    refused = 0
    lock = threading.Lock()

    def work(t: int) -> None:
        nonlocal refused
        for i in range(60):
            try:
                items = [
                    ("decision", decision_fields(t * 1000 + i * 2 + j), decision_payload(i))
                    for j in range(2)
                ]
                entries = log.append_many(items)
            except AuditWriteError:
                with lock:
                    refused += 1
                continue
            with lock:
                acknowledged.extend(e.index for e in entries)

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(12)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(timeout=max(deadline - time.monotonic(), 0))
    assert not any(t.is_alive() for t in threads), "a caller was never woken"
    assert refused, "the cap should refuse some batches"
    assert acknowledged, "the cap should let some batches in"
    stored = {i for i, *_ in storage.entries(ORIGIN, 0, 10_000)}
    assert set(acknowledged) <= stored
    assert len(acknowledged) == len(set(acknowledged))
    log.close()
    storage.close()
