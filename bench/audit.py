"""Audit path benchmark: appender vs raw SQLite with the same commit pattern; verifier speed.

Run: ``python bench/audit.py [--entries N]``. Prints ratios from one run; figures depend on the
machine and its load, so they belong in notes, never in assertions. Each measurement checks its
own result (entries dense and verifying) so a fast wrong answer cannot pass as a fast right one.
``cpu/e`` is the process's CPU time (user + system) per entry: on a shared machine whose disk and
cores are busy it moves far less than the rates, so it is the column to compare between runs.

* appender: ``AuditLog.append`` from 1/8/32/128 threads, durable (WAL, synchronous=FULL);
  "signed" adds the receipt signature each caller makes after its entry commits.
* raw SQLite: the exact rows the appender committed, replayed with the same batch boundaries and
  statements (BEGIN IMMEDIATE, entry rows, payload rows, head update, COMMIT) from one thread:
  the physical limit of this commit pattern.
* verifier: ``verify_log`` over the store, entries per second, in one process and with two worker
  processes, against the floor of reading the same rows and hashing each leaf.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clearance.audit.log import AuditLog
from clearance.audit.sign import AuditKey
from clearance.audit.testing import DEPLOYMENT, ORIGIN, StepClock, decision_fields, decision_payload
from clearance.audit.verify.verify import verify_log
from clearance.formats.canonical import ACCELERATOR
from clearance.formats.note import VerifierKey
from clearance.formats.receipt import build_statement
from clearance.store.audit_sqlite import SCHEMA, SQLiteAuditStorage

KEY = AuditKey(DEPLOYMENT, b"b" * 32)


class RecordingStorage(SQLiteAuditStorage):
    """The real storage, remembering where each committed batch ends, for the raw replay.

    Only the boundaries and the head are kept during the run; the rows are read back from the
    database afterwards (``committed_batches``). Keeping every batch's rows alive during the run
    would grow the heap by about a kilobyte per entry and charge the appender page faults that a
    gate, which frees them, does not pay.
    """

    batches: list[tuple[Any, ...]]

    def commit_batch(self, origin: str, **kw: Any) -> None:
        super().commit_batch(origin, **kw)
        self.batches.append((kw["old_size"], len(kw["entries"]), kw["head"], kw["checkpoint"]))


def committed_batches(storage: RecordingStorage) -> list[tuple[Any, ...]]:
    """``(old_size, head, entries, payloads, checkpoint)`` per batch with entries, as committed."""
    conn = sqlite3.connect(storage.path)
    entries = conn.execute(
        "SELECT idx, leaf_hash, header, retain_until FROM audit_entry WHERE origin = ?"
        " ORDER BY idx",
        (ORIGIN,),
    ).fetchall()
    payloads = {
        row[0]: row
        for row in conn.execute(
            "SELECT idx, salt, body, enc FROM audit_payload WHERE origin = ?", (ORIGIN,)
        )
    }
    conn.close()
    out = []
    for old, count, head, checkpoint in storage.batches:
        if count:
            rows = entries[old : old + count]
            assert [r[0] for r in rows] == list(range(old, old + count)), "entries must be dense"
            batch_payloads = [payloads[r[0]] for r in rows if r[0] in payloads]
            out.append((old, head, rows, batch_payloads, checkpoint))
    return out


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_appender(
    directory: Path, threads: int, total: int, *, sign: bool
) -> tuple[float, float, RecordingStorage]:
    storage = RecordingStorage(directory / "clearance.db")
    storage.batches = []
    log = AuditLog(storage, KEY, ORIGIN, StepClock(datetime(2026, 3, 1, tzinfo=UTC)))
    per = max(total // threads, 1)
    fields = [decision_fields(i) for i in range(per)]
    payload = decision_payload(1)
    indexes: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        mine = []
        for f in fields:
            e = log.append("decision", f, payload)
            if sign:
                KEY.sign_receipt(
                    build_statement(
                        log=e.log,
                        index=e.index,
                        leaf=e.leaf_hash,
                        decision_id=f["decision_id"],
                        request_digest=f["request_digest"],
                        policy=f["policy"],
                        outcome="PERMIT",
                        rule=f["rule"],
                        shadow=False,
                        time=e.time,
                    )
                )
            mine.append(e.index)
        with lock:
            indexes.extend(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    cpu = _cpu()
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    cpu = _cpu() - cpu
    log.checkpoint_now()
    log.close()
    assert sorted(indexes) == list(range(1, per * threads + 1)), "indexes must be dense and unique"
    return per * threads / elapsed, cpu / (per * threads), storage


def run_raw(directory: Path, batches: list[tuple[Any, ...]]) -> tuple[float, float]:
    """Replay the appender's batches with plain sqlite3 (same bytes, same statements, same commits)."""
    conn = sqlite3.connect(directory / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(SCHEMA)
    conn.execute(
        "INSERT INTO audit_shard (origin, replica, period, vkey, created_at) VALUES (?, 'n', 'p', 'k', 't')",
        (ORIGIN,),
    )
    rows = 0
    cpu = _cpu()
    start = time.perf_counter()
    for _old, head, entries, payloads, checkpoint in batches:
        conn.execute("BEGIN IMMEDIATE")
        if entries:
            conn.execute(
                "INSERT INTO audit_entry (origin, idx, leaf_hash, header, retain_until) VALUES "
                + ",".join(["(?,?,?,?,?)"] * len(entries)),
                [v for e in entries for v in (ORIGIN, *e)],
            )
        if payloads:
            conn.execute(
                "INSERT INTO audit_payload (origin, idx, salt, body, enc) VALUES "
                + ",".join(["(?,?,?,?,?)"] * len(payloads)),
                [v for p in payloads for v in (ORIGIN, *p)],
            )
        conn.execute(
            "UPDATE audit_shard SET size = ?, head = ?, compact = ? WHERE origin = ?",
            (head[0], head[1], head[2], ORIGIN),
        )
        if checkpoint is not None:
            conn.execute(
                "INSERT INTO audit_checkpoint (origin, size, root, note, created_at) VALUES (?, ?, ?, ?, ?)",
                (ORIGIN, *checkpoint),
            )
        conn.execute("COMMIT")
        rows += len(entries)
    elapsed = time.perf_counter() - start
    cpu = _cpu() - cpu
    assert conn.execute("SELECT count(*) FROM audit_entry").fetchone()[0] == rows
    conn.close()
    return rows / elapsed, cpu / rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=8000)
    args = parser.parse_args()
    print(
        f"{'threads':>7} {'append/s':>9} {'cpu/e us':>8} {'raw/s':>9} {'cpu/e us':>8} {'ratio':>6}"
        f" {'batch':>6} {'signed/s':>9} {'cpu/e us':>8}"
    )
    for threads in (1, 8, 32, 128):
        total = min(args.entries, 2000) if threads == 1 else args.entries
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            rate, cpu, storage = run_appender(Path(a), threads, total, sign=False)
            batches = committed_batches(storage)
            storage.close()
            raw, raw_cpu = run_raw(Path(a), batches)
            signed, signed_cpu, signed_storage = run_appender(Path(b), threads, total, sign=True)
            signed_storage.close()
            mean_batch = sum(len(x[2]) for x in batches) / len(batches)
            print(
                f"{threads:>7} {rate:>9.0f} {cpu * 1e6:>8.0f} {raw:>9.0f} {raw_cpu * 1e6:>8.0f}"
                f" {rate / raw:>6.2f} {mean_batch:>6.1f} {signed:>9.0f} {signed_cpu * 1e6:>8.0f}"
            )
    run_verifier(max(args.entries, 20000))


# -- verifier ---------------------------------------------------------------------------------

_ROWS = (
    "SELECT e.idx, e.leaf_hash, e.header, p.salt, p.body FROM audit_entry e"
    " LEFT JOIN audit_payload p ON p.origin = e.origin AND p.idx = e.idx"
    " WHERE e.origin = ? ORDER BY e.idx"
)


def _cpu_all() -> float:
    """CPU of this process and of its reaped children (the verifier's worker processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_read_and_hash(db: Path) -> tuple[float, float, int]:
    """The floor of any verifier: read every row the verifier reads and hash each leaf."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    cpu = _cpu_all()
    start = time.perf_counter()
    n = 0
    for _idx, leaf, header, _salt, _body in conn.execute(_ROWS, (ORIGIN,)):
        assert hashlib.sha256(b"\x00" + header).digest() == leaf
        n += 1
    elapsed = time.perf_counter() - start
    cpu = _cpu_all() - cpu
    conn.close()
    return n / elapsed, cpu / n, n


def run_verify(db: Path, jobs: int) -> tuple[float, float, int]:
    """``verify_log`` over the store with ``jobs`` worker processes; it must verify."""
    cpu = _cpu_all()
    start = time.perf_counter()
    report = verify_log(db, [VerifierKey.parse(KEY.vkey)], jobs=jobs)
    elapsed = time.perf_counter() - start
    cpu = _cpu_all() - cpu
    assert report.exit_code == 0, [f.to_line() for f in report.findings]
    n = report.entries_checked
    return n / elapsed, cpu / n, n


def run_verifier(entries: int, rounds: int = 3) -> None:
    """Verifier ``log`` entries per second, as ratios to the read-and-hash floor of the same store.

    Rounds interleave the three measurements and each keeps its best, so a burst of load from
    other processes hurts all three alike. ``cpu/e`` counts the worker processes too.
    """
    with tempfile.TemporaryDirectory() as d:
        _, _, storage = run_appender(Path(d), 32, entries, sign=False)
        storage.close()
        db = Path(d) / "clearance.db"
        best: dict[str, tuple[float, float, int]] = {}
        runs: dict[str, Callable[[], tuple[float, float, int]]] = {
            "read+hash": lambda: run_read_and_hash(db),
            "verify": lambda: run_verify(db, 1),
            "verify -j2": lambda: run_verify(db, 2),
        }
        for _ in range(rounds):
            for name, run in runs.items():
                rate, cpu, n = run()
                if name not in best or rate > best[name][0]:
                    best[name] = (rate, cpu, n)
        floor = best["read+hash"][0]
        print(f"\nverifier log, {best['verify'][2]} entries, accelerator: {ACCELERATOR}")
        print(f"{'':>12} {'entries/s':>10} {'cpu/e us':>8} {'x floor':>7}")
        for name, (rate, cpu, _n) in best.items():
            print(f"{name:>12} {rate:>10.0f} {cpu * 1e6:>8.1f} {rate / floor:>7.2f}")
        print(f"two workers / one process: {best['verify -j2'][0] / best['verify'][0]:.2f}")


if __name__ == "__main__":
    main()
