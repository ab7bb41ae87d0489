"""PostgreSQL tables of the audit shards (AUDIT.md 3.11-3.12): one shard per replica, fenced.

::

    store = PostgresStore("postgresql://clearance@db.internal/clearance")
    storage = PostgresAuditStorage(store)
    log = AuditLog(storage, key, "audit.acme.example/clearance/gate-a/2026", clock.now)

Implements ``clearance.audit.storage.AuditStorage`` (the tables come from migration
``postgres/0010_audit.sql``). What it adds for several replicas on one database:

* **One process per shard.** ``open_shard`` takes a session-level advisory lock,
  ``pg_try_advisory_lock(hashtextextended(origin, 0))``, on a connection of its own and refuses
  (``ConflictError``) when another session holds it: two processes were started with one replica
  id. Every batch of that shard is then committed *on that connection*, so a write can only
  happen in the session holding the lock: if the connection is lost the lock goes with it, and
  the next commit first re-takes the lock (or is fenced).
* **Fencing.** ``open_shard`` bumps the shard's ``epoch``. ``commit_batch`` is one statement
  whose first part is ``UPDATE audit_shard SET size, head, compact WHERE origin AND size = old
  AND epoch = e``; zero rows means another writer moved the shard on: nothing is inserted and
  the batch fails with ``ConflictError`` (the appender answers SILENCE and must stop). Taking the
  row lock first also means a competing writer waits and is then fenced, instead of racing on
  entry indexes.
* **One round trip per batch.** Entries, payloads and the checkpoint go in as arrays
  (``unnest``) in the same statement as the head update, sent in autocommit: one statement is one
  transaction. The audit connection forces ``synchronous_commit = on`` whatever the server
  default is, so a batch is acknowledged only once its WAL is flushed.

Reads (proofs, export, pruning) use the store's pool and may run on any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from clearance.errors import ConflictError, StoreError, StoreUnavailableError
from clearance.store.postgres import (
    DedicatedConnection,
    PostgresStore,
    _first_line,
    _to_pyformat,
    redact_url,
)

HeadTuple = tuple[int, bytes | None, bytes, int]
EntryTuple = tuple[int, bytes, bytes | None, bytes | None, bytes | None]
CheckpointTuple = tuple[int, bytes, bytes, str]
HoldTuple = tuple[str, int, int, str]

_LOCK = "SELECT pg_try_advisory_lock(hashtextextended(?, 0))"


class _Writer:
    """The connection holding one shard's advisory lock, and the epoch it was opened with."""

    __slots__ = ("conn", "epoch")

    def __init__(self, conn: DedicatedConnection, epoch: int) -> None:
        self.conn = conn
        self.epoch = epoch


def _fenced(origin: str, why: str) -> ConflictError:
    return ConflictError(
        f"audit shard `{origin}` is fenced: {why}",
        hint=(
            "another process appends to this shard (one replica id used twice): stop one of them "
            "or give each replica its own `--replica-id`"
        ),
    )


# The whole batch in one statement. The head compare-and-swap comes first and every insert reads
# its result, so a competing writer waits on the head row and is then fenced (0 rows), and a fenced
# batch inserts nothing. One statement in autocommit is one transaction: all of it commits or none.
_COMMIT_BATCH = """
WITH moved AS (
    UPDATE audit_shard SET size = ?, head = ?, compact = ?
    WHERE origin = ? AND size = ? AND epoch = ?
    RETURNING origin
), entries AS (
    INSERT INTO audit_entry (origin, idx, leaf_hash, header, retain_until)
    SELECT moved.origin, e.idx, e.leaf_hash, e.header, e.retain_until
    FROM moved, unnest(?::bigint[], ?::bytea[], ?::bytea[], ?::text[])
        AS e (idx, leaf_hash, header, retain_until)
), payloads AS (
    INSERT INTO audit_payload (origin, idx, salt, body, enc)
    SELECT moved.origin, p.idx, p.salt, p.body, p.enc
    FROM moved, unnest(?::bigint[], ?::bytea[], ?::bytea[], ?::text[]) AS p (idx, salt, body, enc)
), checkpoint AS (
    INSERT INTO audit_checkpoint (origin, size, root, note, created_at)
    SELECT moved.origin, c.size, c.root, c.note, c.created_at
    FROM moved, unnest(?::bigint[], ?::bytea[], ?::bytea[], ?::text[])
        AS c (size, root, note, created_at)
)
SELECT count(*) FROM moved
"""


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as ``width`` column lists (the arrays ``unnest`` turns back into rows)."""
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _batch_params(
    origin: str,
    old_size: int,
    epoch: int,
    head: HeadTuple,
    entries: Sequence[tuple[int, bytes, bytes, str | None]],
    payloads: Sequence[tuple[int, bytes, bytes, str]],
    checkpoint: CheckpointTuple | None,
) -> list[Any]:
    """The parameters of ``_COMMIT_BATCH``, in placeholder order."""
    return [
        head[0],
        head[1],
        head[2],
        origin,
        old_size,
        epoch,
        *_columns(entries, 4),
        *_columns(payloads, 4),
        *_columns([] if checkpoint is None else [checkpoint], 4),
    ]


class PostgresAuditStorage:
    """``AuditStorage`` on the shared PostgreSQL store (see the module docstring)."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._writers: dict[str, _Writer] = {}

    # writing --------------------------------------------------------------------------------
    def open_shard(
        self, origin: str, *, replica: str, period: str, vkey: str, created_at: str
    ) -> HeadTuple:
        """Lock the shard for this process, create its row if missing, bump its epoch.

        Opening a shard this storage already holds keeps the lock and bumps the epoch again,
        which fences the earlier writer in this process (as on SQLite).
        """
        with self._lock:
            writer = self._writers.pop(origin, None)
            conn = writer.conn if writer is not None and not writer.conn.broken else None
            if conn is None:
                if writer is not None:
                    writer.conn.close()
                conn = self._locked_connection(origin)
            try:
                with conn.transaction() as cur:
                    cur.execute(
                        "INSERT INTO audit_shard (origin, replica, period, vkey, created_at) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin) DO NOTHING",
                        (origin, replica, period, vkey, created_at),
                    )
                    cur.execute(
                        "UPDATE audit_shard SET epoch = epoch + 1 WHERE origin = ? "
                        "RETURNING size, head, compact, epoch, state",
                        (origin,),
                    )
                    size, head, compact, epoch, state = cur.fetchone()
                    if state != "active":
                        raise ConflictError(
                            f"audit shard `{origin}` is {state}",
                            hint="shards are never reused; start the replica with a new id or period",
                        )
            except BaseException:
                conn.close()
                raise
            self._writers[origin] = _Writer(conn, int(epoch))
        return (int(size), None if head is None else bytes(head), bytes(compact), int(epoch))

    def _locked_connection(self, origin: str) -> DedicatedConnection:
        """A new connection holding the shard's session advisory lock, or ``ConflictError``."""
        conn = self._store.connect_dedicated()
        try:
            conn.execute("SET synchronous_commit = on")
            if not conn.execute(_LOCK, (origin,)).fetchone()[0]:
                raise _fenced(origin, "another session holds its advisory lock")
        except BaseException:
            conn.close()
            raise
        return conn

    def _writer(self, origin: str, epoch: int) -> _Writer:
        writer = self._writers.get(origin)
        if writer is None or writer.epoch != epoch:
            raise _fenced(origin, f"epoch {epoch} was not opened by this storage")
        if writer.conn.broken:
            # The session (and its lock) died with the connection: take the lock again on a new
            # one. Nobody else may have written meanwhile; the epoch compare-and-swap checks that.
            writer.conn.close()
            writer.conn = self._locked_connection(origin)
        return writer

    def commit_batch(
        self,
        origin: str,
        *,
        old_size: int,
        epoch: int,
        head: HeadTuple,
        entries: Sequence[tuple[int, bytes, bytes, str | None]],
        payloads: Sequence[tuple[int, bytes, bytes, str]],
        checkpoint: CheckpointTuple | None,
    ) -> None:
        """One durable transaction: head compare-and-swap, entries, payloads, checkpoint.

        It is one statement (``_COMMIT_BATCH``) in autocommit: one round trip per batch. A
        connection lost on the way leaves it unknown whether the batch committed, so the head is
        read again on a new connection holding the lock: the batch's own head means it committed;
        the old head means it did not, and it is sent once more; anything else is a fence.
        """
        params = _batch_params(origin, old_size, epoch, head, entries, payloads, checkpoint)
        with self._lock:
            for attempt in (1, 2):
                writer = self._writer(origin, epoch)
                if attempt == 2 and self._committed(writer, origin, old_size, epoch, head):
                    return
                try:
                    moved = writer.conn.execute(_COMMIT_BATCH, params).fetchone()[0]
                except StoreUnavailableError:
                    if attempt == 2 or not writer.conn.broken:
                        raise
                    continue
                if moved != 1:
                    raise _fenced(origin, f"it moved on from size {old_size}, epoch {epoch}")
                return

    @staticmethod
    def _committed(
        writer: _Writer, origin: str, old_size: int, epoch: int, head: HeadTuple
    ) -> bool:
        """After a lost connection: True if the batch moving the head to ``head`` committed."""
        row = writer.conn.execute(
            "SELECT size, head, epoch FROM audit_shard WHERE origin = ?", (origin,)
        ).fetchone()
        size, head_hash, current = int(row[0]), _opt(row[1]), int(row[2])
        if current == epoch and size == head[0] and head_hash == head[1]:
            return True
        if current == epoch and size == old_size:
            return False
        raise _fenced(origin, f"it moved on from size {old_size}, epoch {epoch}")

    def close(self) -> None:
        """Release every shard lock this storage holds (the store stays open)."""
        with self._lock:
            for writer in self._writers.values():
                writer.conn.close()
            self._writers.clear()

    # reading --------------------------------------------------------------------------------
    def leaf_hashes(self, origin: str, start: int, end: int) -> list[bytes]:
        """Leaf hashes ``[start, end)`` in index order."""
        with self._store.read() as cur:
            cur.execute(
                "SELECT leaf_hash FROM audit_entry WHERE origin = ? AND idx >= ? AND idx < ? "
                "ORDER BY idx",
                (origin, start, end),
            )
            return [bytes(r[0]) for r in cur.fetchall()]

    def entries(self, origin: str, start: int, end: int) -> list[EntryTuple]:
        """Entries ``[start, end)`` with their payloads: ``(idx, leaf, header, salt, body)``."""
        with self._store.read() as cur:
            cur.execute(
                "SELECT e.idx, e.leaf_hash, e.header, p.salt, p.body FROM audit_entry e "
                "LEFT JOIN audit_payload p ON p.origin = e.origin AND p.idx = e.idx "
                "WHERE e.origin = ? AND e.idx >= ? AND e.idx < ? ORDER BY e.idx",
                (origin, start, end),
            )
            rows = cur.fetchall()
        return [
            (int(i), bytes(lh), _opt(header), _opt(salt), _opt(body))
            for i, lh, header, salt, body in rows
        ]

    def latest_checkpoint(self, origin: str) -> CheckpointTuple | None:
        """The largest checkpoint of the shard: ``(size, root, note, created_at)``."""
        with self._store.read() as cur:
            cur.execute(
                "SELECT size, root, note, created_at FROM audit_checkpoint WHERE origin = ? "
                "ORDER BY size DESC LIMIT 1",
                (origin,),
            )
            row = cur.fetchone()
        if row is None:
            return None
        return (int(row[0]), bytes(row[1]), bytes(row[2]), str(row[3]))

    def expired_payloads(self, origin: str, before: str) -> list[int]:
        """Indexes with a stored payload and ``retain_until < before``."""
        with self._store.read() as cur:
            cur.execute(
                "SELECT e.idx FROM audit_entry e JOIN audit_payload p "
                "ON p.origin = e.origin AND p.idx = e.idx "
                "WHERE e.origin = ? AND e.retain_until < ? ORDER BY e.idx",
                (origin, before),
            )
            return [int(r[0]) for r in cur.fetchall()]

    def delete_payloads(self, origin: str, indexes: Sequence[int]) -> int:
        """Delete payload rows in one transaction; return how many were deleted."""
        if not indexes:
            return 0
        with self._store.transaction() as cur:
            cur.execute(
                "DELETE FROM audit_payload WHERE origin = ? AND idx = ANY(?) RETURNING idx",
                (origin, list(indexes)),
            )
            return len(cur.fetchall())

    def holds(self, origin: str) -> list[HoldTuple]:
        """Legal holds of the shard: ``(hold_id, start, end, created_at)``."""
        with self._store.read() as cur:
            cur.execute(
                "SELECT hold_id, start_idx, end_idx, created_at FROM audit_hold WHERE origin = ? "
                "ORDER BY hold_id",
                (origin,),
            )
            return [(str(h), int(s), int(e), str(c)) for h, s, e, c in cur.fetchall()]

    def add_hold(self, origin: str, hold: HoldTuple) -> None:
        """Record a hold; an existing id is a ``ConflictError``."""
        with self._store.transaction() as cur:
            cur.execute(
                "INSERT INTO audit_hold (origin, hold_id, start_idx, end_idx, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (origin, *hold),
            )

    def remove_hold(self, origin: str, hold_id: str) -> bool:
        """Release a hold; ``False`` if it did not exist."""
        with self._store.transaction() as cur:
            cur.execute(
                "DELETE FROM audit_hold WHERE origin = ? AND hold_id = ? RETURNING hold_id",
                (origin, hold_id),
            )
            return cur.fetchone() is not None

    def size(self, origin: str) -> int:
        """Committed entries of the shard (0 when it does not exist)."""
        with self._store.read() as cur:
            cur.execute("SELECT size FROM audit_shard WHERE origin = ?", (origin,))
            row = cur.fetchone()
        return 0 if row is None else int(row[0])

    def origins(self) -> list[str]:
        """Every shard origin in the store (the registry an auditor starts from)."""
        with self._store.read() as cur:
            cur.execute("SELECT origin FROM audit_shard ORDER BY origin")
            return [str(r[0]) for r in cur.fetchall()]


def _opt(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise StoreError("an audit column holds an unexpected type")


class SnapshotReader:
    """All audit shards of a PostgreSQL store in one read-only ``REPEATABLE READ`` transaction.

    What ``clearance audit verify --db postgresql://...`` hands the verifier (its ``Reader``): every
    shard and every anchor is read as of one instant while the replicas keep appending, so a
    shard's head never appears ahead of its entries. Queries use ``sqlite3``'s ``?`` placeholders.
    Failures raise ``error(message)``, the verifier's own error type, with the password of the
    URL hidden.
    """

    def __init__(self, url: str, *, error: Callable[[str], Exception]) -> None:
        import psycopg

        self._error = error
        self._url = redact_url(url)
        try:
            self._conn = psycopg.connect(url, connect_timeout=5)
            self._conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self._conn.read_only = True
        except psycopg.Error as exc:
            raise error(f"cannot connect to {self._url}: {_first_line(exc)}") from exc

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Any:
        """Run a query in the snapshot; the result iterates over rows and has ``fetchone``."""
        import psycopg

        try:
            return self._conn.execute(_to_pyformat(sql), tuple(params))
        except psycopg.Error as exc:
            raise self._error(f"cannot read {self._url}: {_first_line(exc)}") from exc

    def close(self) -> None:
        """End the transaction and the connection."""
        self._conn.close()
