"""Outcome-shift and gate-health alerts from a stream of decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clearance.control.alerts import Alert, AlertRouter, CallbackSink, Severity
from clearance.control.monitor import MonitorConfig, OutcomeMonitor, departs
from clearance.errors import StoreUnavailableError
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> datetime:
        return self.t


def decision(outcome: Outcome, rule: str = "r") -> Decision:
    return Decision(
        decision_id="d",
        outcome=outcome,
        rule=rule,
        reason="x",
        policy="sha256:p",
        request_digest="sha256:r",
        time="2026-03-01T12:00:00.000000Z",
    )


def feed(mon: OutcomeMonitor, clock: Clock, tool: str, n: int, deny_every: int | None) -> None:
    req = Request(agent_id="a", session_id="s", tool=tool)
    for i in range(n):
        deny = deny_every is not None and i % deny_every == 0
        mon.on_decision(req, decision(Outcome.DENY if deny else Outcome.PERMIT), None)


@pytest.fixture
def setup() -> tuple[OutcomeMonitor, Clock, list[Alert], AlertRouter]:
    got: list[Alert] = []
    router = AlertRouter([CallbackSink(got.append)], dedup_s=0)
    clock = Clock()
    return OutcomeMonitor(router, clock=clock, config=MonitorConfig()), clock, got, router


@pytest.mark.parametrize(
    ("rate", "base", "want"),
    [(0.40, 0.02, True), (0.0, 0.40, True), (0.03, 0.02, False), (0.30, 0.20, False)],
)
def test_departs(rate: float, base: float, want: bool) -> None:
    assert departs(rate, base, min_delta=0.15, ratio=2.0) is want


def test_deny_rate_jump_alerts_for_that_surface_only(setup) -> None:
    mon, clock, got, router = setup
    for _ in range(4):  # four minutes of ~2% DENY learn the baseline
        feed(mon, clock, "pay", 50, deny_every=50)
        feed(mon, clock, "read", 50, deny_every=None)
        clock.t += timedelta(seconds=60)
    feed(mon, clock, "pay", 40, deny_every=2)  # a policy regression: 50% DENY
    feed(mon, clock, "read", 40, deny_every=None)
    assert router.flush(5)
    shifts = [a for a in got if a.key.startswith("shift:")]
    assert [a.key for a in shifts] == ["shift:pay:DENY"]
    assert "50%" in shifts[0].text
    assert "baseline 2%" in shifts[0].text


def test_normal_variation_does_not_alert(setup) -> None:
    mon, clock, got, router = setup
    for minute in range(10):
        feed(mon, clock, "pay", 50, deny_every=20 if minute % 2 else 25)
        clock.t += timedelta(seconds=60)
    assert router.flush(5)
    assert got == []


def test_stop_decisions_are_not_a_policy_shift(setup) -> None:
    mon, clock, got, router = setup
    for _ in range(4):
        feed(mon, clock, "pay", 50, deny_every=None)
        clock.t += timedelta(seconds=60)
    req = Request(agent_id="a", session_id="s", tool="pay")
    for _ in range(50):
        mon.on_decision(req, decision(Outcome.DENY, rule="kill-switch"), None)
    assert router.flush(5)
    assert got == []


def test_audit_and_store_silence_alert_critical_at_once(setup) -> None:
    mon, _clock, got, router = setup
    req = Request(agent_id="a", session_id="s", tool="pay")
    mon.on_decision(req, decision(Outcome.SILENCE, rule="audit"), None)
    mon.on_decision(req, decision(Outcome.SILENCE, rule="store"), None)
    assert router.flush(5)
    assert {a.key for a in got} == {"health:audit", "health:store"}
    assert all(a.severity is Severity.CRITICAL for a in got)


def test_silence_surge_over_the_gate(setup) -> None:
    mon, _clock, got, router = setup
    req = Request(agent_id="a", session_id="s", tool="t")
    for i in range(30):
        outcome = Outcome.SILENCE if i % 3 == 0 else Outcome.PERMIT
        mon.on_decision(req, decision(outcome, rule="error"), None)
    assert router.flush(5)
    assert "health:silence-surge" in {a.key for a in got}


def test_store_probe(setup) -> None:
    mon, _clock, got, router = setup
    assert mon.check_store(lambda: None)

    def down() -> None:
        raise StoreUnavailableError("no route to host")

    assert not mon.check_store(down)
    assert router.flush(5)
    assert [a.key for a in got] == ["health:store"]
