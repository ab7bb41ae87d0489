"""Approval fatigue over a deployment's own history: approvals from the store, outcomes from the log.

``clearance.approvals.fatigue`` computes the statistics and flags from plain rows; this module
feeds it what a running deployment recorded and turns its flags into alerts::

    failed = failed_approvals(audit_storage)                  # approvals whose call then failed
    histories = approval_histories(store, since=now - timedelta(days=30), failed=failed)
    report = analyse_fatigue(histories)
    for alert in fatigue_alerts(report, now):
        router.send(alert)

"Followed by a failed action" is read from the audit log, where every reported ``ActionResult`` of
a redeemed token is an ``outcome`` entry whose rule is ``approval:<approval id>``: the store holds
no outcomes, and the log is the record an auditor would check the claim against.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime, timedelta

from clearance.approvals.fatigue import ApprovalHistory, FatigueReport, Stats, analyse_fatigue
from clearance.audit.storage import AuditStorage, StoredEntry
from clearance.control.alerts import Alert, AlertRouter, Severity
from clearance.control.times import NowSource
from clearance.store.approvals_sql import ApprovalStore

APPROVAL_RULE_PREFIX = "approval:"
MAX_APPROVALS = 100_000
_CHUNK = 2048


def failed_approvals(storage: AuditStorage) -> set[str]:
    """Ids of approvals whose redeemed call was reported as failed, from every shard."""
    failed: set[str] = set()
    for origin in storage.origins():
        pos, size = 0, storage.size(origin)
        while pos < size:
            rows = storage.entries(origin, pos, min(pos + _CHUNK, size))
            if not rows:
                break
            for row in rows:
                approval_id = _failed_approval(StoredEntry._make(row))
                if approval_id is not None:
                    failed.add(approval_id)
            pos = rows[-1][0] + 1
    return failed


def _failed_approval(entry: StoredEntry) -> str | None:
    if entry.header is None or entry.body is None:
        return None  # pruned: the outcome is no longer evidence either way
    header = json.loads(entry.header)
    rule = header.get("rule")
    if header.get("kind") != "outcome" or not str(rule).startswith(APPROVAL_RULE_PREFIX):
        return None
    if json.loads(entry.body).get("success") is not False:
        return None
    return str(rule)[len(APPROVAL_RULE_PREFIX) :]


def approval_histories(
    store: ApprovalStore, *, since: datetime, failed: Collection[str] | None = None
) -> list[ApprovalHistory]:
    """Every approval created since ``since`` with its votes; ``failed`` marks approved calls.

    ``failed`` None means the outcomes were not read: each history's outcome is then unknown,
    which the analysis counts as neither failure nor success.
    """
    rows = store.list_approvals(since=since.isoformat(), limit=MAX_APPROVALS)
    return [
        ApprovalHistory(
            row,
            store.votes(row.approval_id),
            failed=None if failed is None else row.approval_id in failed,
        )
        for row in rows
    ]


def fatigue_since(
    store: ApprovalStore, storage: AuditStorage | None, *, since: datetime
) -> FatigueReport:
    """Fatigue over the approvals created since ``since``; failures read from ``storage``."""
    failed = failed_approvals(storage) if storage is not None else None
    return analyse_fatigue(approval_histories(store, since=since, failed=failed))


def fatigue_alerts(report: FatigueReport, now: datetime) -> list[Alert]:
    """One warning per flagged approver; deduplicated by the alert router on the approver."""
    return [
        Alert(
            key=f"approval-fatigue:{approver}",
            severity=Severity.WARNING,
            title=f"approval fatigue: {approver}",
            text="; ".join(report.approvers[approver].flags),
            at=now,
            fields={"approver": approver, "votes": str(report.approvers[approver].votes)},
        )
        for approver in report.flagged
    ]


class FatigueWatch:
    """Re-runs the fatigue analysis on a serving gate now and then and alerts on flagged approvers.

    A watchdog calls ``check`` every few seconds; the analysis itself runs at most once per
    ``every`` (it reads the period's approvals and the audit log), and the alert router
    deduplicates repeats per approver.
    """

    def __init__(
        self,
        store: ApprovalStore,
        storage: AuditStorage | None,
        alerts: AlertRouter,
        *,
        clock: NowSource,
        days: int = 30,
        every: timedelta = timedelta(hours=1),
    ) -> None:
        self._store = store
        self._storage = storage
        self._alerts = alerts
        self._clock = clock
        self._period = timedelta(days=days)
        self._every = every
        self._next: datetime | None = None

    def check(self) -> list[Alert]:
        """The alerts sent this round (none when the analysis is not due)."""
        now = self._clock.now()
        if self._next is not None and now < self._next:
            return []
        self._next = now + self._every
        report = fatigue_since(self._store, self._storage, since=now - self._period)
        sent = fatigue_alerts(report, now)
        for alert in sent:
            self._alerts.send(alert)
        return sent


def fatigue_markdown(report: FatigueReport, *, since: str, until: str) -> str:
    """The report for a quarterly review: approvers, then rules, flags first."""
    lines = [f"# Approval fatigue, {since} to {until}", ""]
    for title, table in (("Approvers", report.approvers), ("Rules", report.rules)):
        lines += [f"## {title}", ""]
        if not table:
            lines += ["No votes in the period.", ""]
            continue
        lines += [
            "| who | votes | approve rate | median s | fast | failed after approval | flags |",
            "|---|---|---|---|---|---|---|",
        ]
        for stats in sorted(table.values(), key=lambda s: (not s.flags, s.key)):
            lines.append(_row(stats))
        lines.append("")
    return "\n".join(lines)


def _row(s: Stats) -> str:
    median = "-" if s.median_seconds is None else f"{s.median_seconds:.1f}"
    flags = "<br>".join(s.flags) or "-"
    return (
        f"| {s.key} | {s.votes} | {s.approval_rate:.0%} | {median} | {s.fast} | "
        f"{s.failed_after_approval} | {flags} |"
    )
