"""Row checks in worker processes, for auditors verifying large stores on several cores.

The verifier runs offline, so it may use every core the auditor gives it (``--jobs``). Only the
per-row checks (``entries.check_rows``: leaf hash, canonical header, position, payload commitment,
about nine tenths of the work) move to workers; the rows are still read by the parent inside its
one snapshot, and the links between entries are still checked by the parent, in order. So the
findings are the ones a single process reports, in the same order.

Workers are forked when this process runs no other thread (the command line: cheap, nothing is
imported again) and spawned otherwise: forking a threaded process, such as a server running the
gate's scheduled check, can copy a lock another thread holds into the child. At most
``2 * jobs`` batches are in flight, so memory stays flat on a store of any size.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from clearance.audit.verify.entries import Checked, Row, check_rows


class WorkerError(Exception):
    """A worker process died or could not be started; the message says which and why."""


def parallel_batches(
    origin: str, batches: Iterable[list[Row]], jobs: int
) -> Iterator[tuple[list[Row], list[Checked]]]:
    """``(batch, check_rows(origin, batch))`` for each batch, in order, computed by ``jobs`` workers.

    Closing the iterator early (the replay stops at the first broken link) cancels what is queued.
    """
    try:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=_context())
    except (OSError, ValueError) as exc:
        raise WorkerError(f"cannot start {jobs} verification workers: {exc}") from exc
    pending: deque[tuple[list[Row], Future[list[Checked]]]] = deque()
    try:
        for batch in batches:
            pending.append((batch, pool.submit(check_rows, origin, batch)))
            if len(pending) > 2 * jobs:
                yield _result(*pending.popleft())
        while pending:
            yield _result(*pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _context() -> multiprocessing.context.BaseContext:
    single = threading.active_count() == 1
    fork = single and "fork" in multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if fork else "spawn")


def _result(batch: list[Row], future: Future[list[Checked]]) -> tuple[list[Row], list[Checked]]:
    try:
        return batch, future.result()
    except (BrokenProcessPool, OSError) as exc:
        raise WorkerError(f"a verification worker failed: {exc}") from exc
