"""Scheduled, incremental integrity check inside the gate process (AUDIT.md 3.9).

Example::

    >>> monitor = IntegrityMonitor(db_path, keys, state_path, on_failure=alerts.audit_failed)  # doctest: +SKIP
    >>> monitor.start()             # every 5 minutes; monitor.stop() on shutdown              # doctest: +SKIP

Each run verifies only what was appended since the last verified checkpoint, using the same
verifier an auditor runs (``clearance.audit.verify``) and a state file that should live outside
the database. A run that finds tampering or cannot read the store increments
``failures_total`` (exported as ``clearance_audit_verify_failures_total``) and calls
``on_failure`` with the report; the state is then not advanced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from clearance.audit.verify.errors import ExitCode, Severity
from clearance.audit.verify.verify import Report, load_state, save_state, verify_log
from clearance.formats.note import VerifierKey

DEFAULT_INTERVAL_S = 300.0


class IntegrityMonitor:
    """Runs ``verify_log`` incrementally on a schedule and reports failures."""

    def __init__(
        self,
        db_path: str | Path,
        keys: Sequence[VerifierKey],
        state_path: str | Path,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        on_failure: Callable[[Report], None] | None = None,
    ) -> None:
        self._db = Path(db_path)
        self._keys = list(keys)
        self._state_path = Path(state_path)
        self._interval = interval_s
        self._on_failure = on_failure
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures_total = 0
        self.runs_total = 0
        self.last_report: Report | None = None

    def run_once(self) -> Report:
        """One incremental check; advances the state file only when nothing failed."""
        try:
            state = load_state(self._state_path)
        except (OSError, ValueError) as exc:
            report = Report()
            report.add(
                Severity.UNUSABLE, f"cannot read the monitor state: {exc}", str(self._state_path)
            )
        else:
            report = verify_log(self._db, self._keys, state=state)
            if report.state is not None and report.exit_code in (
                ExitCode.VERIFIED,
                ExitCode.INSUFFICIENT,
            ):
                save_state(self._state_path, report.state)
        self.runs_total += 1
        self.last_report = report
        if report.exit_code in (ExitCode.TAMPERED, ExitCode.UNUSABLE):
            self.failures_total += 1
            if self._on_failure is not None:
                self._on_failure(report)
        return report

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()

    def start(self) -> None:
        """Start the background schedule (first run after one interval)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="audit-monitor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the schedule and wait for a running check to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
