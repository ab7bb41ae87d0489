"""SQLite tables of the audit shard (AUDIT.md 3.12): WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``.

The tables live in the same database file as the rest of the embedded store but are owned here.
One connection serves the appender and readers behind a lock: the appender's transactions are short
(one per group-committed batch), so readers (proofs, pruning, export) wait at most one commit.
Every ``sqlite3`` error leaves this module as a ``StoreError`` subclass.

A batch is committed by **one** SQL statement: a multi-row ``INSERT`` into the connection's
temporary view ``audit_batch``, whose ``INSTEAD OF`` triggers route each row (entry, payload,
head compare-and-swap, checkpoint) to its table. One statement outside ``BEGIN`` is one
transaction, so the batch is still atomic and durable when the call returns, and the appender
gives up the GIL (to SQLite's I/O) once per batch instead of once per statement: under many
threads, each time it gives the GIL up it waits behind every runnable thread to get it back, with
the disk idle meanwhile.

WAL checkpoints run on a background thread with a connection of its own (``PASSIVE``, every
``checkpoint_interval_s``), not inside whichever batch commit crosses SQLite's automatic
threshold: a checkpoint copies the WAL back into the database and syncs it, which would stall
that batch and every caller queued behind it (the tail of the decision latency otherwise).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

from clearance.errors import ConflictError, StoreError, StoreUnavailableError

HeadTuple = tuple[int, bytes | None, bytes, int]
EntryTuple = tuple[int, bytes, bytes | None, bytes | None, bytes | None]
CheckpointTuple = tuple[int, bytes, bytes, str]
HoldTuple = tuple[str, int, int, str]

_ROWS_PER_STATEMENT = 2500  # 11 parameters each, under SQLite's limit of 32,766 variables

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_shard (
    origin TEXT PRIMARY KEY, replica TEXT NOT NULL, period TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active', epoch INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0, head BLOB, compact BLOB NOT NULL DEFAULT x'',
    vkey TEXT NOT NULL, created_at TEXT NOT NULL, sealed_at TEXT);
CREATE TABLE IF NOT EXISTS audit_entry (
    origin TEXT NOT NULL, idx INTEGER NOT NULL, leaf_hash BLOB NOT NULL, header BLOB,
    retain_until TEXT, PRIMARY KEY (origin, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_payload (
    origin TEXT NOT NULL, idx INTEGER NOT NULL, salt BLOB NOT NULL, body BLOB NOT NULL,
    enc TEXT NOT NULL DEFAULT 'none', wrapped_dek BLOB, kek_id TEXT,
    PRIMARY KEY (origin, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_checkpoint (
    origin TEXT NOT NULL, size INTEGER NOT NULL, root BLOB NOT NULL, note BLOB NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (origin, size)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_hold (
    origin TEXT NOT NULL, hold_id TEXT NOT NULL, start_idx INTEGER NOT NULL,
    end_idx INTEGER NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (origin, hold_id));
"""

# The write path's view and its triggers are TEMP objects of the appending connection: nothing in
# the database file changes, and a reader of the file never sees them. Columns per role:
#   entry       idx, h = leaf hash, data = header, text = retain_until, and its payload's salt,
#               body and enc (NULL without a payload): one row per entry and its payload
#   payload     idx, salt, body, enc (a payload whose entry is not in the batch)
# Any row with a salt stores a payload (``audit_batch_payload``), whatever its role.
#   head        idx = new size, h = head hash, data = compact range, old_size, epoch (the CAS)
#   checkpoint  idx = size, h = root, data = note, text = created_at
_FENCED = "audit_shard_moved_on"
BATCH_SCHEMA = f"""
CREATE TEMP VIEW IF NOT EXISTS audit_batch
    (role, origin, idx, h, data, text, salt, body, enc, old_size, epoch)
    AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;
CREATE TEMP TRIGGER IF NOT EXISTS audit_batch_entry INSTEAD OF INSERT ON audit_batch
WHEN NEW.role = 'entry' BEGIN
    INSERT INTO audit_entry (origin, idx, leaf_hash, header, retain_until)
    VALUES (NEW.origin, NEW.idx, NEW.h, NEW.data, NEW.text);
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_batch_payload INSTEAD OF INSERT ON audit_batch
WHEN NEW.salt IS NOT NULL BEGIN
    INSERT INTO audit_payload (origin, idx, salt, body, enc)
    VALUES (NEW.origin, NEW.idx, NEW.salt, NEW.body, NEW.enc);
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_batch_head INSTEAD OF INSERT ON audit_batch
WHEN NEW.role = 'head' BEGIN
    SELECT RAISE(ABORT, '{_FENCED}') WHERE NOT EXISTS (
        SELECT 1 FROM audit_shard
        WHERE origin = NEW.origin AND size = NEW.old_size AND epoch = NEW.epoch);
    UPDATE audit_shard SET size = NEW.idx, head = NEW.h, compact = NEW.data
    WHERE origin = NEW.origin;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_batch_checkpoint INSTEAD OF INSERT ON audit_batch
WHEN NEW.role = 'checkpoint' BEGIN
    INSERT INTO audit_checkpoint (origin, size, root, note, created_at)
    VALUES (NEW.origin, NEW.idx, NEW.h, NEW.data, NEW.text);
END;
"""
_BATCH_ROW = "(?,?,?,?,?,?,?,?,?,?,?)"
_NO_PAYLOAD = (None, None, None)


@functools.lru_cache(maxsize=64)
def _insert_batch(rows: int) -> str:
    return "INSERT INTO audit_batch VALUES " + ",".join([_BATCH_ROW] * rows)


class SQLiteAuditStorage:
    """``AuditStorage`` on a SQLite file.

    ``max_pages`` caps the database size (``PRAGMA max_page_count``): a full audit database then
    fails appends cleanly (SILENCE) instead of filling the disk the gate runs on.
    """

    checkpoint_interval_s = 0.5

    def __init__(
        self, path: str | Path, *, max_pages: int | None = None, readonly: bool = False
    ) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if readonly:
                self._conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
            self._conn.execute("PRAGMA busy_timeout = 5000")
            if not readonly:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = FULL")
                self._conn.execute("PRAGMA wal_autocheckpoint = 0")
                self._conn.executescript(SCHEMA)
                self._conn.executescript(BATCH_SCHEMA)
            if max_pages is not None:
                self._conn.execute(f"PRAGMA max_page_count = {int(max_pages)}")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailableError(
                f"cannot open the audit database `{self.path}`: {exc}",
                hint="check the path, its permissions and free disk space",
            ) from exc
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if not readonly:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="audit-wal-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """Fold the WAL back into the database off the commit path (``PASSIVE``: never blocks)."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return  # the appending connection keeps working; its WAL just grows until reopened
        try:
            while not self._stop.wait(self.checkpoint_interval_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    continue  # a failing disk shows in the next commit, which answers SILENCE
        finally:
            conn.close()

    @contextmanager
    def _locked(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"audit {what}: {exc}") from exc
            except sqlite3.OperationalError as exc:
                raise StoreUnavailableError(
                    f"audit {what} failed: {exc}", hint="check free disk space and file permissions"
                ) from exc
            except sqlite3.Error as exc:
                raise StoreError(f"audit {what} failed: {exc}") from exc

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._locked(what) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Stop the checkpoint thread and close the connection (the last one folds the WAL in)."""
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        with self._lock:
            self._conn.close()

    def open_shard(
        self, origin: str, *, replica: str, period: str, vkey: str, created_at: str
    ) -> HeadTuple:
        """Create the shard row if missing, bump its epoch (fencing older writers), return its head."""
        with self._transaction("open shard") as conn:
            conn.execute(
                "INSERT OR IGNORE INTO audit_shard (origin, replica, period, vkey, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (origin, replica, period, vkey, created_at),
            )
            conn.execute("UPDATE audit_shard SET epoch = epoch + 1 WHERE origin = ?", (origin,))
            size, head, compact, epoch = conn.execute(
                "SELECT size, head, compact, epoch FROM audit_shard WHERE origin = ?", (origin,)
            ).fetchone()
        return (size, head, compact, epoch)

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
        """One durable transaction: entries, payloads, head compare-and-swap, optional checkpoint.

        One statement when the batch fits ``_ROWS_PER_STATEMENT`` rows (see the module docstring),
        otherwise one per chunk inside ``BEGIN IMMEDIATE`` ... ``COMMIT``.
        """
        bodies = {idx: (salt, body, enc) for idx, salt, body, enc in payloads}
        rows: list[tuple[Any, ...]] = [
            ("entry", origin, idx, lh, header, until, *bodies.pop(idx, _NO_PAYLOAD), None, None)
            for idx, lh, header, until in entries
        ]
        rows.extend(
            ("payload", origin, idx, None, None, None, salt, body, enc, None, None)
            for idx, (salt, body, enc) in bodies.items()
        )
        rows.append(
            ("head", origin, head[0], head[1], head[2], None, None, None, None, old_size, epoch)
        )
        if checkpoint is not None:
            rows.append(("checkpoint", origin, *checkpoint, None, None, None, None, None))
        try:
            if len(rows) <= _ROWS_PER_STATEMENT:
                with self._locked("append") as conn:
                    conn.execute(_insert_batch(len(rows)), list(chain.from_iterable(rows)))
                return
            with self._transaction("append") as conn:
                for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                    chunk = rows[start : start + _ROWS_PER_STATEMENT]
                    conn.execute(_insert_batch(len(chunk)), list(chain.from_iterable(chunk)))
        except ConflictError as exc:
            if _FENCED in str(exc):
                raise ConflictError(
                    f"audit shard `{origin}` moved on under this writer (size {old_size}, epoch {epoch})",
                    hint="another process appends to the same shard; stop one of them",
                ) from exc
            raise

    def leaf_hashes(self, origin: str, start: int, end: int) -> list[bytes]:
        """Leaf hashes ``[start, end)``."""
        with self._locked("read") as conn:
            rows = conn.execute(
                "SELECT leaf_hash FROM audit_entry WHERE origin = ? AND idx >= ? AND idx < ? ORDER BY idx",
                (origin, start, end),
            ).fetchall()
        return [r[0] for r in rows]

    def entries(self, origin: str, start: int, end: int) -> list[EntryTuple]:
        """Entries ``[start, end)`` joined with their payloads: ``(idx, leaf, header, salt, body)``."""
        with self._locked("read") as conn:
            rows = conn.execute(
                "SELECT e.idx, e.leaf_hash, e.header, p.salt, p.body FROM audit_entry e"
                " LEFT JOIN audit_payload p ON p.origin = e.origin AND p.idx = e.idx"
                " WHERE e.origin = ? AND e.idx >= ? AND e.idx < ? ORDER BY e.idx",
                (origin, start, end),
            ).fetchall()
        return [tuple(r) for r in rows]

    def latest_checkpoint(self, origin: str) -> CheckpointTuple | None:
        """The largest checkpoint of the shard: ``(size, root, note, created_at)``."""
        with self._locked("read") as conn:
            row = conn.execute(
                "SELECT size, root, note, created_at FROM audit_checkpoint WHERE origin = ?"
                " ORDER BY size DESC LIMIT 1",
                (origin,),
            ).fetchone()
        return None if row is None else tuple(row)

    def expired_payloads(self, origin: str, before: str) -> list[int]:
        """Indexes with a stored payload and ``retain_until < before``."""
        with self._locked("read") as conn:
            rows = conn.execute(
                "SELECT e.idx FROM audit_entry e JOIN audit_payload p"
                " ON p.origin = e.origin AND p.idx = e.idx"
                " WHERE e.origin = ? AND e.retain_until < ? ORDER BY e.idx",
                (origin, before),
            ).fetchall()
        return [r[0] for r in rows]

    def delete_payloads(self, origin: str, indexes: Sequence[int]) -> int:
        """Delete payload rows in one transaction."""
        with self._transaction("prune") as conn:
            cur = conn.executemany(
                "DELETE FROM audit_payload WHERE origin = ? AND idx = ?",
                [(origin, i) for i in indexes],
            )
            return cur.rowcount

    def holds(self, origin: str) -> list[HoldTuple]:
        """Legal holds of the shard: ``(hold_id, start, end, created_at)``."""
        with self._locked("read") as conn:
            rows = conn.execute(
                "SELECT hold_id, start_idx, end_idx, created_at FROM audit_hold WHERE origin = ?"
                " ORDER BY hold_id",
                (origin,),
            ).fetchall()
        return [tuple(r) for r in rows]

    def add_hold(self, origin: str, hold: HoldTuple) -> None:
        """Record a hold; an existing id is a ``ConflictError``."""
        with self._transaction("hold") as conn:
            conn.execute(
                "INSERT INTO audit_hold (origin, hold_id, start_idx, end_idx, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (origin, *hold),
            )

    def remove_hold(self, origin: str, hold_id: str) -> bool:
        """Release a hold."""
        with self._transaction("release hold") as conn:
            cur = conn.execute(
                "DELETE FROM audit_hold WHERE origin = ? AND hold_id = ?", (origin, hold_id)
            )
            return cur.rowcount == 1

    def size(self, origin: str) -> int:
        """Committed entries of the shard (0 when it does not exist)."""
        with self._locked("read") as conn:
            row = conn.execute(
                "SELECT size FROM audit_shard WHERE origin = ?", (origin,)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def origins(self) -> list[str]:
        """All shard origins."""
        with self._locked("read") as conn:
            return [r[0] for r in conn.execute("SELECT origin FROM audit_shard ORDER BY origin")]
