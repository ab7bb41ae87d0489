"""Drift alerts: the gate decides with what was activated and runs with what was versioned.

Two silent ways for a deployment to stop being what its operators reviewed:

* **policy drift**: this process decides with a bundle digest other than the one the store names
  as active (a replica that missed an activation, a hand-edited store row, a stuck reload). One
  check may race a legitimate activation, so only a mismatch that persists for ``grace_checks``
  consecutive checks alerts, at critical severity: decisions are being made under a policy
  nobody activated.
* **configuration drift**: the settings this process runs with differ from the versioned settings
  file (edited since start, replaced, or no longer readable). A restart would change behaviour
  that nobody has seen running; the alert says which file and the two digests.

``DriftWatch.check`` does one round and returns what it found; ``Watchdog`` runs checks like it
(and the store probe of ``OutcomeMonitor.check_store``) on a background thread, so an idle gate
reports drift and a dead store too::

    watch = DriftWatch(alerts, clock=clock, running_policy=lambda: gate.bundle.digest,
                       active_policy=store.active_digest, running_config=digest,
                       versioned_config=lambda: settings_digest(load_settings(path)))
    dog = Watchdog([watch.check, lambda: monitor.check_store(store.ping)], interval_s=5.0)
    dog.start(); ...; dog.stop()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clearance.control.alerts import Alert, AlertRouter, Severity
from clearance.control.times import NowSource
from clearance.errors import ClearanceError
from clearance.formats.canonical import canonical_bytes, sha256_digest

log = logging.getLogger("clearance.control")

POLICY_DRIFT = "drift:policy"
CONFIG_DRIFT = "drift:config"


def settings_digest(settings: Any) -> str:
    """Digest of a pydantic settings object as it would run (JSON form, canonical bytes)."""
    return sha256_digest(canonical_bytes(settings.model_dump(mode="json")))


@dataclass(frozen=True, slots=True)
class Drift:
    """One drift found by a check."""

    key: str
    text: str


class DriftWatch:
    """Compares what runs with what was activated and versioned; alerts on lasting differences."""

    def __init__(
        self,
        alerts: AlertRouter,
        *,
        clock: NowSource,
        running_policy: Callable[[], str | None],
        active_policy: Callable[[], str | None],
        running_config: str | None = None,
        versioned_config: Callable[[], str] | None = None,
        config_source: str = "the settings file",
        grace_checks: int = 3,
    ) -> None:
        self._alerts = alerts
        self._clock = clock
        self._running_policy = running_policy
        self._active_policy = active_policy
        self._running_config = running_config
        self._versioned_config = versioned_config
        self._config_source = config_source
        self._grace = max(1, grace_checks)
        self._policy_misses = 0

    def check(self) -> list[Drift]:
        """One round of checks; alerts for each drift found (the router deduplicates)."""
        found = [d for d in (self._policy(), self._config()) if d is not None]
        now = self._clock.now()
        for drift in found:
            severity = Severity.CRITICAL if drift.key == POLICY_DRIFT else Severity.WARNING
            self._alerts.send(
                Alert(key=drift.key, severity=severity, title="drift", text=drift.text, at=now)
            )
        return found

    def _policy(self) -> Drift | None:
        running, active = self._running_policy(), self._active_policy()
        if running == active:
            self._policy_misses = 0
            return None
        self._policy_misses += 1
        if self._policy_misses < self._grace:
            return None  # an activation may be on its way to this process
        return Drift(
            POLICY_DRIFT,
            f"this gate decides with policy {running or 'none'} but the store names "
            f"{active or 'none'} as active ({self._policy_misses} checks in a row)",
        )

    def _config(self) -> Drift | None:
        if self._versioned_config is None or self._running_config is None:
            return None
        try:
            versioned = self._versioned_config()
        except ClearanceError as exc:
            return Drift(CONFIG_DRIFT, f"{self._config_source} can no longer be read: {exc}")
        if versioned == self._running_config:
            return None
        return Drift(
            CONFIG_DRIFT,
            f"the running configuration ({self._running_config}) differs from "
            f"{self._config_source} ({versioned}); restart to apply it or revert the file",
        )


class Watchdog:
    """Runs checks every ``interval_s`` on a daemon thread; a failing check is logged, not fatal."""

    def __init__(self, checks: Sequence[Callable[[], object]], *, interval_s: float) -> None:
        self._checks = list(checks)
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="clearance-watchdog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for the round in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> None:
        """Every check once, in order; exceptions are logged so one check cannot stop the rest."""
        for check in self._checks:
            try:
                check()
            except Exception:  # a watchdog that dies silently is worse than a noisy one
                log.exception("watchdog check %r failed", check)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()
