"""Attacks on break-glass: outside the policy's grant, too long, past its deadline, edited in the store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.approvals_kit import ALICE, BOB, Kit, kit_fixture  # noqa: F401

from clearance.approvals.breakglass import Scope
from clearance.errors import AuthorizationError
from clearance.model.decision import Outcome
from clearance.model.tools import RiskTier

BROAD = frozenset({RiskTier.WRITE_BROAD})


def test_override_turns_deny_into_permit_inside_scope_and_alerts_on_every_use(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "wire_abroad", amount=10)
    assert kit.decide(req).outcome is Outcome.DENY
    record = kit.breakglass.open(
        ALICE,
        reason="INC-88 payroll stuck",
        scope=Scope(tool="wire_abroad", tiers=BROAD),
        duration=timedelta(minutes=30),
        now=kit.clock.now(),
    )
    for _ in range(2):
        d = kit.decide(req)
        assert d.outcome is Outcome.PERMIT
        assert d.rule == f"break-glass:{record.override_id}"
    assert [title for title, _ in kit.alerts] == [
        "break-glass opened",
        "break-glass used",
        "break-glass used",
    ]
    uses = [f for k, f, _ in kit.audit.events if k == "breakglass"]
    assert [f["event"] for f in uses] == ["opened", "used", "used"]
    # Outside the scope: another tool, and a tier the override does not cover.
    assert (
        kit.decide(kit.request(s, "pay_vendor", amount=1, from_account="x", vendor="v")).outcome
        is Outcome.APPROVAL
    )


def test_operators_and_scopes_outside_the_grant_are_refused(kit: Kit) -> None:
    now = kit.clock.now()
    with pytest.raises(AuthorizationError):
        kit.breakglass.open(
            BOB,
            reason="I am not named in policy",
            scope=Scope(tool="wire_abroad", tiers=BROAD),
            duration=timedelta(minutes=5),
            now=now,
        )
    with pytest.raises(AuthorizationError):
        kit.breakglass.open(
            ALICE,
            reason="drop tables in prod",
            scope=Scope(tool="drop_table", tiers=frozenset({RiskTier.DESTRUCTIVE})),
            duration=timedelta(minutes=5),
            now=now,
        )
    with pytest.raises(AuthorizationError):
        kit.breakglass.open(
            ALICE,
            reason="every tool at once",
            scope=Scope(tool="*", tiers=BROAD),
            duration=timedelta(minutes=5),
            now=now,
        )
    with pytest.raises(AuthorizationError, match="exceeds"):
        kit.breakglass.open(
            ALICE,
            reason="a whole day please",
            scope=Scope(tool="wire_abroad", tiers=BROAD),
            duration=timedelta(hours=2),
            now=now,
        )
    assert kit.breakglass.list(ALICE, now, active_only=False) == []


def test_override_ends_at_its_deadline_and_on_close(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "wire_abroad", amount=10)
    rec = kit.breakglass.open(
        ALICE,
        reason="INC-89 short window",
        scope=Scope(tool="wire_abroad", tiers=BROAD),
        duration=timedelta(minutes=10),
        now=kit.clock.now(),
    )
    assert kit.decide(req).permitted
    kit.clock.advance(10 * 60)
    assert kit.decide(req).outcome is Outcome.DENY
    kit.clock.advance(-5 * 60)
    kit.breakglass.close(rec.override_id, ALICE, kit.clock.now())
    assert kit.decide(req).outcome is Outcome.DENY


def test_override_edited_in_the_store_is_ignored_and_reported(kit: Kit) -> None:
    s = kit.session(agent_id="fin-9")
    rec = kit.breakglass.open(
        ALICE,
        reason="INC-90 narrow fix",
        scope=Scope(agent="fin-1", tool="wire_abroad", tiers=BROAD),
        duration=timedelta(minutes=10),
        now=kit.clock.now(),
    )
    with kit.store.transaction() as cur:  # type: ignore[attr-defined]
        cur.execute(
            "UPDATE breakglass SET scope = ? WHERE override_id = ?",
            ('{"agent":"*","tiers":["write-broad"],"tool":"wire_abroad"}', rec.override_id),
        )
    assert kit.decide(kit.request(s, "wire_abroad", amount=10)).outcome is Outcome.DENY
    assert ("breakglass", {"event": "rejected", "override_id": rec.override_id}) in [
        (k, f) for k, f, _ in kit.audit.events
    ]
