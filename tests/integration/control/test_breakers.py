"""Each breaker provoked through a real gate and policy, and a normal workload that trips nothing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.control_kit import ADMIN, START, Rig, build_rig, rig_fixture  # noqa: F401

from clearance.control.scope import Scope
from clearance.gate.clock import FixedClock
from clearance.model.decision import Outcome, Verdict
from clearance.model.request import Request
from clearance.store.protocol import Store

WORKLOAD = Path(__file__).parent / "normal_workload.jsonl"


def warm_up(rig: Rig, minutes: int = 3, per_minute: int = 6) -> None:
    s = rig.session()
    for _ in range(minutes):
        for _ in range(per_minute):
            d = rig.call(s, "search")
            rig.result(s, d, size=800)
            rig.clock.advance(60 / per_minute)


def test_rate_spike_pauses_agent_and_alerts(rig: Rig) -> None:
    warm_up(rig)
    s = rig.session()
    decisions = [rig.call(s, "search") for _ in range(25)]
    assert rig.trips() == [("agent:bot", "breaker:rate-spike")]
    assert decisions[-1].outcome is Outcome.DENY
    assert decisions[-1].rule == "breaker:rate-spike"
    assert rig.plane.alerts.flush(5)
    assert any("paused by a breaker" in a.title for a in rig.alerts)
    other = rig.session("other-bot")
    assert rig.call(other, "search").outcome is Outcome.PERMIT


def test_consecutive_failures_pause_after_more_than_five(rig: Rig) -> None:
    s = rig.session()
    for i in range(6):
        d = rig.call(s, "fetch")
        assert d.outcome is Outcome.PERMIT, i
        rig.result(s, d, ok=False)
        rig.clock.advance(5)
        if i < 5:
            assert rig.trips() == []
    assert rig.trips() == [("agent:bot", "breaker:consecutive-failures")]
    assert rig.call(s, "fetch").rule == "breaker:consecutive-failures"


def test_a_success_resets_the_failure_streak(rig: Rig) -> None:
    s = rig.session()
    for i in range(12):
        d = rig.call(s, "fetch")
        rig.result(s, d, ok=i % 4 == 3)
        rig.clock.advance(5)
    assert rig.trips() == []


def test_unusual_sequence_needs_approval_for_a_new_tool(rig: Rig) -> None:
    warm_up(rig)  # ten permitted `search` calls: the task type is learned
    s = rig.session()
    d = rig.call(s, "export")
    assert (d.outcome, d.rule) == (
        Outcome.SILENCE,
        "approvals",
    )  # APPROVAL, no approval service here
    assert rig.call(s, "search").outcome is Outcome.PERMIT
    assert rig.trips() == []
    rig.plane.alerts.flush()
    (alert,) = [a for a in rig.alerts if a.key.startswith("breaker:unusual-sequence")]
    assert alert.text.endswith("the call was held for approval")
    assert "`export` was never called before in task type" in alert.text


def test_unusual_sequence_returns_approval_verdict(rig: Rig) -> None:
    warm_up(rig)
    s = rig.session()
    state = rig.store.session_state(s.session_id)
    assert state is not None
    permit = Verdict(outcome=Outcome.PERMIT, rule="reads", reason="ok")
    verdict = rig.plane.breakers.apply(
        Request(agent_id="bot", session_id=s.session_id, tool="export"),
        state,
        permit,
        rig.clock.now(),
    )
    assert (verdict.outcome, verdict.rule) == (Outcome.APPROVAL, "breaker:unusual-sequence")
    assert verdict.approvers >= 1
    known = rig.plane.breakers.apply(
        Request(agent_id="bot", session_id=s.session_id, tool="search"),
        state,
        permit,
        rig.clock.now(),
    )
    assert known is permit


def test_data_volume_anomaly_pauses_agent(rig: Rig) -> None:
    warm_up(rig)  # outputs of 800 bytes
    s = rig.session()
    d = rig.call(s, "search")
    rig.result(s, d, size=9000)  # > 10 x 800 and over the 4096-byte floor
    assert rig.trips() == [("agent:bot", "breaker:data-volume")]


def test_large_output_before_warmup_does_not_trip(rig: Rig) -> None:
    s = rig.session()
    d = rig.call(s, "search")
    rig.result(s, d, size=1_000_000)
    assert rig.trips() == []


def test_resume_clears_the_pause_and_the_spike(rig: Rig) -> None:
    warm_up(rig)
    s = rig.session()
    for _ in range(25):
        rig.call(s, "search")
    assert rig.trips()
    rig.plane.killswitch.resume(
        Scope.agent("bot"), operator=ADMIN, reason="reviewed", now=rig.clock.now()
    )
    rig.clock.advance(1)
    assert rig.call(s, "search").outcome is Outcome.PERMIT
    assert rig.trips() == []


def test_recorded_normal_workload_trips_nothing(
    tmp_path: Path, store: Store, clock: FixedClock
) -> None:
    rig = build_rig(store, clock)
    sessions = {}
    events = [json.loads(line) for line in WORKLOAD.read_text().splitlines() if line.strip()]
    assert len(events) > 500
    for e in events:
        rig.clock.advance(e["dt"])
        s = sessions.get(e["agent"]) or sessions.setdefault(e["agent"], rig.session(e["agent"]))
        d = rig.call(s, e["tool"])
        assert d.outcome is Outcome.PERMIT, (e, d.rule, d.reason)
        rig.result(s, d, ok=e["ok"], size=e["size"])
    assert rig.trips() == []
    assert rig.plane.alerts.flush(5)
    assert rig.alerts == []
    # not vacuous: every agent's baselines were learned and armed
    for agent in sessions:
        assert rig.plane.breakers.book.rate(agent, "*").ewma.samples >= 5
        assert rig.plane.breakers.book.size(agent, "search").samples >= 10
