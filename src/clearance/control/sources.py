"""Identity anomalies: an API key used from a peer address or client it was never used from.

A stolen agent key is used from somewhere else. ``SourceWatch.observe`` runs on every
authenticated agent request; the first source of each kind a key is seen with is its baseline,
and every later new address or client (``User-Agent``) sends a warning naming the key, the agent,
the new source and the known ones. Sources are kept in the store (``key_sources``), so every
replica shares them and a restart does not re-alert on known ones.

The hot path pays one set lookup: a source already seen by this process never touches the store.
"""

from __future__ import annotations

import logging
import threading

from clearance.control.alerts import Alert, AlertRouter, Severity
from clearance.control.times import NowSource, iso
from clearance.errors import ClearanceError
from clearance.store.identity_sql import IdentitySQL

log = logging.getLogger("clearance.control")

ADDRESS = "address"
CLIENT = "client"
MAX_CLIENT_CHARS = 200
MAX_KNOWN_SHOWN = 5


class SourceWatch:
    """Remembers where each key was used from and alerts on a new address or client."""

    def __init__(self, store: IdentitySQL, alerts: AlertRouter, *, clock: NowSource) -> None:
        self._store = store
        self._alerts = alerts
        self._clock = clock
        self._seen: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def observe(self, key_id: str, agent_id: str | None, *, address: str, client: str) -> None:
        """Note one authenticated use; never raises (a store error is logged, not fatal)."""
        for kind, value in ((ADDRESS, address), (CLIENT, client[:MAX_CLIENT_CHARS])):
            entry = (key_id, kind, value)
            if entry in self._seen:
                continue
            try:
                self._note(entry, agent_id)
            except ClearanceError:
                # Alerting must not take the gate down with the store; the decision path reports
                # a dead store on its own (SILENCE), and the next request tries again.
                log.warning("could not record the %s of key %s", kind, key_id, exc_info=True)

    def _note(self, entry: tuple[str, str, str], agent_id: str | None) -> None:
        key_id, kind, value = entry
        now = self._clock.now()
        with self._lock:
            new, known = self._store.note_key_source(
                key_id, kind, value, agent_id=agent_id, at=iso(now)
            )
            self._seen.add(entry)
        if not new or not known:
            return  # a source seen before, or the key's first: its baseline
        shown = ", ".join(known[:MAX_KNOWN_SHOWN]) + (
            " ..." if len(known) > MAX_KNOWN_SHOWN else ""
        )
        self._alerts.send(
            Alert(
                key=f"identity:new-{kind}:{key_id}:{value}",
                severity=Severity.WARNING,
                title="identity anomaly",
                text=f"key {key_id} of agent {agent_id or '-'} used from a new {kind} "
                f"`{value}` (known: {shown}); revoke the key if this is not expected",
                at=now,
                fields={"key_id": key_id, "agent_id": agent_id or "", kind: value},
            )
        )
