"""Approval fatigue flags on synthetic approvers: a rubber-stamper and a careful one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clearance.approvals.fatigue import ApprovalHistory, analyse_fatigue
from clearance.store.approvals_sql import ApprovalRow, VoteRow

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _row(i: int, *, rule: str, tier: str) -> ApprovalRow:
    created = T0 + timedelta(minutes=10 * i)
    return ApprovalRow(
        approval_id=f"apr_{rule}_{i}",
        decision_id=f"dec_{rule}_{i}",
        batch_id=f"bat_{i}",
        session_id="ses_1",
        agent_id="finance-agent",
        tool="transfer_funds",
        action="call",
        request_digest="sha256:" + "0" * 64,
        request={},
        rule=rule,
        reason="",
        tier=tier,
        obligations=[],
        required=1,
        approver_group=None,
        context={},
        summary="",
        policy="sha256:" + "1" * 64,
        state="approved",
        created_at=created.isoformat(),
        expires_at=(created + timedelta(hours=1)).isoformat(),
        updated_at=created.isoformat(),
    )


def _vote(row: ApprovalRow, who: str, vote: str, seconds: float) -> VoteRow:
    at = datetime.fromisoformat(row.created_at) + timedelta(seconds=seconds)
    return VoteRow(row.approval_id, who, vote, None, at.isoformat())


def _histories() -> list[ApprovalHistory]:
    out = []
    for i in range(20):
        row = _row(i, rule="large-transfer", tier="destructive" if i % 2 else "write-broad")
        # the rubber-stamper approves everything in one second; the careful one reads for a few
        # minutes and denies one request in four
        out.append(
            ApprovalHistory(
                row,
                [
                    _vote(row, "op-stamp", "approve", 1.0),
                    _vote(row, "op-careful", "deny" if i % 4 == 0 else "approve", 45.0 + 9 * i),
                ],
                failed=i == 3,
            )
        )
    for i in range(20, 32):
        row = _row(i, rule="send-report", tier="write-limited")
        out.append(ApprovalHistory(row, [_vote(row, "op-careful", "approve", 30.0)], failed=False))
    return out


def test_rubber_stamper_is_flagged_careful_approver_is_not() -> None:
    report = analyse_fatigue(_histories())
    assert report.flagged == ["op-stamp"]
    stamp = report.approvers["op-stamp"]
    assert stamp.approval_rate == 1.0
    assert stamp.median_seconds == 1.0
    assert any(f.startswith("fast:") for f in stamp.flags)
    assert any(f.startswith("high-risk-always-approved") for f in stamp.flags)
    careful = report.approvers["op-careful"]
    assert careful.flags == []
    assert careful.approval_rate < 1.0


def test_failed_outcomes_after_approval_are_counted() -> None:
    report = analyse_fatigue(_histories())
    assert report.approvers["op-stamp"].failed_after_approval == 1
    assert report.rules["large-transfer"].failed_after_approval == 1


def test_batching_is_suggested_only_on_low_risk_rules() -> None:
    report = analyse_fatigue(_histories())
    assert any(f.startswith("batch-or-decay") for f in report.rules["send-report"].flags)
    assert report.rules["large-transfer"].flags == []


def test_too_few_votes_flag_nobody() -> None:
    report = analyse_fatigue(_histories()[:5])
    assert report.flagged == []
