"""Ranges of a SQLite store checked in worker processes, for auditors verifying large stores.

The verifier runs offline, so it may use every core the auditor gives it (``--jobs``). Each
worker opens the store read-only itself and reads and checks whole index ranges
(``ranges.replay_range``): the rows never pass through the parent, which only joins the ranges
in order (``shard.py``). The findings are the ones a single process reports, in the same order.

Snapshots. Each worker reads inside one read transaction that it starts when it comes up, and
``WorkerPool`` returns only once every worker holds its snapshot; the caller then starts its own.
The caller cuts the worker ranges below a size it read *before* starting the pool, and reads
everything else (checkpoints, the shard head, entries beyond the ranges) in its own, later
snapshot. So nothing a worker saw is newer than what the caller sees: while a gate appends and
prunes, a payload a worker finds deleted was deleted before the caller's snapshot, and the prune
entry the pruner appends *before* deleting is in the caller's snapshot or in a worker range.

Workers are forked when this process runs no other thread (the command line: cheap, nothing is
imported again) and spawned otherwise: forking a threaded process, such as a server running the
gate's scheduled check, can copy a lock another thread holds into the child.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from clearance.audit.verify.ranges import (
    ROWS_BELOW,
    UNKNOWN_PREV,
    RangeEnd,
    Recording,
    replay_range,
)
from clearance.formats.merkle import CompactRange

T = TypeVar("T")

#: Seconds to wait for the workers to open the store (they only connect and read one row).
START_TIMEOUT = 60.0


class WorkerError(Exception):
    """A worker process died or could not be started; the message says which and why."""


class WorkerPool:
    """``jobs`` worker processes, each holding a read snapshot of the SQLite store at ``path``."""

    def __init__(self, path: str, jobs: int) -> None:
        context = _context()
        ready = context.Semaphore(0)
        try:
            self._pool = ProcessPoolExecutor(
                max_workers=jobs,
                mp_context=context,
                initializer=_open_snapshot,
                initargs=(path, ready),
            )
            # Each submission starts a worker while none is idle; the workers are then all up.
            started = [self._pool.submit(_started) for _ in range(jobs)]
        except (OSError, ValueError, RuntimeError) as exc:
            raise WorkerError(f"cannot start {jobs} verification workers: {exc}") from exc
        for _ in range(jobs):
            if not ready.acquire(timeout=START_TIMEOUT):
                self.close()
                raise WorkerError(f"the verification workers did not start in {START_TIMEOUT} s")
        for future in started:
            result(future)

    def check(
        self,
        origin: str,
        start: int,
        end: int,
        sizes: Sequence[int],
        base: CompactRange | None = None,
        prev: bytes | None = None,
    ) -> Future[tuple[RangeEnd, Recording]]:
        """Check entries ``[start, end)`` in a worker; see ``check_range``."""
        return self._pool.submit(check_range, origin, start, end, sizes, base, prev)

    def close(self) -> None:
        """Stop the workers, dropping ranges not started yet."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def result(future: Future[T]) -> T:
    """A worker's answer; ``WorkerError`` when the worker failed."""
    try:
        return future.result()
    except (BrokenProcessPool, OSError, sqlite3.Error) as exc:
        raise WorkerError(f"a verification worker failed: {exc}") from exc


def _context() -> multiprocessing.context.BaseContext:
    single = threading.active_count() == 1
    fork = single and "fork" in multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if fork else "spawn")


# -- in the worker ------------------------------------------------------------------------------

_snapshot: sqlite3.Connection | None = None
_failure: Exception | None = None


def _open_snapshot(path: str, ready: Any) -> None:
    """Open the store read-only and start the worker's read snapshot (its first read does)."""
    global _snapshot, _failure  # one connection per worker process
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM audit_shard").fetchone()
        _snapshot = conn
    except sqlite3.Error as exc:
        _failure = exc  # raised by the first task, so the parent hears why
    finally:
        ready.release()


def _started() -> None:
    if _failure is not None:
        raise _failure


def check_range(
    origin: str,
    start: int,
    end: int,
    sizes: Sequence[int],
    base: CompactRange | None,
    prev: bytes | None,
) -> tuple[RangeEnd, Recording]:
    """Replay entries ``[start, end)`` of ``origin`` in this worker's snapshot.

    With ``base`` (the tree of the entries before ``start``) the link into the range is checked
    against ``prev`` and trees are the whole shard's; without it the parent checks that link and
    joins the range's tree onto its own.
    """
    if _snapshot is None:
        raise _failure or sqlite3.OperationalError("the worker has no store open")
    recording = Recording()
    rows = _snapshot.execute(ROWS_BELOW, (origin, start, end))
    done = replay_range(
        origin,
        rows,
        start,
        prev=UNKNOWN_PREV if base is None else prev,
        tree=CompactRange() if base is None else base,
        sizes=frozenset(sizes),
        sink=recording,
    )
    return done, recording
