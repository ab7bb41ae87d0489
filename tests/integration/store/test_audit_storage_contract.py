"""The audit storage contract (``clearance.audit.storage``), tested on SQLite and PostgreSQL.

The appender (``AuditLog``) runs unchanged on either backend; what it relies on is tested here once
for both: atomic batches, the head compare-and-swap on ``(size, epoch)``, reads, pruning, holds, and
"one shard, one writer". PostgreSQL's advisory lock and reconnection are at the end.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from clearance.audit.log import AuditLog
from clearance.audit.sign import AuditKey
from clearance.errors import AuditWriteError, ConflictError
from clearance.formats.merkle import leaf_hash, root_of
from clearance.store.audit_sqlite import SQLiteAuditStorage

DEPLOYMENT = "clearance.example/audit"
KEY = AuditKey(DEPLOYMENT, bytes(32))
T = "2026-03-01T12:00:00.000000Z"


def now() -> datetime:
    return datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def new_origin() -> str:
    # advisory locks are database-wide: every test uses its own replica id
    return f"{DEPLOYMENT}/gate-{uuid.uuid4().hex[:10]}/2026"


@pytest.fixture
def pg_open_storage(pg_schema_url: str) -> Iterator[Callable[[], Any]]:
    """Open PostgreSQL audit storages on one fresh schema, each with its own store (process)."""
    from clearance.store.audit_postgres import PostgresAuditStorage
    from clearance.store.postgres import PostgresStore

    opened: list[tuple[PostgresStore, PostgresAuditStorage]] = []

    def make() -> Any:
        store = PostgresStore(pg_schema_url, application_name=f"audit-test-{uuid.uuid4().hex[:8]}")
        store.migrate()
        storage = PostgresAuditStorage(store)
        opened.append((store, storage))
        return storage

    yield make
    for store, storage in opened:
        storage.close()
        store.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def open_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Open handles on one audit database (each handle is what one process would hold)."""
    if request.param == "postgres":
        yield request.getfixturevalue("pg_open_storage")
        return
    opened: list[SQLiteAuditStorage] = []

    def make() -> Any:
        storage = SQLiteAuditStorage(tmp_path / "audit.db")
        opened.append(storage)
        return storage

    yield make
    for storage in opened:
        storage.close()


@pytest.fixture
def storage(open_storage: Callable[[], Any]) -> Any:
    return open_storage()


def open_shard(storage: Any, origin: str) -> tuple[int, bytes | None, bytes, int]:
    replica, period = origin.split("/")[-2:]
    return storage.open_shard(origin, replica=replica, period=period, vkey=KEY.vkey, created_at=T)


def entry(i: int) -> tuple[int, bytes, bytes, str | None]:
    header = json.dumps({"index": i}).encode()
    return (i, leaf_hash(header), header, "2026-06-01")


def payload(i: int) -> tuple[int, bytes, bytes, str]:
    return (i, bytes([i % 256]) * 32, json.dumps({"args": {"i": i}}).encode(), "none")


def commit(
    storage: Any, origin: str, old: int, new: int, epoch: int, *, checkpoint: Any = None
) -> None:
    entries = [entry(i) for i in range(old, new)]
    storage.commit_batch(
        origin,
        old_size=old,
        epoch=epoch,
        head=(new, entries[-1][1] if entries else None, b"compact-%d" % new, epoch),
        entries=entries,
        payloads=[payload(i) for i in range(old, new) if i % 2 == 0],
        checkpoint=checkpoint,
    )


# shards and the head ----------------------------------------------------------------------------
def test_open_shard_creates_it_and_bumps_the_epoch(storage: Any) -> None:
    origin = new_origin()
    assert open_shard(storage, origin) == (0, None, b"", 1)
    commit(storage, origin, 0, 3, 1)
    size, head, compact, epoch = open_shard(storage, origin)  # reopening fences epoch 1
    assert (size, head, compact, epoch) == (3, entry(2)[1], b"compact-3", 2)
    assert origin in storage.origins()


def test_commit_batch_stores_entries_payloads_and_checkpoint(storage: Any) -> None:
    origin = new_origin()
    _, _, _, epoch = open_shard(storage, origin)
    commit(storage, origin, 0, 4, epoch, checkpoint=(4, b"r" * 32, b"note-4", T))
    assert storage.leaf_hashes(origin, 0, 4) == [entry(i)[1] for i in range(4)]
    assert storage.leaf_hashes(origin, 1, 3) == [entry(1)[1], entry(2)[1]]
    rows = storage.entries(origin, 0, 4)
    assert [r[0] for r in rows] == [0, 1, 2, 3]
    assert rows[0] == (0, entry(0)[1], entry(0)[2], payload(0)[1], payload(0)[2])
    assert rows[1] == (1, entry(1)[1], entry(1)[2], None, None)  # no payload for odd entries
    assert storage.latest_checkpoint(origin) == (4, b"r" * 32, b"note-4", T)
    commit(storage, origin, 4, 6, epoch, checkpoint=(6, b"s" * 32, b"note-6", T))
    assert storage.latest_checkpoint(origin)[0] == 6


@pytest.mark.parametrize("wrong", ["size", "epoch"])
def test_the_head_is_a_compare_and_swap(storage: Any, wrong: str) -> None:
    origin = new_origin()
    _, _, _, epoch = open_shard(storage, origin)
    commit(storage, origin, 0, 2, epoch)
    old, new, stale = (1, 3, epoch) if wrong == "size" else (2, 4, epoch + 1)
    with pytest.raises(ConflictError):
        commit(storage, origin, old, new, stale)
    assert storage.leaf_hashes(origin, 0, 10) == [entry(0)[1], entry(1)[1]]


def test_a_failed_batch_writes_nothing(storage: Any) -> None:
    origin = new_origin()
    _, _, _, epoch = open_shard(storage, origin)
    commit(storage, origin, 0, 2, epoch, checkpoint=(2, b"r" * 32, b"n", T))
    with pytest.raises(ConflictError):  # the checkpoint for size 2 exists: the batch must roll back
        storage.commit_batch(
            origin,
            old_size=2,
            epoch=epoch,
            head=(3, entry(2)[1], b"c", epoch),
            entries=[entry(2)],
            payloads=[payload(2)],
            checkpoint=(2, b"x" * 32, b"dup", T),
        )
    assert storage.leaf_hashes(origin, 0, 10) == [entry(0)[1], entry(1)[1]]
    commit(storage, origin, 2, 3, epoch)  # the head did not move: size 2 is still the base


def test_shards_are_independent(storage: Any) -> None:
    a, b = new_origin(), new_origin()
    _, _, _, ea = open_shard(storage, a)
    _, _, _, eb = open_shard(storage, b)
    commit(storage, a, 0, 3, ea)
    commit(storage, b, 0, 1, eb)
    assert len(storage.leaf_hashes(a, 0, 10)) == 3
    assert len(storage.leaf_hashes(b, 0, 10)) == 1
    assert {a, b} <= set(storage.origins())
    assert storage.origins() == sorted(storage.origins())


# pruning and holds ------------------------------------------------------------------------------
def test_expired_payloads_are_listed_and_deleted(storage: Any) -> None:
    origin = new_origin()
    _, _, _, epoch = open_shard(storage, origin)
    commit(storage, origin, 0, 6, epoch)
    assert storage.expired_payloads(origin, "2026-06-01") == []
    assert storage.expired_payloads(origin, "2026-06-02") == [0, 2, 4]
    assert storage.delete_payloads(origin, [0, 4]) == 2
    assert storage.expired_payloads(origin, "2026-06-02") == [2]
    rows = storage.entries(origin, 0, 1)
    assert rows[0][3:] == (None, None)  # hash and header stay, payload gone
    assert storage.leaf_hashes(origin, 0, 6) == [entry(i)[1] for i in range(6)]


def test_holds_are_added_listed_and_released(storage: Any) -> None:
    origin = new_origin()
    open_shard(storage, origin)
    storage.add_hold(origin, ("case-2", 10, 20, T))
    storage.add_hold(origin, ("case-1", 0, 5, T))
    with pytest.raises(ConflictError):
        storage.add_hold(origin, ("case-1", 1, 2, T))
    assert storage.holds(origin) == [("case-1", 0, 5, T), ("case-2", 10, 20, T)]
    assert storage.remove_hold(origin, "case-1") is True
    assert storage.remove_hold(origin, "case-1") is False
    assert storage.holds(origin) == [("case-2", 10, 20, T)]


# the appender on this storage -------------------------------------------------------------------
def verify_chain(storage: Any, origin: str, size: int) -> None:
    rows = storage.entries(origin, 0, size)
    assert [r[0] for r in rows] == list(range(size))
    prev = None
    for idx, lh, header, _, _ in rows:
        assert leaf_hash(header) == lh
        fields = json.loads(header)
        assert fields["index"] == idx
        assert fields["log"] == origin
        assert fields["prev"] == (None if prev is None else "sha256:" + prev.hex())
        prev = lh
    checkpoint = storage.latest_checkpoint(origin)
    assert checkpoint is not None
    assert checkpoint[0] == size
    assert checkpoint[1] == root_of([r[1] for r in rows])


def test_the_appender_commits_concurrent_appends_in_one_chain(storage: Any) -> None:
    origin = new_origin()
    log = AuditLog(storage, KEY, origin, now)
    results: list[Any] = []

    def work(i: int) -> None:
        for j in range(25):
            results.append(log.append("decision", {"outcome": "PERMIT"}, {"i": i, "j": j}))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.checkpoint_now()
    assert log.size == 1 + 8 * 25  # genesis + every append
    assert sorted(r.index for r in results) == list(range(1, log.size))
    verify_chain(storage, origin, log.size)
    log.close()


def test_a_restarted_appender_resumes_the_shard_exactly(open_storage: Callable[[], Any]) -> None:
    origin = new_origin()
    first = open_storage()
    log = AuditLog(first, KEY, origin, now)
    for i in range(5):
        log.append("decision", {"outcome": "DENY"}, {"i": i})
    log.close()
    first.close()  # the process ends
    second = open_storage()
    resumed = AuditLog(second, KEY, origin, now)
    assert resumed.size == 6
    resumed.append("decision", {"outcome": "PERMIT"}, None)
    resumed.checkpoint_now()
    verify_chain(second, origin, 7)
    resumed.close()


def test_two_writers_on_one_shard_never_both_append(open_storage: Callable[[], Any]) -> None:
    origin = new_origin()
    a, b = open_storage(), open_storage()
    log_a = AuditLog(a, KEY, origin, now)
    log_a.append("decision", {"outcome": "PERMIT"}, None)
    try:
        log_b = AuditLog(b, KEY, origin, now)
    except AuditWriteError:
        log_b = None  # PostgreSQL: the advisory lock refuses the second process at start
    if log_b is not None:
        # SQLite: the second writer's epoch fences the first one
        with pytest.raises(AuditWriteError):
            log_a.append("decision", {"outcome": "PERMIT"}, None)
        log_b.append("decision", {"outcome": "DENY"}, None)
        log_b.checkpoint_now()
        verify_chain(b, origin, 3)
        log_b.close()
    else:
        log_a.append("decision", {"outcome": "DENY"}, None)
        log_a.checkpoint_now()
        verify_chain(a, origin, 3)
    log_a.close()


# PostgreSQL: the advisory lock and a lost connection --------------------------------------------
def _kill(pg_admin: Any, origin: str) -> None:
    """Terminate the backend that holds ``origin``'s advisory lock."""
    rows = pg_admin.execute(
        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l WHERE l.locktype = 'advisory' "
        "AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = "
        "hashtextextended(%s, 0)",
        (origin,),
    )
    assert rows == [(True,)]


@pytest.mark.postgres
def test_postgres_lock_is_retaken_after_a_lost_connection(
    pg_open_storage: Callable[[], Any], pg_admin: Any
) -> None:
    open_storage = pg_open_storage
    storage = open_storage()
    origin = new_origin()
    log = AuditLog(storage, KEY, origin, now)
    log.append("decision", {"outcome": "PERMIT"}, None)
    _kill(pg_admin, origin)
    log.append("decision", {"outcome": "PERMIT"}, None)  # re-locks on a new connection
    log.checkpoint_now()
    verify_chain(storage, origin, 3)
    other = open_storage()
    with pytest.raises(AuditWriteError, match="advisory lock"):
        AuditLog(other, KEY, origin, now)
    log.close()


@pytest.mark.postgres
def test_postgres_writer_is_fenced_when_another_took_the_shard_meanwhile(
    pg_open_storage: Callable[[], Any], pg_admin: Any
) -> None:
    first, second = pg_open_storage(), pg_open_storage()
    origin = new_origin()
    log = AuditLog(first, KEY, origin, now)
    log.append("decision", {"outcome": "PERMIT"}, None)
    _kill(pg_admin, origin)
    taker = AuditLog(second, KEY, origin, now)  # the lock was free: a second process started
    taker.append("decision", {"outcome": "DENY"}, None)
    with pytest.raises(AuditWriteError, match="fenced"):
        log.append("decision", {"outcome": "PERMIT"}, None)
    taker.checkpoint_now()
    verify_chain(second, origin, 3)
    taker.close()
    log.close()


@pytest.mark.postgres
def test_postgres_batch_whose_answer_was_lost_is_not_written_twice(
    pg_open_storage: Callable[[], Any], pg_admin: Any
) -> None:
    """The connection dies after the batch committed: the retry finds it in the head and stops.

    Sending the same batch again is what an appender does when the answer to its commit was lost
    on the way back; it must succeed without a second copy of the entries and without a fence.
    """
    storage = pg_open_storage()
    origin = new_origin()
    _, _, _, epoch = open_shard(storage, origin)
    commit(storage, origin, 0, 2, epoch)
    _kill(pg_admin, origin)
    commit(storage, origin, 0, 2, epoch)  # the same batch again, on a dead connection
    assert storage.leaf_hashes(origin, 0, 10) == [entry(0)[1], entry(1)[1]]
    assert storage.size(origin) == 2
    commit(storage, origin, 2, 3, epoch)
    _kill(pg_admin, origin)
    with pytest.raises(ConflictError, match="fenced"):  # a stale batch is still refused
        commit(storage, origin, 1, 2, epoch)
    assert storage.size(origin) == 3
