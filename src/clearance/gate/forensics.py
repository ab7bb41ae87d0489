"""Export the evidence of an incident (a session, an agent, or everything since a time).

Reads only: the audit shards are opened read-only and proofs are computed from stored leaf hashes
against the latest signed checkpoint, so an export never fences the running gate's appender nor
writes a checkpoint. Entries newer than that checkpoint travel without a proof and the offline
check reports them as "not enough evidence yet" rather than as verified.

Selection: every decision entry whose masked payload names the session (or agent, or is at or
after ``since``), plus every entry linked to one of them by decision id, request digest or
approval id (approvals, token redemptions, outcomes), plus the activations of the policies that
decided. The bundle format and its check live in ``clearance.audit.verify.incident``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clearance.audit.storage import AuditStorage, CheckpointRow, StoredEntry
from clearance.audit.verify.incident import BundleEntry, build_bundle
from clearance.errors import ConfigError
from clearance.formats.merkle import inclusion_path
from clearance.formats.proof import InclusionProof
from clearance.store.protocol import Store

_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """What to export; at least one criterion is required (all given must hold)."""

    session: str | None = None
    agent: str | None = None
    since: str | None = None

    def __post_init__(self) -> None:
        if not (self.session or self.agent or self.since):
            raise ConfigError(
                "an incident export needs a subject",
                hint="pass --session ID, --agent ID or --since ISO-TIME",
            )
        if self.since is not None:
            self.since_time()

    def since_time(self) -> datetime | None:
        """``since`` as an aware datetime (an entry's time is compared as a time, not text)."""
        if self.since is None:
            return None
        try:
            when = datetime.fromisoformat(self.since)
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise ConfigError(
                f"`{self.since}` is not an ISO time with a timezone",
                hint="e.g. --since 2026-11-01T00:00:00Z",
            )
        return when

    def matches(self, header: dict[str, Any], payload: dict[str, Any]) -> bool:
        """True when a decision entry belongs to the incident."""
        if self.session and payload.get("session_id") != self.session:
            return False
        if self.agent and payload.get("agent_id") != self.agent:
            return False
        since = self.since_time()
        return since is None or datetime.fromisoformat(header["time"]) >= since


@dataclass
class _Links:
    """Ids that tie later entries (approvals, outcomes) to the selected decisions."""

    decisions: set[str] = field(default_factory=set)
    digests: set[str] = field(default_factory=set)
    approvals: set[str] = field(default_factory=set)
    policies: set[str] = field(default_factory=set)

    def add(self, header: dict[str, Any], payload: dict[str, Any]) -> None:
        self.decisions.add(header["decision_id"])
        self.digests.add(header["request_digest"])
        self.policies.add(header["policy"])
        approval = payload.get("approval") or {}
        if approval.get("approval_id"):
            self.approvals.add(approval["approval_id"])

    def linked(self, header: dict[str, Any], payload: dict[str, Any]) -> bool:
        if header["kind"] == "policy.activated":
            return header.get("policy") in self.policies
        return (
            header.get("decision_id") in self.decisions
            or header.get("request_digest", payload.get("request_digest")) in self.digests
            or payload.get("approval_id") in self.approvals
        )


def _walk(
    storage: AuditStorage, origin: str
) -> Iterator[tuple[StoredEntry, dict[str, Any], dict[str, Any]]]:
    pos = 0
    while True:
        rows = storage.entries(origin, pos, pos + _CHUNK)
        if not rows:
            return
        for row in rows:
            entry = StoredEntry._make(row)
            if entry.header is not None:
                payload = json.loads(entry.body) if entry.body is not None else {}
                yield entry, json.loads(entry.header), payload
        pos = rows[-1][0] + 1


def _select(storage: AuditStorage, origin: str, query: IncidentQuery) -> list[StoredEntry]:
    links = _Links()
    for _, header, payload in _walk(storage, origin):
        if header["kind"] == "decision" and query.matches(header, payload):
            links.add(header, payload)
    if not links.decisions:
        return []
    return [
        entry for entry, header, payload in _walk(storage, origin) if links.linked(header, payload)
    ]


def _proof(
    entry: StoredEntry,
    hashes: list[bytes],
    cp: CheckpointRow | None,
) -> bytes | None:
    if cp is None or entry.idx >= cp.size or entry.header is None:
        return None
    path = inclusion_path(entry.idx, hashes)
    return InclusionProof(entry.idx, tuple(path), cp.note, extra=entry.header).to_text().encode()


def export_incident(
    storage: AuditStorage, store: Store, query: IncidentQuery, *, exported_at: str
) -> dict[str, Any]:
    """The incident bundle (``clearance.audit.verify.incident`` format) of ``query``.

    Raises ``ConfigError`` when nothing matches, so an empty bundle is never mistaken for
    "the session did nothing".
    """
    entries: list[BundleEntry] = []
    policies: dict[str, None] = {}
    receipts: list[tuple[str, dict[str, Any]]] = []
    for origin in storage.origins():
        selected = _select(storage, origin, query)
        if not selected:
            continue
        latest = storage.latest_checkpoint(origin)
        cp = None if latest is None else CheckpointRow._make(latest)
        hashes = storage.leaf_hashes(origin, 0, cp.size) if cp is not None else []
        for entry in selected:
            assert entry.header is not None  # INVARIANT: _walk skips hash-only pruned entries
            entries.append(
                BundleEntry(
                    log=origin,
                    index=entry.idx,
                    header=entry.header,
                    salt=entry.salt if entry.body is not None else None,
                    payload=entry.body,
                    proof=_proof(entry, hashes, cp),
                )
            )
            header = json.loads(entry.header)
            if header["kind"] == "decision":
                policies.setdefault(header["policy"])
                record = store.get_decision(header["decision_id"])
                receipt = record.decision.get("receipt") if record is not None else None
                if receipt:
                    receipts.append((header["decision_id"], receipt))
    if not entries:
        raise ConfigError(
            "no audit entry matches the incident subject",
            hint="check the session or agent id (`clearance sessions`) and the --since time",
        )
    bundles = []
    for digest in policies:
        stored = store.get_bundle(digest)
        if stored is not None:
            bundles.append((digest, stored.source_name, stored.data))
    return build_bundle(
        subject={"session": query.session, "agent": query.agent, "since": query.since},
        exported_at=exported_at,
        entries=entries,
        receipts=receipts,
        policies=bundles,
    )
