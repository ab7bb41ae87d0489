"""The kill switch on a real SQLite store: levels, scopes, roles, honest effects, audit, restarts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clearance.control.alerts import Alert, AlertRouter, CallbackSink, Severity
from clearance.control.errors import ControlError
from clearance.control.killswitch import KillSwitch, agent_hook
from clearance.control.operator import Operator
from clearance.control.scope import Scope
from clearance.errors import AuditWriteError, AuthorizationError, StoreUnavailableError
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.model.session import Environment, Session
from clearance.store import open_store
from clearance.store.control_sql import control_store
from clearance.store.protocol import SessionState, Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADMIN = Operator("alice", frozenset({"admin"}))
APPROVER = Operator("bob", frozenset({"approver"}))
VIEWER = Operator("vera", frozenset({"viewer"}))


class Events:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.fail = False

    def record_event(self, kind: str, fields: dict[str, Any], payload: dict[str, Any]) -> None:
        if self.fail:
            raise AuditWriteError("the audit log is not writable (test)")
        self.events.append((kind, fields, payload))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    st = open_store(f"sqlite:///{tmp_path / 'clearance.db'}")
    yield st
    st.close()


def make(db: Store, **kw: Any) -> KillSwitch:
    return KillSwitch(control_store(db), **kw)


def state(agent: str = "bot", env: str = "staging", opened: datetime = T0) -> SessionState:
    session = Session(
        session_id="ses_1",
        agent_id=agent,
        task="t",
        environment=Environment(env),
        opened_at=opened.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )
    return SessionState(session=session, taint=(), calls={})


def req(agent: str = "bot", tool: str = "read") -> Request:
    return Request(agent_id=agent, session_id="ses_1", tool=tool)


def test_nothing_stopped_continues(db: Store) -> None:
    ks = make(db)
    assert ks.check(req(), state(), T0) is None


@pytest.mark.parametrize(
    ("scope", "hit", "miss"),
    [
        (Scope.agent("bot"), (req("bot"), state("bot")), (req("other"), state("other"))),
        (Scope.tool("pay"), (req(tool="pay"), state()), (req(tool="read"), state())),
        (
            Scope.environment("production"),
            (req(), state(env="production")),
            (req(), state(env="staging")),
        ),
    ],
)
def test_halt_denies_exactly_its_scope(
    db: Store, scope: Scope, hit: tuple[Request, SessionState], miss: tuple[Request, SessionState]
) -> None:
    ks = make(db)
    ks.halt(scope, operator=ADMIN, reason="incident", now=T0)
    verdict = ks.check(*hit, T0)
    assert verdict is not None
    assert (verdict.outcome, verdict.rule) == (Outcome.DENY, "kill-switch")
    assert ks.check(*miss, T0) is None


def test_halt_all_stops_everything(db: Store) -> None:
    ks = make(db)
    ks.halt(Scope.everything(), operator=ADMIN, reason="incident", now=T0)
    for agent in ("a", "b"):
        verdict = ks.check(req(agent, "x"), state(agent, "production"), T0)
        assert verdict is not None
        assert verdict.rule == "kill-switch"


def test_reason_shown_to_agent_does_not_leak_operator_reason(db: Store) -> None:
    ks = make(db)
    ks.halt(Scope.agent("bot"), operator=ADMIN, reason="suspected exfil to evil.example", now=T0)
    verdict = ks.check(req(), state(), T0)
    assert verdict is not None
    assert "evil.example" not in verdict.reason


def test_halt_runs_hooks_and_reports_counts_and_failures(db: Store) -> None:
    ks = make(db, replica="n1")
    cancelled: list[str] = []

    def cancel(agent: str, now: datetime) -> int:
        cancelled.append(agent)
        return 2

    def broken(scope: Scope, now: datetime) -> int:
        raise RuntimeError("vault unreachable")

    ks.on_halt("approvals.cancelled", agent_hook(cancel))
    ks.on_halt("credentials.revoked", broken)
    report = ks.halt(Scope.agent("bot"), operator=ADMIN, reason="r", now=T0)
    assert cancelled == ["bot"]
    effects = {e.hook: (e.count, e.error) for e in report.effects}
    assert effects["approvals.cancelled"] == (2, None)
    assert effects["credentials.revoked"][0] is None
    assert "vault unreachable" in str(effects["credentials.revoked"][1])
    assert "FAILED" in report.summary()
    status = ks.status().to_dict()
    stored = {e["hook"]: e for e in status["stops"][0]["effects"]}
    assert stored["approvals.cancelled"]["count"] == 2
    assert "vault unreachable" in stored["credentials.revoked"]["error"]


def test_agent_hook_refuses_non_agent_scope_honestly(db: Store) -> None:
    ks = make(db)
    ks.on_halt("tokens.revoked", agent_hook(lambda agent, now: 1))
    report = ks.halt(Scope.tool("pay"), operator=ADMIN, reason="r", now=T0)
    (effect,) = report.effects
    assert effect.count is None
    assert "per agent" in str(effect.error)


def test_every_change_is_audited_with_operator_and_reason(db: Store) -> None:
    events = Events()
    ks = make(db, audit=events)
    ks.halt(Scope.agent("bot"), operator=APPROVER, reason="loop", now=T0)
    ks.resume(Scope.agent("bot"), operator=ADMIN, reason="fixed", now=T0)
    assert [(k, f["action"], f["operator"], p["reason"]) for k, f, p in events.events] == [
        ("killswitch", "halt", "bob", "loop"),
        ("killswitch", "resume", "alice", "fixed"),
    ]


def test_halt_stands_when_audit_fails_and_says_so(db: Store) -> None:
    events = Events()
    events.fail = True
    seen: list[Alert] = []
    router = AlertRouter([CallbackSink(seen.append)])
    ks = make(db, audit=events, alerts=router)
    report = ks.halt(Scope.agent("bot"), operator=ADMIN, reason="r", now=T0)
    assert report.problems
    assert "audit" in report.problems[0]
    assert ks.check(req(), state(), T0) is not None
    assert router.flush(5)
    assert any(a.key.startswith("audit:") and a.severity is Severity.CRITICAL for a in seen)


def test_resume_refused_when_it_cannot_be_audited(db: Store) -> None:
    events = Events()
    ks = make(db, audit=events)
    ks.halt(Scope.agent("bot"), operator=ADMIN, reason="r", now=T0)
    events.fail = True
    with pytest.raises(AuditWriteError):
        ks.resume(Scope.agent("bot"), operator=ADMIN, reason="ok", now=T0)
    assert ks.check(req(), state(), T0) is not None


@pytest.mark.parametrize("who", [VIEWER, APPROVER, Operator("agent-bot", frozenset())])
def test_resume_requires_resume_role(db: Store, who: Operator) -> None:
    ks = make(db)
    ks.halt(Scope.agent("bot"), operator=ADMIN, reason="r", now=T0)
    with pytest.raises(AuthorizationError):
        ks.resume(Scope.agent("bot"), operator=who, reason="let me go", now=T0)
    assert ks.check(req(), state(), T0) is not None


def test_viewer_cannot_halt_and_blank_identity_is_refused(db: Store) -> None:
    ks = make(db)
    with pytest.raises(AuthorizationError):
        ks.halt(Scope.agent("bot"), operator=VIEWER, reason="r", now=T0)
    with pytest.raises(AuthorizationError):
        Operator("  ", frozenset({"admin"}))


def test_reason_required(db: Store) -> None:
    ks = make(db)
    with pytest.raises(Exception, match="reason"):
        ks.halt(Scope.agent("bot"), operator=ADMIN, reason=" ", now=T0)


def test_resume_without_stop_is_an_error(db: Store) -> None:
    with pytest.raises(ControlError, match="nothing stops"):
        make(db).resume(Scope.agent("bot"), operator=ADMIN, reason="r", now=T0)


def test_state_survives_restart_and_reaches_other_replicas(db: Store, tmp_path: Path) -> None:
    ks1 = make(db, replica="n1")
    other = open_store(f"sqlite:///{tmp_path / 'clearance.db'}")
    try:
        ks2 = make(other, replica="n2")
        assert ks2.check(req(), state(), T0) is None
        ks1.halt(Scope.agent("bot"), operator=ADMIN, reason="r", now=T0)
        verdict = ks2.check(req(), state(), T0)
        assert verdict is not None
        assert verdict.rule == "kill-switch"
        ks2.resume(Scope.agent("bot"), operator=ADMIN, reason="r", now=T0)
        assert ks1.check(req(), state(), T0) is None
    finally:
        other.close()


def test_polling_replica_sees_change_within_poll_interval(db: Store, tmp_path: Path) -> None:
    other = open_store(f"sqlite:///{tmp_path / 'clearance.db'}")
    try:
        lazy = make(other, poll_s=0.5)
        assert lazy.check(req(), state(), T0) is None
        make(db).halt(Scope.agent("bot"), operator=ADMIN, reason="r", now=T0)
        later = T0 + timedelta(seconds=0.5)
        assert lazy.check(req(), state(), later) is not None
    finally:
        other.close()


def test_poll_interval_over_one_second_is_refused(db: Store) -> None:
    with pytest.raises(Exception, match="one second"):
        make(db, poll_s=2.0)


def test_local_hooks_run_on_a_replica_that_learns_of_the_halt(db: Store, tmp_path: Path) -> None:
    other = open_store(f"sqlite:///{tmp_path / 'clearance.db'}")
    try:
        server = make(other, replica="server")
        killed: list[str] = []
        server.on_halt("sandbox.killed", lambda s, now: killed.append(s.key) or 3, local=True)
        server.check(req(), state(), T0)
        cli = make(db, replica="cli")
        cli.halt(Scope.agent("bot"), operator=ADMIN, reason="r", now=T0)
        assert killed == []
        server.check(req("x"), state("x"), T0)
        server.check(req("x"), state("x"), T0)
        assert killed == ["agent:bot"]
        effects = {
            (e["replica"], e["hook"]): e["count"]
            for e in cli.status().to_dict()["stops"][0]["effects"]
        }
        assert effects == {("server", "sandbox.killed"): 3}
    finally:
        other.close()


def test_drain_refuses_new_sessions_then_halts_after_deadline(db: Store) -> None:
    events = Events()
    ks = make(db, audit=events)
    inflight = state(opened=T0 - timedelta(minutes=5))
    ks.drain(Scope.agent("bot"), operator=ADMIN, reason="deploy", now=T0, timeout_s=60)
    assert ks.check(req(), inflight, T0 + timedelta(seconds=30)) is None
    fresh = ks.check(req(), state(opened=T0 + timedelta(seconds=1)), T0 + timedelta(seconds=30))
    assert fresh is not None
    assert fresh.rule == "drain"
    late = ks.check(req(), inflight, T0 + timedelta(seconds=61))
    assert late is not None
    assert late.rule == "kill-switch"
    (stop,) = ks.status().stops
    assert stop.stop.level == "halt"
    assert "drain timed out" in stop.stop.reason
    assert [f["action"] for _, f, _ in events.events] == ["drain", "drain-timeout"]


def test_tick_escalates_expired_drain_once_across_replicas(db: Store, tmp_path: Path) -> None:
    other = open_store(f"sqlite:///{tmp_path / 'clearance.db'}")
    try:
        runs: list[str] = []
        a, b = make(db, replica="a"), make(other, replica="b")
        for ks in (a, b):
            ks.on_halt("tokens.revoked", lambda s, now, ks=ks: runs.append(ks.replica) or 0)
        a.drain(Scope.agent("bot"), operator=ADMIN, reason="r", now=T0, timeout_s=10)
        b.check(req("x"), state("x"), T0)
        later = T0 + timedelta(seconds=11)
        assert len(a.tick(later)) == 1
        assert b.tick(later) == []
        assert runs == ["a"]
    finally:
        other.close()


def test_weaker_stop_cannot_replace_stronger(db: Store) -> None:
    ks = make(db)
    ks.halt(Scope.agent("bot"), operator=ADMIN, reason="r", now=T0)
    with pytest.raises(ControlError, match="already stopped"):
        ks.drain(Scope.agent("bot"), operator=ADMIN, reason="r", now=T0)
    report = ks.trip("bot", "rate-spike", "spike", T0)
    assert not report.changed
    assert report.stop.level == "halt"


def test_breaker_trip_denies_with_breaker_rule_and_escalates_to_halt(db: Store) -> None:
    ks = make(db)
    ks.trip("bot", "consecutive-failures", "6 failures", T0)
    verdict = ks.check(req(), state(), T0)
    assert verdict is not None
    assert verdict.rule == "breaker:consecutive-failures"
    ks.halt(Scope.agent("bot"), operator=APPROVER, reason="escalated", now=T0)
    verdict = ks.check(req(), state(), T0)
    assert verdict is not None
    assert verdict.rule == "kill-switch"


def test_halt_beats_drain_beats_breaker_across_scopes(db: Store) -> None:
    ks = make(db)
    ks.trip("bot", "rate-spike", "x", T0)
    ks.drain(Scope.environment("staging"), operator=ADMIN, reason="r", now=T0, timeout_s=600)
    new_session = state(opened=T0 + timedelta(seconds=1))
    assert ks.check(req(), new_session, T0 + timedelta(seconds=2)).rule == "drain"  # type: ignore[union-attr]
    ks.halt(Scope.tool("read"), operator=ADMIN, reason="r", now=T0)
    assert ks.check(req(), new_session, T0 + timedelta(seconds=2)).rule == "kill-switch"  # type: ignore[union-attr]


def test_unreadable_store_raises_so_the_gate_answers_silence() -> None:
    broken = KillSwitch(_Unavailable())  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailableError):
        broken.check(req(), state(), T0)


class _Unavailable:
    """A control store whose database is gone (what the SQL layer raises when it cannot read)."""

    def control_version(self) -> int:
        raise StoreUnavailableError("the store is down (test)")

    def __getattr__(self, name: str) -> Any:
        raise StoreUnavailableError("the store is down (test)")
