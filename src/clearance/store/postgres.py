"""The shared store for several gate replicas: PostgreSQL through a psycopg 3 connection pool.

::

    from clearance.store.postgres import PostgresStore

    store = PostgresStore("postgresql://clearance@db.internal/clearance")
    store.migrate()            # concurrent replicas serialise on an advisory lock; applied once
    store.ping()               # StoreUnavailableError unless the database answers

What this module guarantees:

* Every driver error is translated here, and only here, into a ``StoreError`` subclass: an
  unreachable or restarting database, a pool timeout or a cancelled statement is
  ``StoreUnavailableError`` (the gate answers SILENCE); a uniqueness, foreign-key or
  serialisation conflict is ``ConflictError``; a missing table is ``MigrationError``.
* An unreachable database fails fast: connecting and waiting for a pooled connection are both
  bounded by ``connect_timeout`` (2 s by default, libpq's minimum), and once a connection attempt
  has failed callers get their error within 0.1 s. The pool keeps reconnecting in the background,
  so the store recovers by itself within about a second of the database's return. A connection
  idle for more than a second is probed before use; one found dead (by the probe or in use)
  drains the whole pool, so a restarted server costs at most the calls that were in flight.
* ``transaction()`` is one database transaction (READ COMMITTED); nested use on the same thread
  joins the outer transaction, as in SQLite. An error inside a nested block aborts the whole
  transaction: PostgreSQL refuses further statements in it, so there is no "catch and carry on".
* ``read()`` outside a transaction runs each statement in autocommit on a pooled connection.

``record_decision`` is one statement (data-modifying CTEs) instead of a transaction of five round
trips. The idempotency race (two replicas recording one ``(agent_id, key)`` at once) is settled
by the primary key: ``INSERT ... ON CONFLICT DO NOTHING`` waits for the other transaction, and
under READ COMMITTED the following ``SELECT`` sees the winner's committed row.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql as pg_sql
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from clearance.errors import (
    ClearanceError,
    ConflictError,
    MigrationError,
    StoreError,
    StoreUnavailableError,
)
from clearance.store.migrate import migrations_for, split_statements
from clearance.store.notify import check_channel
from clearance.store.protocol import DecisionRecord, IdempotencyRecord
from clearance.store.sql import Cursor, SQLStore, _dumps

_UNREACHABLE_HINT = (
    "check that PostgreSQL is up and reachable from this replica; decisions are SILENCE until it is"
)
_MIGRATE_HINT = "run `clearance db migrate --store URL` once for the deployment"
_MIGRATION_LOCK = "clearance.store.migrate"
_WAIT_SLICE = 0.1
_TRUST_RECENT = 1.0

# record_decision in one statement. Data-modifying CTEs run on one snapshot and see each other
# only through RETURNING, which is all they use: `dec` inserts only if `idem` inserted its row,
# and `calls` counts only if `dec` inserted. The final SELECT says whether this call won.
_DEC = (
    "dec AS (INSERT INTO decisions (decision_id, session_id, agent_id, policy, request, facts, "
    "decision, created_at) SELECT ?::text, ?::text, ?::text, ?::text, ?::text, ?::text, ?::text, "
    "?::text {guard} RETURNING decision_id)"
)
_CALLS = (
    "calls AS (INSERT INTO session_calls (session_id, tool, n) SELECT ?::text, ?::text, 1 "
    "WHERE ?::boolean AND EXISTS (SELECT 1 FROM dec) "
    "ON CONFLICT (session_id, tool) DO UPDATE SET n = session_calls.n + 1 RETURNING n)"
)
_WON = " SELECT EXISTS (SELECT 1 FROM dec), (SELECT count(*) FROM calls)"
_RECORD_PLAIN = "WITH " + _DEC.format(guard="") + ", " + _CALLS + _WON
_RECORD_IDEMPOTENT = (
    "WITH idem AS (INSERT INTO idempotency (agent_id, key, digest, decision_id, decision, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id, key) DO NOTHING "
    "RETURNING decision_id), "
    + _DEC.format(guard="WHERE EXISTS (SELECT 1 FROM idem)")
    + ", "
    + _CALLS
    + _WON
)


@functools.lru_cache(maxsize=512)
def _to_pyformat(query: str) -> str:
    """Rewrite qmark placeholders to psycopg's ``%s``; escape literal ``%``; respect quotes.

    Enough for clearance's own SQL, which has no dollar-quoted bodies and no inline comments.
    """
    out: list[str] = []
    quote: str | None = None
    for ch in query:
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        if ch == "%":
            out.append("%%")
            continue
        out.append(ch)
    return "".join(out)


def redact_url(url: str) -> str:
    """The URL without its password (in the authority or a ``password=`` parameter)."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = "&".join(
        "password=***" if item.lower().startswith("password=") else item
        for item in parts.query.split("&")
    )
    return urlunsplit(parts._replace(query=query))


def _first_line(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0].rstrip(".") if text.strip() else type(exc).__name__


def _translate(exc: psycopg.Error) -> StoreError:
    """Map a driver error onto the store's error family (the one place that knows psycopg)."""
    detail = _first_line(exc)
    if isinstance(exc, PoolTimeout):
        return StoreUnavailableError(
            "no PostgreSQL connection became free in time",
            hint="every pooled connection stayed busy; raise the pool size or lower the load",
        )
    if isinstance(exc, PoolClosed):
        return StoreUnavailableError("the PostgreSQL store is closed")
    if isinstance(exc, pg_errors.IntegrityError):
        return ConflictError(f"write conflict: {detail}")
    if (exc.sqlstate or "").startswith("40"):  # serialization failure, deadlock: class 40
        return ConflictError(
            f"concurrent update conflict: {detail}", hint="the operation can be retried"
        )
    if isinstance(exc, pg_errors.QueryCanceled):
        return StoreUnavailableError(f"a PostgreSQL statement did not finish in time: {detail}")
    if isinstance(exc, pg_errors.UndefinedTable | pg_errors.UndefinedColumn):
        return MigrationError(
            f"the store schema is missing or out of date: {detail}", hint=_MIGRATE_HINT
        )
    if isinstance(exc, pg_errors.DataError):
        return StoreError(f"the PostgreSQL store rejected a value: {detail}")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return StoreUnavailableError(
            f"the PostgreSQL store is unreachable: {detail}", hint=_UNREACHABLE_HINT
        )
    return StoreUnavailableError(f"the PostgreSQL store failed: {detail}", hint=_UNREACHABLE_HINT)


class PgCursor:
    """A psycopg cursor speaking the portable dialect of ``sql.py`` (``?`` placeholders)."""

    __slots__ = ("_cur",)

    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        """Run one statement."""
        self._cur.execute(_to_pyformat(sql), tuple(params))
        return self

    def fetchone(self) -> Any:
        """Next row or None."""
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        """Remaining rows."""
        return self._cur.fetchall()

    @property
    def rowcount(self) -> int:
        """Rows touched by the last statement (the compare-and-swap check needs it)."""
        return self._cur.rowcount

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """``COPY table (columns) FROM STDIN``, values adapted by psycopg: the fastest bulk insert."""
        statement = pg_sql.SQL("COPY {} ({}) FROM STDIN").format(
            pg_sql.Identifier(table), pg_sql.SQL(", ").join(map(pg_sql.Identifier, columns))
        )
        with self._cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)


class _Tx:
    """The transaction open on this thread (nested ``transaction()`` calls join it)."""

    __slots__ = ("cursor",)

    def __init__(self, cursor: PgCursor) -> None:
        self.cursor = cursor


class DedicatedConnection:
    """One connection outside the pool (``PostgresStore.connect_dedicated``); errors translated."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    @property
    def broken(self) -> bool:
        """Whether the connection is closed or lost (its session locks are then gone too)."""
        return self._conn.closed or self._conn.broken

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        """Run one statement in autocommit; the returned cursor holds its rows."""
        try:
            return PgCursor(self._conn.cursor()).execute(sql, params)
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[PgCursor]:
        """``BEGIN`` ... ``COMMIT`` on this connection."""
        try:
            with self._conn.transaction():
                yield PgCursor(self._conn.cursor())
        except ClearanceError:
            raise
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    def close(self) -> None:
        """Close the connection, releasing its session locks (no error if already lost)."""
        self._conn.close()


class Listener:
    """A dedicated connection that receives NOTIFY messages (used by ``store.notify``)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def listen(self, channel: str) -> None:
        """Start receiving ``channel``."""
        try:
            self._conn.execute(pg_sql.SQL("LISTEN {}").format(pg_sql.Identifier(channel)))
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    def poll(self, timeout: float) -> list[tuple[str, str]]:
        """Notifications as ``(channel, payload)``, as soon as any arrive (empty after ``timeout``)."""
        try:
            received = self._conn.notifies(timeout=timeout, stop_after=1)
            return [(n.channel, n.payload) for n in received]
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    def heartbeat(self) -> None:
        """A round trip, so a silently dropped connection is noticed."""
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    def close(self) -> None:
        """Close the connection (no error if it is already dead)."""
        self._conn.close()


class PostgresStore(SQLStore):
    """``Store`` on PostgreSQL (``postgresql://user@host:port/db``), shared by gate replicas.

    ``connect_timeout`` bounds both opening a connection and waiting for a pooled one, so an
    unreachable database is a ``StoreUnavailableError`` within about that many seconds.
    ``statement_timeout_ms`` bounds every statement (a lock held by a stuck replica cannot hang
    decisions).
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        connect_timeout: float = 2.0,
        statement_timeout_ms: int = 5000,
        application_name: str = "clearance",
    ) -> None:
        self._conninfo = url
        self.url = redact_url(url)
        self._timeout = connect_timeout
        self._statement_timeout_ms = statement_timeout_ms
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, round(connect_timeout)),
            "application_name": application_name,
            # A half-open TCP connection is noticed within ~20 s instead of hours.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 2,
        }
        self._local = threading.local()
        self._last_connect_error: str | None = None
        try:
            self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                url,
                connection_class=self._tracked_connection_class(),
                kwargs=self._connect_kwargs,
                min_size=min_size,
                max_size=max_size,
                open=False,
                configure=self._configure,
                check=self._check,
                timeout=connect_timeout,
                # The pool retries a failed connection after 1 s, then 2 s, 4 s, ... Giving the
                # attempt up after 2 s lets the next caller start a fresh one at once, so the store
                # is back within about a second of the database, however long it was away.
                reconnect_timeout=max(2.0, connect_timeout),
                name=f"clearance:{self.url}",
            )
            self._pool.open(wait=False)
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        except ValueError as exc:
            raise StoreUnavailableError(f"invalid PostgreSQL store url `{self.url}`") from exc

    # connections ----------------------------------------------------------------------------
    def _tracked_connection_class(self) -> type[psycopg.Connection[Any]]:
        """A connection class that remembers why the last connection attempt failed.

        A pool timeout alone cannot tell "database unreachable" from "every connection busy";
        the remembered reason lets the error say which.
        """
        store = self

        class _Connection(psycopg.Connection[Any]):
            @classmethod
            def connect(cls, *args: Any, **kwargs: Any) -> Any:
                try:
                    conn = super().connect(*args, **kwargs)
                except psycopg.Error as exc:
                    store._last_connect_error = _first_line(exc)
                    raise
                store._last_connect_error = None
                return conn

        return _Connection

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection, waited for in short slices.

        Between slices the wait gives up as soon as a connection attempt has failed: the database
        is then known to be down and the caller gets ``StoreUnavailableError`` at once instead of
        after the full timeout. The pool keeps reconnecting in the background (and every waiting
        caller starts an attempt), so recovery is not delayed by failing fast.
        """
        remaining = self._timeout
        while True:
            wait = min(_WAIT_SLICE, remaining)
            try:
                conn = self._pool.getconn(timeout=wait)
                break
            except PoolTimeout:
                remaining -= wait
                if remaining <= 0 or self._last_connect_error is not None:
                    raise
        try:
            yield conn
        except BaseException:
            if conn.broken or conn.closed:
                # A lost connection most likely means a restarted server: the idle ones are dead
                # too. Replace them all now rather than failing one caller per connection.
                self._pool.drain()
            raise
        else:
            conn._clearance_ok_at = time.monotonic()  # type: ignore[attr-defined]
        finally:
            self._pool.putconn(conn)

    def _error(self, exc: psycopg.Error) -> StoreError:
        if isinstance(exc, PoolTimeout) and self._last_connect_error is not None:
            return StoreUnavailableError(
                f"the PostgreSQL store is unreachable: {self._last_connect_error}",
                hint=_UNREACHABLE_HINT,
            )
        return _translate(exc)

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"SET statement_timeout = {int(self._statement_timeout_ms)}")
        # A replica frozen inside a transaction must not hold row locks for ever.
        conn.execute("SET idle_in_transaction_session_timeout = 30000")

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        # A connection that worked a moment ago is trusted without a round trip (the probe costs
        # about a third of a decision's throughput under load); if it died meanwhile, the caller
        # fails once and the pool is drained (see ``_connection``).
        if time.monotonic() - getattr(conn, "_clearance_ok_at", -_TRUST_RECENT) < _TRUST_RECENT:
            return
        try:
            ConnectionPool.check_connection(conn)
        except psycopg.Error:
            # One dead connection means the server most likely restarted: every idle connection
            # is dead too. Replace them all now rather than failing one caller per connection.
            self._pool.drain()
            raise

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """``BEGIN`` ... ``COMMIT`` on one pooled connection; nested calls join the outer one."""
        tx: _Tx | None = getattr(self._local, "tx", None)
        if tx is not None:
            try:
                yield tx.cursor
            except psycopg.Error as exc:
                raise self._error(exc) from exc
            return
        try:
            with self._connection() as conn, conn.transaction():
                tx = _Tx(PgCursor(conn.cursor()))
                self._local.tx = tx
                try:
                    yield tx.cursor
                finally:
                    self._local.tx = None
        except ClearanceError:
            raise
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        """A cursor for reads: the open transaction's on this thread, else an autocommit one."""
        tx: _Tx | None = getattr(self._local, "tx", None)
        if tx is not None:
            try:
                yield tx.cursor
            except psycopg.Error as exc:
                raise self._error(exc) from exc
            return
        try:
            with self._connection() as conn:
                yield PgCursor(conn.cursor())
        except ClearanceError:
            raise
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    def connect_dedicated(self) -> DedicatedConnection:
        """A connection of its own, outside the pool; the caller closes it.

        For state that lives as long as a connection: a session advisory lock (one audit appender
        per shard) and the writes that must happen in the session holding it.
        """
        try:
            conn = psycopg.connect(self._conninfo, **self._connect_kwargs)
            self._configure(conn)
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        return DedicatedConnection(conn)

    def open_listener(self) -> Listener:
        """A new connection for LISTEN; the caller owns it (``store.notify.Notifier`` does)."""
        try:
            conn = psycopg.connect(self._conninfo, **self._connect_kwargs)
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        return Listener(conn)

    def notify(self, channel: str, payload: str) -> None:
        """Send ``payload`` on ``channel``; inside a transaction it is delivered on commit only."""
        check_channel(channel, payload)
        with self.transaction() as cur:
            cur.execute("SELECT pg_notify(?, ?)", (channel, payload))

    # decisions: one statement instead of one per table ---------------------------------------
    def record_decision(
        self,
        record: DecisionRecord,
        *,
        session_id: str,
        tool: str,
        count_call: bool,
        idempotency: IdempotencyRecord | None,
    ) -> IdempotencyRecord | None:
        """Store a decision, its call count and idempotency record in one atomic statement.

        Same contract as ``SQLStore.record_decision``, in one round trip instead of five: the
        decision and the count are inserted only if the idempotency insert (when there is one)
        won. A lost race is then answered with the winner's record, read after the statement
        (under READ COMMITTED the conflicting insert waited for the winner to commit).
        """
        decision_row = (
            record.decision_id,
            session_id,
            record.request.get("agent_id"),
            record.policy,
            _dumps(record.request),
            _dumps(record.facts),
            _dumps(record.decision),
            record.created_at,
        )
        params: tuple[Any, ...]
        if idempotency is None:
            sql, params = _RECORD_PLAIN, (*decision_row, session_id, tool, count_call)
        else:
            idem_row = (
                idempotency.agent_id,
                idempotency.key,
                idempotency.digest,
                idempotency.decision_id,
                _dumps(idempotency.decision),
                idempotency.created_at,
            )
            sql, params = (
                _RECORD_IDEMPOTENT,
                (*idem_row, *decision_row, session_id, tool, count_call),
            )
        with self.transaction_or_autocommit() as cur:
            for _ in range(2):
                cur.execute(sql, params)
                if cur.fetchone()[0] or idempotency is None:
                    return None
                existing = self._idempotency(cur, idempotency.agent_id, idempotency.key)
                if existing is not None:
                    return existing
                # The winner's row was pruned between our insert and our read: the key is free.
        key = idempotency.key if idempotency is not None else ""
        raise ConflictError(
            f"idempotency key `{key}` changed twice while recording",
            hint="the decision was not stored; retry the request",
        )

    @contextmanager
    def transaction_or_autocommit(self) -> Iterator[Cursor]:
        """The open transaction on this thread, else one autocommit statement at a time.

        For writes that are a single atomic statement: no ``BEGIN``/``COMMIT`` round trips.
        """
        if getattr(self._local, "tx", None) is not None:
            with self.transaction() as cur:
                yield cur
            return
        try:
            with self._connection() as conn:
                yield PgCursor(conn.cursor())
        except ClearanceError:
            raise
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    # health and schema ----------------------------------------------------------------------
    def ping(self) -> None:
        """Raise ``StoreUnavailableError`` unless the database answers a query."""
        with self.read() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()

    def schema_version(self) -> tuple[int, int]:
        """``(applied, latest known)``; 0 applied when the schema has never been migrated."""
        latest = max((m.version for m in migrations_for("postgres")), default=0)
        with self.read() as cur:
            cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
            if not cur.fetchone()[0]:
                return 0, latest
            cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            applied = int(cur.fetchone()[0])
        return applied, latest

    def migrate(self) -> list[str]:
        """Apply every pending migration in one transaction, under an advisory lock.

        Replicas starting together all call this: the transaction-level advisory lock (keyed by
        the current schema) makes them queue, and each reads the applied versions under the
        lock, so every migration runs exactly once. DDL is transactional in PostgreSQL, so a
        failing migration leaves the schema as it was. A migration is pending when its version
        is not recorded (not merely when it is above the highest one), so a number filled into a
        reserved gap later is still applied.
        """
        known = migrations_for("postgres")
        latest = max((m.version for m in known), default=0)
        applied_now: list[str] = []
        with self.transaction() as cur:
            cur.execute("SET LOCAL statement_timeout = 0")
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(? || ':' || current_schema(), 0))",
                (_MIGRATION_LOCK,),
            )
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            cur.execute("SELECT version FROM schema_migrations")
            applied = {int(row[0]) for row in cur.fetchall()}
            if applied and max(applied) > latest:
                raise MigrationError(
                    f"the store schema is at version {max(applied)}, newer than this "
                    f"clearance ({latest})",
                    hint="upgrade clearance before opening this store",
                )
            for migration in known:
                if migration.version in applied:
                    continue
                try:
                    for statement in split_statements(migration.sql):
                        cur.execute(statement)
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"migration `{migration.name}` failed: {_first_line(exc)}"
                    ) from exc
                cur.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES "
                    "(?, ?, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))",
                    (migration.version, migration.name),
                )
                applied_now.append(migration.name)
        return applied_now

    def close(self) -> None:
        """Close the pool and every connection in it."""
        self._pool.close()
