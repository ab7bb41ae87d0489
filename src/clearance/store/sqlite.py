"""The embedded store: one SQLite file in WAL mode, one connection per thread.

Writes use ``BEGIN IMMEDIATE`` so concurrent writers queue on the database lock instead of failing
half way; driver errors are translated into ``StoreError`` subclasses here and nowhere else.

Decision records, the one write on the hot path, are group-committed: concurrent callers queue,
one of them (the leader) writes everything queued in one transaction, each record inside its own
savepoint so one failing record fails only its caller, and everyone returns after the commit.
There is no timer: a lone caller commits at once.

WAL checkpoints run on a background thread (every ``checkpoint_interval_s``), not inside the
commit of whichever decision happened to cross SQLite's automatic threshold: a checkpoint writes
pages back and syncs the file, which is the tail of the decision latency otherwise.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from clearance.errors import ConflictError, MigrationError, StoreUnavailableError
from clearance.store.migrate import migrations_for, split_statements
from clearance.store.protocol import DecisionRecord, IdempotencyRecord, SessionState
from clearance.store.sql import SESSION_COLUMNS, Cursor, SQLStore, session_from_row

_BUSY_TIMEOUT_MS = 5000


class _Item:
    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[], Any]) -> None:
        self.work = work
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


def _translated(exc: BaseException) -> BaseException:
    """Driver errors become store errors here, as in ``SQLiteStore.transaction``."""
    if isinstance(exc, sqlite3.IntegrityError):
        error: BaseException = ConflictError(f"write conflict: {exc}")
    elif isinstance(exc, sqlite3.Error):
        error = StoreUnavailableError(f"the SQLite store failed: {exc}")
    else:
        return exc
    error.__cause__ = exc
    return error


class _GroupCommit:
    """Leader/follower group commit over one store (see the module docstring)."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._cond = threading.Condition()
        self._queue: list[_Item] = []
        self._leading = False

    def submit(self, work: Callable[[], Any]) -> Any:
        item = _Item(work)
        with self._cond:
            self._queue.append(item)
            while self._leading and not item.done:
                self._cond.wait()
            if not item.done:
                self._leading = True
                batch, self._queue = self._queue, []
            else:
                batch = []
        if batch:
            try:
                self._write(batch)
            finally:
                with self._cond:
                    for queued in batch:
                        queued.done = True
                    self._leading = False
                    self._cond.notify_all()
        if item.error is not None:
            raise item.error
        return item.result

    def _write(self, batch: list[_Item]) -> None:
        try:
            with self._store.transaction() as cur:
                if len(batch) == 1:
                    # Alone in the batch: the transaction itself isolates the record.
                    batch[0].result = batch[0].work()
                    return
                for item in batch:
                    cur.execute("SAVEPOINT record")
                    try:
                        item.result = item.work()
                        cur.execute("RELEASE record")
                    except (sqlite3.Error, ConflictError, StoreUnavailableError) as exc:
                        cur.execute("ROLLBACK TO record")
                        cur.execute("RELEASE record")
                        item.error = _translated(exc)
        except BaseException as exc:  # noqa: BLE001 - the commit failed: nobody in the batch was stored
            for item in batch:
                item.result = None
                item.error = exc


class SQLiteStore(SQLStore):
    """``Store`` on a SQLite file (``sqlite:///path/to/file.db``)."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._synchronous = synchronous
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot create the data directory `{self.path.parent}`: {exc.strerror}"
            ) from exc
        self._group = _GroupCommit(self)
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()

    checkpoint_interval_s = 0.5

    def _checkpoint_loop(self) -> None:
        """Fold the WAL back into the database off the decision path (PASSIVE: never blocks)."""
        while not self._stop.wait(self.checkpoint_interval_s):
            try:
                with self.read() as cur:
                    cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except StoreUnavailableError:
                continue  # the next decision reports the store failure; nothing to do here

    def session_state(self, session_id: str) -> SessionState | None:
        """``Store.session_state`` in one query (the portable version takes three)."""
        with self.read() as cur:
            cur.execute(
                f"SELECT {SESSION_COLUMNS}, "
                "(SELECT json_group_object(tool, n) FROM session_calls WHERE session_id = s.session_id), "
                "(SELECT json_group_array(source) FROM (SELECT source FROM session_taint "
                "WHERE session_id = s.session_id ORDER BY first_at, source)) "
                "FROM sessions AS s WHERE session_id = ?",
                (session_id,),
            )
            row = cur.fetchone()
        if row is None:
            return None
        calls = {tool: int(n) for tool, n in orjson.loads(row[11]).items()}
        taint = tuple(orjson.loads(row[12]))
        return SessionState(session=session_from_row(row), taint=taint, calls=calls)

    def record_decision(
        self,
        record: DecisionRecord,
        *,
        session_id: str,
        tool: str,
        count_call: bool,
        idempotency: IdempotencyRecord | None,
    ) -> IdempotencyRecord | None:
        """``Store.record_decision``, group-committed with concurrent callers."""
        return self._group.submit(  # type: ignore[no-any-return]
            lambda: SQLStore.record_decision(
                self,
                record,
                session_id=session_id,
                tool=tool,
                count_call=count_call,
                idempotency=idempotency,
            )
        )

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=5
                )
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA wal_autocheckpoint = 0")
            except sqlite3.Error as exc:
                raise StoreUnavailableError(
                    f"cannot open the SQLite store `{self.path}`: {exc}",
                    hint="check the path, its permissions and free disk space",
                ) from exc
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; nested calls join the outer transaction."""
        conn = self._conn()
        depth: int = self._local.depth
        cur = conn.cursor()
        if depth:
            self._local.depth = depth + 1
            try:
                yield cur
            finally:
                self._local.depth = depth
            return
        try:
            cur.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"the SQLite store is not writable: {exc}") from exc
        self._local.depth = 1
        try:
            yield cur
            cur.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            conn.rollback()
            raise ConflictError(f"write conflict: {exc}") from exc
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            raise StoreUnavailableError(
                f"the SQLite store failed: {exc}", hint="check free disk space and permissions"
            ) from exc
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        finally:
            self._local.depth = 0

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        """A cursor for reads; SQLite errors become ``StoreUnavailableError``."""
        conn = self._conn()
        try:
            yield conn.cursor()
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"the SQLite store failed to read: {exc}") from exc

    def ping(self) -> None:
        """Raise ``StoreUnavailableError`` unless the file answers a query."""
        with self.read() as cur:
            cur.execute("SELECT count(*) FROM schema_migrations")

    def schema_version(self) -> tuple[int, int]:
        """``(applied, latest known)``."""
        latest = max((m.version for m in migrations_for("sqlite")), default=0)
        with self.read() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            applied = int(cur.fetchone()[0])
        return applied, latest

    def migrate(self) -> list[str]:
        """Apply every pending migration, each in its own transaction."""
        applied_now: list[str] = []
        applied, latest = self.schema_version()
        if applied > latest:
            raise MigrationError(
                f"the store schema is at version {applied}, newer than this clearance ({latest})",
                hint="upgrade clearance before opening this store",
            )
        for migration in migrations_for("sqlite"):
            if migration.version <= applied:
                continue
            with self.transaction() as cur:
                for statement in split_statements(migration.sql):
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) "
                    "VALUES (?, ?, datetime('now'))",
                    (migration.version, migration.name),
                )
            applied_now.append(migration.name)
        return applied_now

    def close(self) -> None:
        """Stop the checkpointer and close every connection this store opened."""
        self._stop.set()
        if self._checkpointer.is_alive() and self._checkpointer is not threading.current_thread():
            self._checkpointer.join(timeout=5)
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
