"""Kill-switch drills and the readiness doctor.

A kill switch that was never pulled is a hope, not a control. ``run_drill`` pulls it end to end
against a live gate with a scratch agent, and records every step::

    report = run_drill(gate, killswitch, operator=Operator("alice", frozenset({"admin"})),
                       clock=gate.clock, tokens=TokenProbe(...))
    assert report.ok, report.failures()

Steps: open a scratch session -> (issue an execution token) -> halt the scratch agent -> prove a
call is DENY ``kill-switch`` -> prove the token no longer redeems -> resume -> prove calls are no
longer stopped -> close the session. The halt is always resumed, whatever failed before. Without a
token service the revocation step fails with the reason: a drill never claims what it did not see.

``doctor`` lists what would make the next incident worse: no drill for 30 days (or ever, or the
last one failed), no alert sink, surfaces still in shadow mode, stops left in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from clearance.control.killswitch import KILL_SWITCH_RULE, EventSink, KillSwitch
from clearance.control.operator import Operator
from clearance.control.scope import Scope
from clearance.control.times import NowSource, iso, parse_time
from clearance.errors import ClearanceError
from clearance.model.decision import Decision, Outcome
from clearance.model.ids import new_ulid
from clearance.model.request import Request
from clearance.model.session import Session
from clearance.policy.compile import CompiledPolicy
from clearance.store.control_sql import ControlStore, DrillRecord
from clearance.store.protocol import Store

DRILL_TASK = "clearance-drill"
DRILL_TOOL = "clearance.drill"
MAX_DRILL_AGE = timedelta(days=30)


class DrillGate(Protocol):
    """The slice of ``Gate`` a drill drives."""

    def open_session(self, *, agent_id: str, task: str, environment: str) -> Session:
        """Open a session as a trusted orchestrator would."""
        ...

    def decide(self, request: Request) -> Decision:
        """Decide one request."""
        ...

    def close_session(self, session_id: str) -> None:
        """Close the session."""
        ...


class TokenProbe(Protocol):
    """A real execution token for the scratch agent, and whether it would still redeem."""

    def issue(self, agent_id: str, session_id: str) -> str:
        """Issue a token the scratch agent holds."""
        ...

    def valid(self, token: str) -> bool:
        """True while the token could still be redeemed."""
        ...


@dataclass(frozen=True, slots=True)
class DrillStep:
    """One step and what was observed."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class DrillReport:
    """Every step of one drill; ``ok`` only when every step passed."""

    drill_id: str
    agent_id: str
    started_at: str
    finished_at: str
    steps: tuple[DrillStep, ...]

    @property
    def ok(self) -> bool:
        """True when every step passed."""
        return bool(self.steps) and all(s.ok for s in self.steps)

    def failures(self) -> list[str]:
        """``name: detail`` of each failed step."""
        return [f"{s.name}: {s.detail}" for s in self.steps if not s.ok]


class _Steps:
    def __init__(self) -> None:
        self.done: list[DrillStep] = []

    def add(self, name: str, *, ok: bool, detail: str) -> None:
        self.done.append(DrillStep(name, ok, detail))


def run_drill(
    gate: DrillGate,
    killswitch: KillSwitch,
    *,
    operator: Operator,
    clock: NowSource,
    tokens: TokenProbe | None = None,
    audit: EventSink | None = None,
    task: str = DRILL_TASK,
    environment: str = "development",
) -> DrillReport:
    """Halt a scratch agent, prove it is stopped and its token revoked, resume; record the drill.

    ``task`` and ``environment`` are those of the scratch session: pick a task type of the policy
    in force when the token probe needs a real approval in it.
    """
    drill_id = new_ulid()
    agent = f"drill-{drill_id.lower()}"
    started = iso(clock.now())
    steps = _Steps()
    session = gate.open_session(agent_id=agent, task=task, environment=environment)
    steps.add("open scratch session", ok=True, detail=session.session_id)
    token = _issue(tokens, agent, session.session_id, steps)
    scope = Scope.agent(agent)
    halted = False
    try:
        report = killswitch.halt(
            scope, operator=operator, reason=f"kill-switch drill {drill_id}", now=clock.now()
        )
        halted = True
        steps.add("halt", ok=not report.problems, detail=report.summary())
        denied = gate.decide(_probe(agent, session.session_id))
        steps.add(
            "call denied while halted",
            ok=denied.outcome is Outcome.DENY and denied.rule == KILL_SWITCH_RULE,
            detail=f"{denied.outcome.value} {denied.rule}",
        )
        if tokens is None or token is None:
            steps.add(
                "token revoked", ok=False, detail="no token service wired: revocation not proven"
            )
        else:
            still = tokens.valid(token)
            steps.add(
                "token revoked", ok=not still, detail="revoked" if not still else "STILL VALID"
            )
    finally:
        if halted:
            killswitch.resume(
                scope, operator=operator, reason=f"end of drill {drill_id}", now=clock.now()
            )
            steps.add("resume", ok=True, detail=f"by {operator.id}")
    after = gate.decide(_probe(agent, session.session_id))
    steps.add(
        "calls no longer stopped",
        ok=after.rule != KILL_SWITCH_RULE,
        detail=f"{after.outcome.value} {after.rule}",
    )
    gate.close_session(session.session_id)
    result = DrillReport(drill_id, agent, started, iso(clock.now()), tuple(steps.done))
    _record(killswitch.store, result, operator, audit)
    return result


def _issue(tokens: TokenProbe | None, agent: str, session_id: str, steps: _Steps) -> str | None:
    if tokens is None:
        return None
    try:
        token = tokens.issue(agent, session_id)
    except ClearanceError as exc:
        steps.add("issue token", ok=False, detail=str(exc))
        return None
    steps.add("issue token", ok=True, detail="issued")
    return token


def _probe(agent: str, session_id: str) -> Request:
    return Request(agent_id=agent, session_id=session_id, tool=DRILL_TOOL, args={"drill": True})


def _record(
    store: ControlStore, report: DrillReport, operator: Operator, audit: EventSink | None
) -> None:
    steps: list[dict[str, Any]] = [
        {"name": s.name, "ok": s.ok, "detail": s.detail} for s in report.steps
    ]
    store.record_drill(
        DrillRecord(
            report.drill_id, operator.id, report.started_at, report.finished_at, report.ok, steps
        )
    )
    if audit is not None:
        audit.record_event(
            "killswitch",
            {
                "action": "drill",
                "drill_id": report.drill_id,
                "operator": operator.id,
                "ok": report.ok,
            },
            {"steps": steps},
        )


# doctor ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Finding:
    """One readiness finding; ``warn`` findings should be fixed before the next incident."""

    check: str
    warn: bool
    message: str


def _warn(check: str, message: str) -> Finding:
    return Finding(check, warn=True, message=message)


def _ok(check: str, message: str) -> Finding:
    return Finding(check, warn=False, message=message)


def doctor(
    control: ControlStore,
    store: Store,
    *,
    now: datetime,
    alerts_configured: bool,
    policy: CompiledPolicy | None,
    recent: int = 1000,
) -> list[Finding]:
    """Readiness of the kill switch: drills, alert sinks, shadow mode and stops left in force."""
    findings = [_drill_finding(control.last_drill(), now)]
    findings.append(
        _ok("alerts", "an alert sink is configured")
        if alerts_configured
        else _warn(
            "alerts",
            "no alert sink is configured: halts and breaker trips would alert nobody "
            "(`clearance alerts --webhook URL` or `--log`)",
        )
    )
    findings.extend(_shadow_findings(store, policy, recent))
    for stop in control.stops():
        findings.append(
            _warn(
                "stops",
                f"{stop.scope} is stopped ({stop.level}, {stop.rule}) since {stop.created_at} "
                f"by {stop.operator}: {stop.reason}",
            )
        )
    return findings


def _drill_finding(last: DrillRecord | None, now: datetime) -> Finding:
    if last is None:
        return _warn("drill", "no kill-switch drill was ever recorded (`clearance drill`)")
    age = now - parse_time(last.finished_at)
    if not last.ok:
        return _warn("drill", f"the last drill ({last.finished_at}) failed; run it again")
    if age > MAX_DRILL_AGE:
        return _warn(
            "drill",
            f"the last drill was {age.days} days ago (more than {MAX_DRILL_AGE.days})",
        )
    return _ok("drill", f"last drill passed at {last.finished_at}")


def _shadow_findings(store: Store, policy: CompiledPolicy | None, recent: int) -> list[Finding]:
    surfaces: set[str] = set()
    if policy is not None:
        if policy.shadow:
            return [_warn("shadow", "the whole policy is in shadow mode: nothing is enforced")]
        surfaces = {name for name, tool in policy.tools.items() if tool.shadow}
    latest: dict[str, bool] = {}
    for record in store.recent_decisions(limit=recent):
        tool = str(record.request.get("tool", ""))
        latest.setdefault(tool, bool(record.decision.get("shadow", False)))
    surfaces |= {tool for tool, shadow in latest.items() if shadow}
    if not surfaces:
        return [_ok("shadow", "no surface is in shadow mode")]
    return [
        _warn(
            "shadow",
            f"`{tool}` is still in shadow mode: its DENY and APPROVAL are not enforced",
        )
        for tool in sorted(surfaces)
    ]
