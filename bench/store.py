"""Durable writes per second: SQLite vs PostgreSQL, threads vs replica processes, vs raw COPY.

    python bench/store.py [--seconds S] [--pg postgresql://postgres@127.0.0.1:5432/test]

Everything in one run, on one machine, so the ratios mean something:

1. ``record_decision`` per second at 1, 8 and 64 threads on SQLite (WAL, ``synchronous`` NORMAL
   as the embedded default, and FULL) and on PostgreSQL (``synchronous_commit = on``). Each call
   is what the gate writes for one decision with an idempotency key: the idempotency row, the
   decision row and the call counter, in one transaction. Every call is checked (it must win its
   fresh key). Each thread works in its own session, as separate agents would.
2. The same on PostgreSQL from 1, 2 and 3 replica *processes* sharing 64 client threads.
3. The limit: the same rows written by one ``COPY`` per table in one transaction (PostgreSQL) and
   by ``executemany`` in one transaction (SQLite).
4. The audit appender (``AuditLog``, group commit) per replica at 64 threads on PostgreSQL and
   SQLite, against a raw ``COPY`` of the same entry and payload rows.

For PostgreSQL it also reports server and client CPU per write (from ``/proc``) and WAL flushes
per write (``pg_stat_wal``), which says whether a run was bound by CPU or by fsync.
Figures go in the issue note, never in assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from clearance.model.session import Environment, Session
from clearance.store.protocol import DecisionRecord, IdempotencyRecord, Store

CLK = os.sysconf("SC_CLK_TCK")
T = "2026-03-01T12:00:00.000000Z"
POLICY = "sha256:" + "ab" * 32


# workload -----------------------------------------------------------------------------------------
def decision_rows(tag: str, n: int) -> tuple[DecisionRecord, IdempotencyRecord]:
    decision_id = f"{tag}-{n:09d}"
    decision = {"outcome": "PERMIT", "rule": "reads", "decision_id": decision_id, "policy": POLICY}
    record = DecisionRecord(
        decision_id=decision_id,
        request={
            "agent_id": f"agent-{tag}",
            "session_id": f"ses_{tag}",
            "tool": "payments.refund",
            "action": "call",
            "args": {"order": n, "amount": 1250, "currency": "EUR", "reason": "duplicate charge"},
        },
        facts={"session": {"task": "refunds", "environment": "production", "taint": []}},
        decision=decision,
        policy=POLICY,
        created_at=T,
    )
    idem = IdempotencyRecord(
        agent_id=f"agent-{tag}",
        key=f"key-{n}",
        digest="sha256:" + "cd" * 32,
        decision_id=decision_id,
        decision=decision,
        created_at=T,
    )
    return record, idem


def open_sessions(store: Store, tags: list[str]) -> None:
    for tag in tags:
        store.open_session(
            Session(
                session_id=f"ses_{tag}",
                agent_id=f"agent-{tag}",
                task="refunds",
                environment=Environment.PRODUCTION,
                opened_at=T,
            )
        )


def hammer(store: Store, tags: list[str], seconds: float, start: float | None = None) -> int:
    """Run one thread per tag for ``seconds``; return how many decisions were recorded."""
    counts = [0] * len(tags)
    errors: list[BaseException] = []
    begin = threading.Barrier(len(tags) + 1)
    stop = threading.Event()

    def work(i: int) -> None:
        tag = tags[i]
        begin.wait()
        n = 0
        try:
            while not stop.is_set():
                record, idem = decision_rows(tag, n)
                won = store.record_decision(
                    record,
                    session_id=f"ses_{tag}",
                    tool="payments.refund",
                    count_call=True,
                    idempotency=idem,
                )
                if won is not None:
                    raise AssertionError(f"fresh key {idem.key} lost to {won.decision_id}")
                n += 1
        except BaseException as exc:
            errors.append(exc)
        counts[i] = n

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(tags))]
    for thread in threads:
        thread.start()
    if start is not None:
        time.sleep(max(0.0, start - time.time()))
    begin.wait()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(counts)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# PostgreSQL helpers -------------------------------------------------------------------------------
def admin(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin(url, f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"
    finally:
        admin(url, f"DROP SCHEMA {schema} CASCADE")


def server_cpu() -> float:
    """CPU seconds used so far by every postgres process (what /proc shows for them)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)
            with open(f"/proc/{pid}/comm") as f:
                if "postgres" not in f.read():
                    continue
        except OSError:
            continue
        parts = fields[1].split()
        total += int(parts[11]) + int(parts[12])
    return total / CLK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / CLK, sum(fields) / CLK


def wal_syncs(url: str) -> int:
    return int(admin(url, "SELECT wal_sync FROM pg_stat_wal")[0][0])


class Meter:
    """Server CPU, client CPU and WAL flushes over a measured section."""

    def __init__(self, url: str | None) -> None:
        self.url = url

    def __enter__(self) -> Meter:
        self.t0 = time.perf_counter()
        self.client0 = sum(os.times()[:4])
        self.server0 = server_cpu() if self.url else 0.0
        self.wal0 = wal_syncs(self.url) if self.url else 0
        self.busy0 = machine_busy()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.t0
        self.client = sum(os.times()[:4]) - self.client0
        self.server = (server_cpu() - self.server0) if self.url else 0.0
        self.wal = (wal_syncs(self.url) - self.wal0) if self.url else 0
        busy, total = machine_busy()
        self.busy = (busy - self.busy0[0]) / max(total - self.busy0[1], 1e-9)

    def line(self, n: int) -> str:
        rate = n / self.elapsed
        text = f"{rate:9.0f}/s   machine cpu {100 * self.busy:3.0f}%"
        if self.url:
            text += (
                f"   cpu/write: server {1e6 * self.server / n:6.0f} us, client "
                f"{1e6 * self.client / n:6.0f} us   wal flushes/write {self.wal / n:.2f}"
            )
        return text


# 1. threads ---------------------------------------------------------------------------------------
def bench_threads(
    label: str, make: Callable[[], Store], url: str | None, seconds: float
) -> dict[int, float]:
    rates = {}
    for threads in (1, 8, 64):
        store = make()
        tags = [f"t{threads}x{i}" for i in range(threads)]
        open_sessions(store, tags)
        with Meter(url) as meter:
            n = hammer(store, tags, seconds)
        store.close()
        rates[threads] = n / meter.elapsed
        print(f"  {label:<22} {threads:>2} threads {meter.line(n)}")
    return rates


# 2. replica processes -----------------------------------------------------------------------------
def child(url: str, tags: list[str], seconds: float, start: float) -> None:
    from clearance.store.postgres import PostgresStore

    store = PostgresStore(url, max_size=min(len(tags), 20))
    open_sessions(store, tags)
    cpu0 = sum(os.times()[:2])
    n = hammer(store, tags, seconds, start=start)
    cpu = sum(os.times()[:2]) - cpu0
    store.close()
    print(json.dumps({"n": n, "cpu": cpu}))


def bench_replicas(url: str, seconds: float, clients: int = 64) -> dict[int, float]:
    rates = {}
    for replicas in (1, 2, 3):
        start = time.time() + 2.0
        procs = []
        for r in range(replicas):
            tags = [f"r{replicas}p{r}c{i}" for i in range(r, clients, replicas)]
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        url,
                        "--seconds",
                        str(seconds),
                        "--start",
                        str(start),
                        "--tags",
                        ",".join(tags),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        time.sleep(max(0.0, start - time.time()))
        wal0, busy0 = wal_syncs(url), machine_busy()
        time.sleep(seconds)
        wal, busy1 = wal_syncs(url) - wal0, machine_busy()
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        n = sum(o["n"] for o in outs)
        client = sum(o["cpu"] for o in outs)
        busy = (busy1[0] - busy0[0]) / (busy1[1] - busy0[1])
        rates[replicas] = n / seconds
        print(
            f"  postgres {replicas} replica(s), {clients} clients {n / seconds:9.0f}/s   "
            f"machine cpu {100 * busy:3.0f}%   client cpu/write {1e6 * client / n:4.0f} us   "
            f"wal flushes/write {wal / n:.2f}"
        )
    return rates


# 3. the limit: raw bulk writes of the same rows ---------------------------------------------------
def bench_copy_pg(url: str, n: int) -> float:
    import psycopg

    rows = [decision_rows("copy", i) for i in range(n)]
    with psycopg.connect(url) as conn, Meter(url) as meter:
        with conn.cursor() as cur:
            with cur.copy(
                "COPY idempotency (agent_id, key, digest, decision_id, decision, created_at) FROM STDIN"
            ) as cp:
                for _, idem in rows:
                    cp.write_row(
                        (
                            idem.agent_id,
                            idem.key,
                            idem.digest,
                            idem.decision_id,
                            dumps(idem.decision),
                            idem.created_at,
                        )
                    )
            with cur.copy(
                "COPY decisions (decision_id, session_id, agent_id, policy, request, facts, decision, created_at) FROM STDIN"
            ) as cp:
                for record, _ in rows:
                    cp.write_row(
                        (
                            record.decision_id,
                            "ses_copy",
                            "agent-copy",
                            record.policy,
                            dumps(record.request),
                            dumps(record.facts),
                            dumps(record.decision),
                            record.created_at,
                        )
                    )
            cur.execute(
                "INSERT INTO session_calls (session_id, tool, n) VALUES ('ses_copy', 'payments.refund', %s)",
                (n,),
            )
        conn.commit()
    print(f"  postgres COPY, one transaction    {meter.line(n)}")
    return n / meter.elapsed


def bench_copy_sqlite(path: Path, n: int) -> float:
    import sqlite3

    rows = [decision_rows("copy", i) for i in range(n)]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = FULL")
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO idempotency VALUES (?,?,?,?,?,?)",
        [
            (i.agent_id, i.key, i.digest, i.decision_id, dumps(i.decision), i.created_at)
            for _, i in rows
        ],
    )
    conn.executemany(
        "INSERT INTO decisions VALUES (?,?,?,?,?,?,?,?)",
        [
            (
                r.decision_id,
                "ses_copy",
                "agent-copy",
                r.policy,
                dumps(r.request),
                dumps(r.facts),
                dumps(r.decision),
                r.created_at,
            )
            for r, _ in rows
        ],
    )
    conn.execute("INSERT INTO session_calls VALUES ('ses_copy', 'payments.refund', ?)", (n,))
    conn.execute("COMMIT")
    rate = n / (time.perf_counter() - t0)
    conn.close()
    print(f"  sqlite executemany, one transaction {rate:9.0f}/s")
    return rate


# 4. the audit appender ----------------------------------------------------------------------------
def bench_audit(
    label: str, storage: Any, url: str | None, seconds: float, threads: int = 64
) -> list[tuple[Any, ...]]:
    from clearance.audit.log import AuditLog
    from clearance.audit.sign import AuditKey

    key = AuditKey("bench.example/audit", bytes(32))
    origin = f"bench.example/audit/r-{uuid.uuid4().hex[:8]}/2026"
    log = AuditLog(storage, key, origin, lambda: datetime.now(UTC))
    stop = threading.Event()
    counts = [0] * threads

    def work(i: int) -> None:
        n = 0
        while not stop.is_set():
            entry = log.append(
                "decision",
                {
                    "decision_id": f"01J{i:05d}{n:018d}",
                    "outcome": "PERMIT",
                    "tool": "payments.refund",
                    "policy": POLICY,
                    "request_digest": "sha256:" + "cd" * 32,
                    "rule": "reads",
                },
                {"agent_id": f"agent-{i}", "args": {"order": n, "amount": 1250}},
            )
            if entry.log != origin:
                raise AssertionError(entry)
            n += 1
        counts[i] = n

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    with Meter(url) as meter:
        for w in workers:
            w.start()
        time.sleep(seconds)
        stop.set()
        for w in workers:
            w.join()
    log.close()
    n = sum(counts)
    print(f"  {label:<34}{meter.line(n)}")
    rows = storage.entries(origin, 1, log.size)
    return [(origin, *r) for r in rows]


def bench_audit_copy(url: str, rows: list[tuple[Any, ...]]) -> None:
    import psycopg

    with psycopg.connect(url) as conn, Meter(url) as meter:
        conn.execute("DELETE FROM audit_entry")
        conn.execute("DELETE FROM audit_payload")
        with conn.cursor() as cur:
            with cur.copy(
                "COPY audit_entry (origin, idx, leaf_hash, header, retain_until) FROM STDIN"
            ) as cp:
                for origin, idx, lh, header, _, _ in rows:
                    cp.write_row((origin, idx, lh, header, "2026-09-01"))
            with cur.copy("COPY audit_payload (origin, idx, salt, body, enc) FROM STDIN") as cp:
                for origin, idx, _, _, salt, body in rows:
                    if body is not None:
                        cp.write_row((origin, idx, salt, body, "none"))
        conn.commit()
    print(f"  postgres COPY of the same entries {meter.line(len(rows))}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--child")
    parser.add_argument("--tags", default="")
    parser.add_argument("--start", type=float, default=0.0)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.tags.split(","), args.seconds, args.start)
        return

    from clearance.store.audit_postgres import PostgresAuditStorage
    from clearance.store.audit_sqlite import SQLiteAuditStorage
    from clearance.store.postgres import PostgresStore
    from clearance.store.sqlite import SQLiteStore

    print(f"{os.cpu_count()} CPUs, {args.seconds:.0f} s per measurement")
    with tempfile.TemporaryDirectory() as tmp, pg_schema(args.pg) as url:
        PostgresStore(url).migrate()
        print("1. record_decision (idempotency + decision + call count, one transaction)")
        for sync in ("NORMAL", "FULL"):
            path = Path(tmp) / f"bench-{sync}.db"

            def make_sqlite(path: Path = path, sync: str = sync) -> Store:
                store = SQLiteStore(path, synchronous=sync)
                store.migrate()
                return store

            bench_threads(f"sqlite {sync}", make_sqlite, None, args.seconds)
        bench_threads("postgres", lambda: PostgresStore(url, max_size=20), url, args.seconds)

        print("2. PostgreSQL replicas (processes) sharing 64 client threads")
        bench_replicas(url, args.seconds)

        print("3. the limit: the same rows in bulk")
        bench_copy_pg(url, 20000)
        sqlite_copy = SQLiteStore(Path(tmp) / "copy.db")
        sqlite_copy.migrate()
        sqlite_copy.close()
        bench_copy_sqlite(Path(tmp) / "copy.db", 20000)

        print("4. audit appender (group commit), one replica, 64 threads")
        sqlite_audit = SQLiteAuditStorage(Path(tmp) / "audit.db")
        bench_audit("sqlite appender (FULL)", sqlite_audit, None, args.seconds)
        sqlite_audit.close()
        pg_store = PostgresStore(url)
        pg_audit = PostgresAuditStorage(pg_store)
        rows = bench_audit("postgres appender", pg_audit, url, args.seconds)
        pg_audit.close()
        pg_store.close()
        bench_audit_copy(url, rows)


if __name__ == "__main__":
    main()
