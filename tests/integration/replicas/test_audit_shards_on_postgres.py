"""Verifying every audit shard of a PostgreSQL store, with anchors, while replicas append.

Two ``AuditLog`` appenders, each on its own ``PostgresStore`` (as two replica processes would
hold), write to one fresh database; the verifier reads it with ``--db URL`` through the snapshot
reader ``clearance audit verify`` supplies.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from clearance.audit.log import AuditLog
from clearance.audit.sign import AuditKey
from clearance.audit.testing import DEPLOYMENT, decision_fields, decision_payload
from clearance.audit.verify.errors import ExitCode
from clearance.audit.verify.verify import main, verify_log
from clearance.cli.commands.audit import postgres_reader
from clearance.formats.note import VerifierKey
from clearance.gate.clock import SystemClock

pytestmark = pytest.mark.postgres

KEY = AuditKey(DEPLOYMENT, bytes(range(32)))
TRUSTED = [VerifierKey.parse(KEY.vkey)]
A = f"{DEPLOYMENT}/gate-a/2026"
B = f"{DEPLOYMENT}/gate-b/2026"


@pytest.fixture
def logs(pg_database_url: str) -> Iterator[dict[str, AuditLog]]:
    from clearance.store.audit_postgres import PostgresAuditStorage
    from clearance.store.postgres import PostgresStore

    opened: list[tuple[PostgresStore, PostgresAuditStorage, AuditLog]] = []
    for origin in (A, B):
        store = PostgresStore(pg_database_url)
        storage = PostgresAuditStorage(store)
        log = AuditLog(storage, KEY, origin, SystemClock().now, anchor_interval=timedelta(0))
        opened.append((store, storage, log))
    yield {A: opened[0][2], B: opened[1][2]}
    for store, storage, log in opened:
        log.close()
        storage.close()
        store.close()


def fill(logs: dict[str, AuditLog], rounds: int = 3) -> None:
    for r in range(rounds):
        for log in logs.values():
            log.append("decision", decision_fields(r), decision_payload(r))
            log.checkpoint_now()


def lines(report: Any) -> list[str]:
    return [f.to_line() for f in report.findings]


def test_every_shard_and_its_anchors_verify_from_the_database_url(
    logs: dict[str, AuditLog], pg_database_url: str
) -> None:
    fill(logs)
    report = verify_log(pg_database_url, TRUSTED, open_db=postgres_reader)
    assert report.exit_code == ExitCode.VERIFIED, lines(report)
    anchored = {f.source for f in report.findings if "anchors of this shard" in f.message}
    assert anchored == {A, B}
    assert report.entries_checked == logs[A].size + logs[B].size
    # the command line, as an auditor runs it
    assert main(["log", "--db", pg_database_url, "--key", KEY.vkey], open_db=postgres_reader) == 0
    # the standalone verifier carries no database driver: it says where to go instead
    alone = verify_log(pg_database_url, TRUSTED)
    assert alone.exit_code == ExitCode.UNUSABLE
    assert any("clearance audit verify --db URL" in line for line in lines(alone))


def test_a_shard_deleted_from_the_database_is_reported(
    logs: dict[str, AuditLog], pg_database_url: str, pg_admin: Any
) -> None:
    import psycopg

    fill(logs)
    state = verify_log(pg_database_url, TRUSTED, open_db=postgres_reader).state
    with psycopg.connect(pg_database_url, autocommit=True) as conn:
        for table in ("audit_payload", "audit_checkpoint", "audit_entry", "audit_shard"):
            conn.execute(f"DELETE FROM {table} WHERE origin = %s", (B,))
    report = verify_log(pg_database_url, TRUSTED, open_db=postgres_reader)
    assert report.exit_code == ExitCode.TAMPERED
    assert any("not in the store" in line and B in line for line in lines(report))
    # with the saved state, the vanished shard is named as such too
    again = verify_log(pg_database_url, TRUSTED, state=state, open_db=postgres_reader)
    assert any("gone from the store" in line for line in lines(again))


def test_verifying_while_replicas_append_sees_one_consistent_snapshot(
    logs: dict[str, AuditLog], pg_database_url: str
) -> None:
    fill(logs, rounds=1)
    stop = threading.Event()

    def append(log: AuditLog) -> None:
        n = 0
        while not stop.is_set():
            log.append("decision", decision_fields(n), decision_payload(n))
            n += 1

    writers = [threading.Thread(target=append, args=(log,)) for log in logs.values()]
    for w in writers:
        w.start()
    try:
        for _ in range(5):
            report = verify_log(pg_database_url, TRUSTED, open_db=postgres_reader)
            assert report.exit_code == ExitCode.VERIFIED, lines(report)
    finally:
        stop.set()
        for w in writers:
            w.join()


def test_an_unreachable_database_is_unusable_input_and_hides_the_password() -> None:
    report = verify_log(
        "postgresql://auditor:hunter2@127.0.0.1:1/clearance", TRUSTED, open_db=postgres_reader
    )
    assert report.exit_code == ExitCode.UNUSABLE
    assert not any("hunter2" in line for line in lines(report))
    assert any("auditor:***@127.0.0.1:1" in line for line in lines(report))


def test_jobs_on_a_postgres_store_verify_in_one_snapshot_and_say_so(
    logs: dict[str, AuditLog], pg_database_url: str
) -> None:
    """Workers read SQLite files only; a PostgreSQL store is verified alike by this process."""
    fill(logs)
    one = verify_log(pg_database_url, TRUSTED, open_db=postgres_reader)
    two = verify_log(pg_database_url, TRUSTED, open_db=postgres_reader, jobs=2)
    assert two.exit_code == ExitCode.VERIFIED, lines(two)
    [note] = [f for f in two.findings if "--jobs" in f.message]
    assert "one snapshot" in note.message
    assert [f for f in two.findings if f is not note] == one.findings
    assert two.entries_checked == one.entries_checked
