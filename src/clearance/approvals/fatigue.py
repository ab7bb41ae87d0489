"""Approval fatigue: find approvers who stopped reading, and rules that ask too often.

A human approval is only a control while the human looks. This module measures, per approver and
per rule, the approval rate, the time from request to vote and how often an approved call later
failed, and flags rubber-stamping:

* ``fast``: at least ``min_votes`` votes and at least ``fast_share`` of them cast within
  ``fast_seconds`` of the request (nobody reads a transfer summary in two seconds);
* ``high-risk-always-approved``: at least ``min_votes`` votes on high-risk tiers and an approve
  rate of at least ``high_risk_rate`` there.

For rules it suggests where batching or approval decay would cut volume: only on tiers that are
not high-risk, and only when nearly every request is approved and none of them later failed.

Pure over approval rows, their votes and the outcomes of approved calls; the caller reads them
from the store, so the same history always gives the same flags.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from clearance.store.approvals_sql import ApprovalRow, VoteRow

HIGH_RISK_TIERS = frozenset({"write-broad", "destructive"})


@dataclass(frozen=True, slots=True)
class FatigueSettings:
    """Thresholds of the flags (see the module docstring)."""

    fast_seconds: float = 5.0
    fast_share: float = 0.5
    min_votes: int = 10
    high_risk_tiers: frozenset[str] = HIGH_RISK_TIERS
    high_risk_rate: float = 0.98
    batch_rate: float = 0.95


@dataclass(frozen=True, slots=True)
class ApprovalHistory:
    """One approval request with its votes and, once known, whether the approved call failed."""

    row: ApprovalRow
    votes: Sequence[VoteRow]
    failed: bool | None = None


@dataclass
class Stats:
    """Votes of one approver or on one rule (a rule counts a failed call once, not per vote)."""

    key: str
    votes: int = 0
    approved: int = 0
    seconds: list[float] = field(default_factory=list)
    fast: int = 0
    high_risk_votes: int = 0
    high_risk_approved: int = 0
    failed_after_approval: int = 0
    flags: list[str] = field(default_factory=list)

    @property
    def approval_rate(self) -> float:
        """Approvals over votes (0 when there is none)."""
        return self.approved / self.votes if self.votes else 0.0

    @property
    def median_seconds(self) -> float | None:
        """Median time from request to vote."""
        return statistics.median(self.seconds) if self.seconds else None

    def to_json(self) -> dict[str, object]:
        """Machine form for reports and alerts."""
        return {
            "key": self.key,
            "votes": self.votes,
            "approval_rate": round(self.approval_rate, 4),
            "median_seconds": self.median_seconds,
            "fast": self.fast,
            "high_risk_votes": self.high_risk_votes,
            "high_risk_approved": self.high_risk_approved,
            "failed_after_approval": self.failed_after_approval,
            "flags": list(self.flags),
        }


@dataclass(frozen=True, slots=True)
class FatigueReport:
    """Per-approver and per-rule statistics, with flags and suggestions."""

    approvers: Mapping[str, Stats]
    rules: Mapping[str, Stats]

    @property
    def flagged(self) -> list[str]:
        """Approvers with at least one rubber-stamping flag."""
        return sorted(k for k, s in self.approvers.items() if s.flags)


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _count(
    stats: Stats, history: ApprovalHistory, vote: VoteRow, settings: FatigueSettings
) -> None:
    approve = vote.vote == "approve"
    elapsed = _seconds(history.row.created_at, vote.at)
    stats.votes += 1
    stats.approved += approve
    stats.seconds.append(elapsed)
    stats.fast += elapsed < settings.fast_seconds
    if history.row.tier in settings.high_risk_tiers:
        stats.high_risk_votes += 1
        stats.high_risk_approved += approve


def analyse_fatigue(
    histories: Iterable[ApprovalHistory], settings: FatigueSettings | None = None
) -> FatigueReport:
    """Statistics and flags over every vote of ``histories``."""
    settings = settings or FatigueSettings()
    approvers: dict[str, Stats] = {}
    rules: dict[str, Stats] = {}
    tiers: dict[str, set[str | None]] = defaultdict(set)
    for history in histories:
        tiers[history.row.rule].add(history.row.tier)
        for vote in history.votes:
            if vote.vote not in ("approve", "deny"):
                continue
            approver = approvers.setdefault(vote.operator_id, Stats(vote.operator_id))
            _count(approver, history, vote, settings)
            approver.failed_after_approval += vote.vote == "approve" and history.failed is True
            _count(
                rules.setdefault(history.row.rule, Stats(history.row.rule)), history, vote, settings
            )
        approved = any(v.vote == "approve" for v in history.votes)
        if approved and history.failed is True and history.row.rule in rules:
            rules[history.row.rule].failed_after_approval += 1
    for stats in approvers.values():
        if stats.votes >= settings.min_votes and stats.fast >= settings.fast_share * stats.votes:
            stats.flags.append(
                f"fast: {stats.fast} of {stats.votes} votes within {settings.fast_seconds:g} s"
            )
        if (
            stats.high_risk_votes >= settings.min_votes
            and stats.high_risk_approved >= settings.high_risk_rate * stats.high_risk_votes
        ):
            stats.flags.append(
                f"high-risk-always-approved: {stats.high_risk_approved} of "
                f"{stats.high_risk_votes} high-risk votes approved"
            )
    for rule, stats in rules.items():
        low_risk = not (tiers[rule] & settings.high_risk_tiers)
        if (
            low_risk
            and stats.votes >= settings.min_votes
            and stats.approval_rate >= settings.batch_rate
            and stats.failed_after_approval == 0
        ):
            stats.flags.append(
                "batch-or-decay: nearly always approved on a low-risk tier; batch these "
                "requests or let approvals decay to reduce volume"
            )
    return FatigueReport(approvers=approvers, rules=rules)
