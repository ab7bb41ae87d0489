"""Retention classes, legal holds and the pruner.

Example::

    >>> log = AuditLog(storage, key, origin, clock.now, retention_for=default_retention)  # doctest: +SKIP
    >>> Pruner(log, storage).prune(today)                                                 # doctest: +SKIP
    PruneReport(pruned=..., held=..., entry_index=...)

Rules (AUDIT.md 3.10): the class is chosen at write time and ``retention.until`` is fixed into the
header, so a later policy change cannot shorten it and the verifier can tell pruning from tampering.
The pruner deletes payloads (body and salt) whose ``until`` is before ``today`` and that no legal
hold covers. It first appends a ``prune`` entry naming the index ranges and the cutoff, then
deletes: a crash in between leaves payloads that the log says may go, never deletions the log does
not explain. Headers and leaf hashes stay, so every proof still verifies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from clearance.audit.log import AuditLog
from clearance.audit.storage import AuditStorage, HoldRow

DEFAULT_DAYS = 180
HIGH_RISK_DAYS = 3 * 365 + 1
HIGH_RISK_TIERS = frozenset({"write-broad", "destructive"})


@dataclass(frozen=True, slots=True)
class RetentionClass:
    """A named retention period in days."""

    name: str
    days: int


DEFAULT = RetentionClass("default", DEFAULT_DAYS)
HIGH_RISK = RetentionClass("high-risk", HIGH_RISK_DAYS)


def is_high_risk(kind: str, header_fields: Mapping[str, Any]) -> bool:
    """Write-broad and destructive tiers, every APPROVAL decision and every approval event."""
    return (
        kind.startswith("approval.")
        or header_fields.get("tier") in HIGH_RISK_TIERS
        or header_fields.get("outcome") == "APPROVAL"
    )


def default_retention(kind: str, header_fields: Mapping[str, Any]) -> tuple[str, int]:
    """180 days for tool calls; 3 years for write-broad/destructive tiers, APPROVAL and approval events."""
    if is_high_risk(kind, header_fields):
        return (HIGH_RISK.name, HIGH_RISK.days)
    return (DEFAULT.name, DEFAULT.days)


def retention_in_force(
    periods: Callable[[], tuple[int, int] | None],
) -> Callable[[str, Mapping[str, Any]], tuple[str, int]]:
    """``default_retention``'s classes with the periods in force when each entry is written.

    ``periods`` returns ``(default days, high-risk days)`` from the active policy's ``retention``
    section, or None when no policy is active (the built-in periods apply). Reading them per
    entry means a policy activation changes the retention of what is written after it, never of
    what was written before (the date is fixed into each header).
    """

    def retention_for(kind: str, header_fields: Mapping[str, Any]) -> tuple[str, int]:
        days = periods() or (DEFAULT.days, HIGH_RISK.days)
        if is_high_risk(kind, header_fields):
            return (HIGH_RISK.name, days[1])
        return (DEFAULT.name, days[0])

    return retention_for


class RetentionPolicy:
    """Retention classes from policy: the longest matching class wins.

    ``rules`` maps a class to a predicate over ``(kind, header_fields)``; the default class applies
    to everything else.
    """

    def __init__(
        self,
        classes: Sequence[RetentionClass],
        rules: Mapping[str, Any],
        default: RetentionClass = DEFAULT,
    ) -> None:
        self._classes = {c.name: c for c in classes}
        self._rules = dict(rules)
        self._default = default

    def __call__(self, kind: str, header_fields: Mapping[str, Any]) -> tuple[str, int]:
        """The ``retention_for`` callable ``AuditLog`` takes."""
        best = self._default
        for name, predicate in self._rules.items():
            cls = self._classes[name]
            if cls.days > best.days and predicate(kind, header_fields):
                best = cls
        return (best.name, best.days)


def _ranges(indexes: Sequence[int]) -> list[list[int]]:
    """Sorted indexes as inclusive ``[start, end]`` runs."""
    out: list[list[int]] = []
    for i in sorted(indexes):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What one pruning run did."""

    pruned: int
    held: int
    entry_index: int | None


class Pruner:
    """Deletes expired payloads of one shard, honouring legal holds, and logs what it did."""

    def __init__(self, log: AuditLog, storage: AuditStorage) -> None:
        self._log = log
        self._storage = storage

    def place_hold(self, hold_id: str, start: int, end: int, *, created_at: str) -> None:
        """Protect entries ``[start, end]`` from pruning; logged as ``hold.placed``."""
        self._storage.add_hold(self._log.origin, HoldRow(hold_id, start, end, created_at))
        self._log.append("hold.placed", {"hold": {"id": hold_id, "start": start, "end": end}}, None)

    def release_hold(self, hold_id: str) -> bool:
        """Release a hold; logged as ``hold.released`` when it existed."""
        released = self._storage.remove_hold(self._log.origin, hold_id)
        if released:
            self._log.append("hold.released", {"hold": {"id": hold_id}}, None)
        return released

    def prune(self, today: date) -> PruneReport:
        """Delete payloads with ``retention.until < today`` outside legal holds."""
        origin = self._log.origin
        cutoff = today.isoformat()
        candidates = self._storage.expired_payloads(origin, cutoff)
        holds = [HoldRow._make(h) for h in self._storage.holds(origin)]
        due = [i for i in candidates if not any(h.start <= i <= h.end for h in holds)]
        held = len(candidates) - len(due)
        if not due:
            return PruneReport(0, held, None)
        entry = self._log.append(
            "prune", {"pruned": {"cutoff": cutoff, "count": len(due), "ranges": _ranges(due)}}, None
        )
        deleted = self._storage.delete_payloads(origin, due)
        return PruneReport(deleted, held, entry.index)
