"""PostgreSQL-only behaviour of the store: dialect, error translation, timeouts, reconnection.

What both backends share is in ``test_store_contract.py``; this file covers what only the
PostgreSQL backend has (pool, advisory-locked migrations, collation, reconnect after a restart).
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from clearance.errors import (
    ConflictError,
    MigrationError,
    StoreError,
    StoreUnavailableError,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(pg_schema_url: str) -> Iterator[Any]:
    from clearance.store.postgres import PostgresStore

    store = PostgresStore(pg_schema_url, application_name=f"clearance-test-{uuid.uuid4().hex[:8]}")
    store.migrate()
    yield store
    store.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _terminate(admin: Any, application_name: str) -> int:
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (application_name,),
    )
    return len(rows)


# dialect ----------------------------------------------------------------------------------------
def test_placeholders_are_rewritten_outside_quotes_only(pg_admin: Any) -> None:
    from clearance.store.postgres import _to_pyformat

    assert _to_pyformat("SELECT a FROM t WHERE b = ? AND c = ?") == (
        "SELECT a FROM t WHERE b = %s AND c = %s"
    )
    assert _to_pyformat("SELECT '?', \"?\", ? WHERE x LIKE 'a%'") == (
        "SELECT '?', \"?\", %s WHERE x LIKE 'a%%'"
    )
    assert _to_pyformat("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"


def test_literal_percent_and_question_marks_reach_the_database(pg: Any) -> None:
    with pg.read() as cur:
        cur.execute("SELECT '100%' || ?, '?'", ("!",))
        assert cur.fetchone() == ("100%!", "?")


def test_url_password_is_redacted(pg_admin: Any) -> None:
    from clearance.store.postgres import redact_url

    assert redact_url("postgresql://gate:s3cret@db:5432/clearance") == (
        "postgresql://gate:***@db:5432/clearance"
    )
    assert redact_url("postgresql://gate@db/clearance") == "postgresql://gate@db/clearance"
    assert redact_url("postgresql://db/c?sslmode=require&password=s3cret") == (
        "postgresql://db/c?sslmode=require&password=***"
    )


def test_text_columns_of_the_core_and_audit_tables_collate_bytewise(pg: Any) -> None:
    # Without "C", a database created with an en_US locale would order ids, keys and timestamps
    # differently from SQLite (punctuation ignored), and the contract suite would pass only here.
    with pg.read() as cur:
        cur.execute(
            "SELECT table_name, column_name, coalesce(collation_name, '') FROM "
            "information_schema.columns WHERE table_schema = current_schema() "
            "AND data_type = 'text' AND table_name = ANY(?)",
            (
                [
                    "sessions",
                    "session_calls",
                    "session_taint",
                    "decisions",
                    "idempotency",
                    "bundles",
                    "activations",
                    "kv",
                    "audit_shard",
                    "audit_entry",
                    "audit_payload",
                    "audit_checkpoint",
                    "audit_hold",
                ],
            ),
        )
        rows = cur.fetchall()
    assert rows
    assert [r for r in rows if r[2] != "C"] == []


# migrations -------------------------------------------------------------------------------------
def test_concurrent_migrations_apply_each_version_once(pg_schema_url: str) -> None:
    from clearance.store.migrate import migrations_for
    from clearance.store.postgres import PostgresStore

    stores = [PostgresStore(pg_schema_url, min_size=1, max_size=2) for _ in range(5)]
    applied: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def run(store: PostgresStore) -> None:
        try:
            barrier.wait()
            applied.append(store.migrate())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        names = sorted(name for batch in applied for name in batch)
        assert names == sorted(m.name for m in migrations_for("postgres"))
        with stores[0].read() as cur:
            cur.execute("SELECT version, count(*) FROM schema_migrations GROUP BY version")
            assert all(n == 1 for _, n in cur.fetchall())
    finally:
        for store in stores:
            store.close()


def test_a_gap_filled_later_is_still_migrated(pg: Any) -> None:
    with pg.transaction() as cur:
        cur.execute("DELETE FROM schema_migrations WHERE version = 10")
        cur.execute(
            "DROP TABLE audit_shard, audit_entry, audit_payload, audit_checkpoint, audit_hold"
        )
    assert pg.migrate() == ["0010_audit.sql"]


def test_a_schema_newer_than_the_code_is_refused(pg: Any) -> None:
    with pg.transaction() as cur:
        cur.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'x', 'now')"
        )
    with pytest.raises(MigrationError, match="newer than this clearance"):
        pg.migrate()


def test_an_unmigrated_schema_is_a_migration_error(pg_schema_url: str) -> None:
    from clearance.store.postgres import PostgresStore

    store = PostgresStore(pg_schema_url)
    try:
        assert store.schema_version()[0] == 0
        with pytest.raises(MigrationError, match="migrate"):
            store.kv_get("ns", "k")
    finally:
        store.close()


# error translation ------------------------------------------------------------------------------
def test_values_postgres_cannot_store_are_a_store_error(pg: Any) -> None:
    with pytest.raises(StoreError, match="rejected a value"):
        pg.kv_put("ns", "nul\x00byte", {"v": 1}, "2026")
    pg.ping()  # the connection is usable afterwards


def test_statement_timeout_is_store_unavailable(pg_schema_url: str, pg_admin: Any) -> None:
    import psycopg

    from clearance.store.postgres import PostgresStore

    store = PostgresStore(pg_schema_url, statement_timeout_ms=300)
    store.migrate()
    store.kv_put("ns", "k", {"v": 1}, "2026")
    blocker = psycopg.connect(pg_schema_url)
    try:
        blocker.execute("SELECT * FROM kv WHERE namespace = 'ns' FOR UPDATE")  # holds the row lock
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="did not finish in time"):
            store.kv_put("ns", "k", {"v": 2}, "2026")
        assert time.monotonic() - started < 2
    finally:
        blocker.close()
        store.close()


def test_serialisation_failures_are_conflicts(pg: Any) -> None:
    from psycopg import errors as pg_errors

    from clearance.store.postgres import _translate

    assert isinstance(_translate(pg_errors.SerializationFailure("x")), ConflictError)
    assert isinstance(_translate(pg_errors.DeadlockDetected("x")), ConflictError)


# unreachable database, restart, recovery ---------------------------------------------------------
def test_an_unreachable_database_fails_fast_with_store_unavailable(pg_admin: Any) -> None:
    from clearance.store.postgres import PostgresStore

    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{_free_port()}/test")
    try:
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="unreachable"):
                store.kv_get("ns", "k")
            assert time.monotonic() - started < 2.5
        with pytest.raises(StoreUnavailableError):
            store.ping()
    finally:
        store.close()


def test_password_is_not_in_errors_or_url(pg_admin: Any) -> None:
    from clearance.store.postgres import PostgresStore

    store = PostgresStore(f"postgresql://postgres:hunter2@127.0.0.1:{_free_port()}/test")
    try:
        assert "hunter2" not in store.url
        with pytest.raises(StoreUnavailableError) as info:
            store.ping()
        assert "hunter2" not in str(info.value)
    finally:
        store.close()


def test_idle_connections_killed_by_a_restart_are_replaced_without_failing_callers(
    pg: Any, pg_admin: Any
) -> None:
    app = pg._connect_kwargs["application_name"]
    pg.kv_put("ns", "k", {"v": 1}, "2026")
    assert _terminate(pg_admin, app) >= 1
    time.sleep(1.1)  # idle for longer than the store trusts a connection without probing it
    for _ in range(5):
        assert pg.kv_get("ns", "k") == {"v": 1}


def test_connections_killed_while_busy_fail_one_caller_then_the_pool_is_renewed(
    pg: Any, pg_admin: Any
) -> None:
    app = pg._connect_kwargs["application_name"]
    pg.kv_put("ns", "k", {"v": 1}, "2026")
    assert _terminate(pg_admin, app) >= 1
    failures = 0
    for _ in range(5):
        try:
            assert pg.kv_get("ns", "k") == {"v": 1}
        except StoreUnavailableError:
            failures += 1
    assert failures <= 1


def test_a_connection_lost_mid_transaction_is_store_unavailable_then_recovers(
    pg: Any, pg_admin: Any
) -> None:
    app = pg._connect_kwargs["application_name"]

    def write_while_killed() -> None:
        with pg.transaction() as cur:
            cur.execute("INSERT INTO kv VALUES ('ns', 'lost', '{}', 'now')")
            _terminate(pg_admin, app)
            cur.execute("INSERT INTO kv VALUES ('ns', 'lost2', '{}', 'now')")

    with pytest.raises(StoreUnavailableError):
        write_while_killed()
    assert pg.kv_get("ns", "lost") is None  # nothing of the broken transaction remains
    pg.kv_put("ns", "after", {"ok": True}, "2026")
    assert pg.kv_get("ns", "after") == {"ok": True}
