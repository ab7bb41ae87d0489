"""Tear down finished jobs on a background thread, off the caller's path.

Removing a job's traces (unmounting its output tmpfs, deleting its directory, removing its
cgroups, releasing its uid) takes milliseconds of kernel and file-system work that the caller
does not need to wait for: by the time a teardown is handed here, the runner has already killed
every process of the job and seen its cgroup empty, so nothing of the job can run, and the job's
directory is reachable by no other job (each sandbox mounts only its own directory; the uid is
not reused until the teardown has run, since releasing it is the teardown's last step).

Guarantees:

* every submitted teardown runs exactly once, in submission order;
* :meth:`Reaper.drain` returns only when every teardown submitted before it has finished, and
  raises :class:`SandboxError` naming the jobs whose teardown failed;
* the worker is a non-daemon thread that exits when the queue is empty, so a process that
  finishes normally waits for pending teardowns instead of leaking them.

::

    reaper = Reaper()
    reaper.submit("job-1", teardown)     # returns at once
    reaper.drain()                       # every teardown so far has run (or raises)
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from clearance.errors import SandboxError

_log = logging.getLogger(__name__)


class Reaper:
    """A queue of job teardowns and the one worker thread that runs them."""

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[str, Callable[[], None]]] = collections.deque()
        self._pending: collections.Counter[str] = collections.Counter()
        self._failures: list[str] = []
        self._holds = 0
        self._worker: threading.Thread | None = None
        self._cond = threading.Condition()

    def submit(self, job_id: str, teardown: Callable[[], None]) -> None:
        """Queue ``teardown`` for job ``job_id``; it runs on the worker thread soon after."""
        with self._cond:
            self._queue.append((job_id, teardown))
            self._pending[job_id] += 1
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name="clearance-sandbox-reaper", daemon=False
                )
                self._worker.start()
            self._cond.notify_all()

    def pending(self) -> list[str]:
        """Ids of the jobs whose teardown has not finished yet."""
        with self._cond:
            return sorted(self._pending)

    def wait(self, job_id: str, timeout: float | None = None) -> bool:
        """Wait until job ``job_id`` has no teardown pending; ``False`` on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: job_id not in self._pending, timeout)

    def drain(self, timeout: float | None = None) -> None:
        """Wait until every queued teardown has run.

        Raises:
            SandboxError: the wait timed out, or some teardown failed (its job left something
                behind); the message names the jobs.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: not self._pending, timeout):
                raise SandboxError(
                    f"teardown of jobs {sorted(self._pending)} did not finish in {timeout} s",
                    hint="a job process may be stuck in the kernel; check its cgroup",
                )
            failures, self._failures = self._failures, []
        if failures:
            raise SandboxError(
                "teardown left traces behind: " + "; ".join(failures),
                hint="they are removed when the next sandbox starts in this work directory",
            )

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep finished jobs' traces while the block runs, e.g. to inspect them; then reap."""
        with self._cond:
            self._holds += 1
        try:
            yield
        finally:
            with self._cond:
                self._holds -= 1
                self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: not self._holds)
                if not self._queue:
                    self._worker = None  # the next submit starts a new worker
                    return
                job_id, teardown = self._queue.popleft()
            try:
                teardown()
            except Exception as exc:  # noqa: BLE001 - one failed teardown must not stop the rest
                _log.warning("sandbox teardown of job %s failed: %s", job_id, exc)
                with self._cond:
                    self._failures.append(f"{job_id}: {exc}")
            with self._cond:
                self._pending[job_id] -= 1
                if self._pending[job_id] <= 0:
                    del self._pending[job_id]
                self._cond.notify_all()
