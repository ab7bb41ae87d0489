"""The kill switch: drains, halts and breaker trips, persisted and checked before anything else.

``KillSwitch`` is a gate pre-check (``check``) and the one place that changes stops. Its rules:

* **State lives in the store.** A stop survives restarts and is shared by replicas. Every check
  reads ``control_version`` (one row) and reloads the stops when it moved, so a halt made on
  another replica or by the CLI is seen by the next decision (with ``poll_s > 0``, within
  ``poll_s`` seconds; call ``invalidate()`` from a change notification to see it at once). A store
  that cannot be read raises, which the gate turns into SILENCE: never a PERMIT.
* **It needs nothing from the agent.** A halt is a row in the store plus hooks that act on other
  subsystems (cancel approvals, revoke tokens and credentials, kill sandboxed jobs); a hung or
  hostile agent is simply denied at its next call.
* **Order.** A halt in any matching scope is DENY ``kill-switch``; then drains (``drain`` for a new
  session, a halt once the drain deadline passed); then breaker trips (``breaker:<name>``).
* **Honest effects.** Each hook returns how many things it stopped; the count (or the error it
  raised) is stored per stop, replica and hook, and ``status()`` shows exactly that.
* **Every change is audited** as a ``killswitch`` event with the operator and reason. Stopping
  never waits for the audit log (a stop that could not be audited is still in force, reported as a
  problem and alerted); resuming is refused unless its audit event is written.

::

    ks = KillSwitch(control_store(store), replica="node-1", audit=audit_log, alerts=router)
    ks.on_halt("tokens.revoked", lambda scope: tokens.revoke_for(scope.value) if scope.kind == "agent" else 0)
    gate = Gate(store, pre_checks=[ks])
    ks.halt(Scope.agent("bot"), operator=Operator("alice", frozenset({"admin"})),
            reason="refund loop", now=clock.now())
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from clearance.control.alerts import Alert, AlertRouter, Severity
from clearance.control.drain import DEFAULT_DRAIN_TIMEOUT_S, DrainState, drain_deadline, drain_state
from clearance.control.errors import ControlError, ScopeNotCoveredError
from clearance.control.operator import HALT_ROLES, RESUME_ROLES, Operator
from clearance.control.scope import Level, Scope
from clearance.control.times import iso, parse_time
from clearance.errors import ClearanceError, RequestError
from clearance.model.decision import Outcome, Verdict
from clearance.model.ids import new_ulid
from clearance.model.request import Request
from clearance.store.control_sql import ControlStore, EffectRecord, HistoryRecord, StopRecord
from clearance.store.notify import Notice, Notifier
from clearance.store.protocol import SessionState

log = logging.getLogger("clearance.control.killswitch")

#: A halt hook: stop what it owns in ``scope`` at ``now`` and return how many things it stopped.
HaltHook = Callable[[Scope, datetime], int]

#: The notification channel every replica's kill switch listens on.
CHANNEL = "clearance.killswitch"

KILL_SWITCH_RULE = "kill-switch"
DRAIN_RULE = "drain"
_CAS_ATTEMPTS = 5


class EventSink(Protocol):
    """Where kill-switch changes are audited (``clearance.gate.hooks.AuditSink`` fits)."""

    def record_event(self, kind: str, fields: dict[str, Any], payload: dict[str, Any]) -> None:
        """Append one event; raises when it could not be written."""
        ...


@dataclass(frozen=True, slots=True)
class _Hook:
    name: str
    fn: HaltHook
    local: bool


@dataclass(frozen=True, slots=True)
class StopReport:
    """What a drain, halt or trip did: the stop in force, each hook's effect and any problems.

    ``changed`` is False when a stronger stop was already in place and nothing was written.
    """

    stop: StopRecord
    effects: tuple[EffectRecord, ...] = ()
    problems: tuple[str, ...] = ()
    changed: bool = True

    def summary(self) -> str:
        """One line: the stop and what each hook did."""
        done = ", ".join(_effect_text(e) for e in self.effects) or "no halt hooks ran"
        return f"{self.stop.level} {self.stop.scope} ({self.stop.rule}): {done}"


@dataclass(frozen=True, slots=True)
class StopStatus:
    """One stop in force and every effect recorded for it, on every replica."""

    stop: StopRecord
    effects: tuple[EffectRecord, ...]


@dataclass(frozen=True, slots=True)
class ControlStatus:
    """The kill-switch state as stored, with the hooks this node has and recent changes."""

    version: int
    stops: tuple[StopStatus, ...]
    hooks: tuple[str, ...]
    history: tuple[HistoryRecord, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the operator API and ``status --json``."""
        return {
            "version": self.version,
            "hooks": list(self.hooks),
            "stops": [
                {
                    "scope": s.stop.scope,
                    "level": s.stop.level,
                    "rule": s.stop.rule,
                    "reason": s.stop.reason,
                    "operator": s.stop.operator,
                    "since": s.stop.created_at,
                    "deadline": s.stop.deadline,
                    "effects": [
                        {"replica": e.replica, "hook": e.hook, "count": e.count, "error": e.error}
                        for e in s.effects
                    ],
                }
                for s in self.stops
            ],
            "history": [
                {
                    "at": h.at,
                    "action": h.action,
                    "scope": h.scope,
                    "operator": h.operator,
                    "reason": h.reason,
                }
                for h in self.history
            ],
        }


def _effect_text(e: EffectRecord) -> str:
    if e.error is not None:
        return f"{e.hook} FAILED ({e.error})"
    return f"{e.hook}={e.count}"


def _deny(rule: str, reason: str) -> Verdict:
    return Verdict(outcome=Outcome.DENY, rule=rule, reason=reason)


class KillSwitch:
    """Drains, halts, breaker trips and resumes; a gate ``PreCheck`` through ``check``."""

    def __init__(
        self,
        store: ControlStore,
        *,
        replica: str = "node",
        audit: EventSink | None = None,
        alerts: AlertRouter | None = None,
        notifier: Notifier | None = None,
        poll_s: float = 0.0,
        halt_roles: frozenset[str] = HALT_ROLES,
        resume_roles: frozenset[str] = RESUME_ROLES,
    ) -> None:
        if not 0 <= poll_s <= 1:
            raise RequestError(
                f"poll_s must be between 0 and 1 second, not {poll_s}",
                hint="a halt on another replica must be seen within one second",
            )
        self.store = store
        self.replica = replica
        self.audit = audit
        self.alerts = alerts
        self._poll = timedelta(seconds=poll_s)
        self._halt_roles = halt_roles
        self._resume_roles = resume_roles
        self._hooks: list[_Hook] = []
        self._resume_listeners: list[Callable[[Scope], None]] = []
        self._lock = threading.Lock()
        self._version = -1
        self._index: dict[str, StopRecord] = {}
        self._next_poll: datetime | None = None
        self._applied: set[str] = set()
        self._notifier = notifier
        if notifier is not None:
            notifier.subscribe(CHANNEL, self._on_notice)

    # wiring -------------------------------------------------------------------------------
    def on_halt(self, name: str, hook: HaltHook, *, local: bool = False) -> None:
        """Register a side effect of halts and breaker trips.

        A *shared* hook acts on state every replica shares (approvals, tokens and credentials in
        the store, Vault leases) and runs once, where the stop is made. A *local* hook acts on
        this process only (its sandboxed jobs) and runs on every replica when it first sees the
        stop, so a halt typed into the CLI still kills the jobs the server is running.
        """
        if any(h.name == name for h in self._hooks):
            raise RequestError(f"a halt hook named `{name}` is already registered")
        self._hooks.append(_Hook(name, hook, local))

    def on_resume(self, listener: Callable[[Scope], None]) -> None:
        """Call ``listener`` after a scope is resumed (breakers reset their counters)."""
        self._resume_listeners.append(listener)

    @property
    def hook_names(self) -> tuple[str, ...]:
        """Registered hooks, marked ``(local)`` where they run on every replica."""
        return tuple(f"{h.name} (local)" if h.local else h.name for h in self._hooks)

    # the pre-check ------------------------------------------------------------------------
    def check(self, request: Request, state: SessionState, now: datetime) -> Verdict | None:
        """DENY when a halt, drain or breaker trip covers this request; None to continue."""
        index = self._current(now)
        if not index:
            return None
        env = state.session.environment.value
        found = [
            stop
            for key in (
                "all",
                f"agent:{request.agent_id}",
                f"tool:{request.tool}",
                f"environment:{env}",
            )
            if (stop := index.get(key)) is not None
        ]
        for stop in found:
            if stop.level == Level.HALT:
                return _deny(
                    KILL_SWITCH_RULE,
                    f"the kill switch is on for {stop.scope} since {stop.created_at}",
                )
        for stop in found:
            if stop.level == Level.DRAIN and stop.deadline is not None:
                where = drain_state(
                    began=stop.created_at,
                    deadline=stop.deadline,
                    session_opened=state.session.opened_at,
                    now=now,
                )
                if where is DrainState.EXPIRED:
                    self._expire_drain(stop, now)
                    return _deny(
                        KILL_SWITCH_RULE, f"the drain of {stop.scope} timed out; it is halted"
                    )
                if where is DrainState.NEW_SESSION:
                    return _deny(DRAIN_RULE, f"{stop.scope} is draining: no new sessions or tasks")
        for stop in found:
            if stop.level == Level.BREAKER:
                return _deny(
                    stop.rule, f"{stop.scope} is paused by {stop.rule} until an operator reviews it"
                )
        return None

    def stop_for_agent(self, agent_id: str) -> StopRecord | None:
        """The stop on ``agent:<id>`` as last loaded (breakers use it to avoid re-tripping)."""
        return self._index.get(f"agent:{agent_id}")

    def invalidate(self) -> None:
        """Force a reload at the next check (call from a store change notification)."""
        with self._lock:
            self._version = -1
            self._next_poll = None

    def _on_notice(self, notice: Notice) -> None:
        del notice  # a hint only: the store is re-read at the next check
        self.invalidate()

    def _notify(self, scope: str) -> None:
        if self._notifier is None:
            return
        try:
            self._notifier.notify(CHANNEL, scope)
        except ClearanceError:
            # Other replicas still see the change through the version row within ``poll_s``.
            log.exception("could not notify other replicas of the change to %s", scope)

    def _current(self, now: datetime) -> dict[str, StopRecord]:
        next_poll = self._next_poll
        if next_poll is not None and now < next_poll:
            return self._index
        version = self.store.control_version()
        if version != self._version:
            self._reload(version, now)
        if self._poll:
            self._next_poll = now + self._poll
        return self._index

    def _reload(self, version: int, now: datetime) -> None:
        stops = self.store.stops()
        fresh: list[StopRecord] = []
        with self._lock:
            if version < self._version:
                return
            self._index = {s.scope: s for s in stops}
            self._version = version
            for s in stops:
                if s.level != Level.DRAIN and s.stop_id not in self._applied:
                    self._applied.add(s.stop_id)
                    fresh.append(s)
        # INVARIANT: each stop's local hooks run once per replica (``_applied`` guards it).
        for stop in fresh:
            self._record_effects(self._run_hooks(stop, now, local=True), [])

    def _refresh_now(self, now: datetime) -> None:
        self._reload(self.store.control_version(), now)
        self._next_poll = None

    # changes ------------------------------------------------------------------------------
    def halt(self, scope: Scope, *, operator: Operator, reason: str, now: datetime) -> StopReport:
        """Emergency stop: deny every decision in ``scope`` and run every halt hook."""
        operator.require(self._halt_roles, "halt")
        return self._make(
            scope, Level.HALT, KILL_SWITCH_RULE, _reason(reason), operator.id, now, action="halt"
        )

    def drain(
        self,
        scope: Scope,
        *,
        operator: Operator,
        reason: str,
        now: datetime,
        timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
    ) -> StopReport:
        """Graceful stop: refuse new sessions in ``scope``; halt it once ``timeout_s`` has passed."""
        operator.require(self._halt_roles, "drain")
        deadline = iso(drain_deadline(now, timeout_s))
        return self._make(
            scope,
            Level.DRAIN,
            DRAIN_RULE,
            _reason(reason),
            operator.id,
            now,
            action="drain",
            deadline=deadline,
        )

    def trip(self, agent_id: str, breaker: str, reason: str, now: datetime) -> StopReport:
        """Pause ``agent_id`` for breaker ``breaker`` (automatic; no operator).

        Acts like a halt of that agent until an operator resumes it or escalates it to a halt
        with ``halt``; an agent already halted or tripped is left as it is (``changed`` False).
        """
        return self._make(
            Scope.agent(agent_id),
            Level.BREAKER,
            f"breaker:{breaker}",
            reason,
            f"breaker:{breaker}",
            now,
            action="trip",
        )

    def resume(self, scope: Scope, *, operator: Operator, reason: str, now: datetime) -> StopRecord:
        """Lift the stop on ``scope``; needs a resume role and a written audit event.

        Returns the stop that was lifted. Raises ``ControlError`` when nothing stops the scope or
        when the stop changed while this ran; raises the audit sink's error (and leaves the stop in
        force) when the resume could not be audited.
        """
        operator.require(self._resume_roles, "resume")
        why = _reason(reason)
        stop = self._stored(scope.key)
        if stop is None:
            raise ControlError(f"nothing stops {scope.key}", hint="see `clearance status`")
        # Audit first: a resume that cannot be audited must not happen, and auditing before the
        # removal leaves no moment in which the scope runs unstopped and unaudited.
        self._audit("resume", stop, operator.id, why, {})
        removed = self.store.remove_stop(
            scope.key,
            stop_id=stop.stop_id,
            action="resume",
            operator=operator.id,
            reason=why,
            at=iso(now),
        )
        if not removed:
            try:
                self._audit(
                    "resume-aborted", stop, operator.id, "the stop changed concurrently", {}
                )
            except Exception:  # the first event already names the attempt
                log.exception("could not audit the aborted resume of %s", scope.key)
            raise ControlError(
                f"the stop on {scope.key} changed while resuming",
                hint="check `clearance status` and try again",
            )
        self._refresh_now(now)
        self._notify(scope.key)
        for listener in self._resume_listeners:
            listener(scope)
        self._alert(
            Severity.INFO,
            f"resume:{scope.key}:{stop.stop_id}",
            f"{scope.key} resumed",
            f"by {operator.id}: {why}",
            now,
        )
        return stop

    def tick(self, now: datetime) -> list[StopReport]:
        """Turn every expired drain into a halt; call periodically (the server does, every second)."""
        self._current(now)
        reports = []
        for stop in list(self._index.values()):
            if (
                stop.level == Level.DRAIN
                and stop.deadline is not None
                and now >= parse_time(stop.deadline)
            ):
                report = self._expire_drain(stop, now)
                if report is not None:
                    reports.append(report)
        return reports

    def _expire_drain(self, drain: StopRecord, now: datetime) -> StopReport | None:
        halt = StopRecord(
            stop_id=new_ulid(),
            scope=drain.scope,
            level=Level.HALT.value,
            rule=KILL_SWITCH_RULE,
            reason=f"drain timed out: {drain.reason}",
            operator=drain.operator,
            created_at=iso(now),
        )
        with self._lock:
            self._applied.add(halt.stop_id)
        if not self.store.put_stop(halt, action="drain-timeout", replaces=drain.stop_id):
            self._refresh_now(now)
            return None  # another replica escalated it (and ran the shared hooks)
        return self._after_stop(halt, "drain-timeout", now)

    def _stored(self, key: str) -> StopRecord | None:
        return next((s for s in self.store.stops() if s.scope == key), None)

    def _make(
        self,
        scope: Scope,
        level: Level,
        rule: str,
        reason: str,
        operator: str,
        now: datetime,
        *,
        action: str,
        deadline: str | None = None,
    ) -> StopReport:
        stop = StopRecord(
            stop_id=new_ulid(),
            scope=scope.key,
            level=level.value,
            rule=rule,
            reason=reason,
            operator=operator,
            created_at=iso(now),
            deadline=deadline,
        )
        with self._lock:
            # Marked before it is visible in the store, so a concurrent reload on this replica
            # does not run the local hooks a second time.
            self._applied.add(stop.stop_id)
        for _ in range(_CAS_ATTEMPTS):
            existing = self._stored(scope.key)
            if existing is not None:
                held = Level(existing.level).strength
                if level is Level.BREAKER and held >= level.strength:
                    return StopReport(stop=existing, changed=False)
                if held > level.strength:
                    raise ControlError(
                        f"{scope.key} is already stopped by a {existing.level}",
                        hint="a weaker stop cannot replace a stronger one; resume first",
                    )
            replaces = existing.stop_id if existing is not None else None
            if self.store.put_stop(stop, action=action, replaces=replaces):
                return self._after_stop(stop, action, now)
        raise ControlError(
            f"the stop on {scope.key} kept changing concurrently",
            hint="check `clearance status` and retry",
        )

    def _after_stop(self, stop: StopRecord, action: str, now: datetime) -> StopReport:
        problems: list[str] = []
        effects: list[EffectRecord] = []
        # The stop is in force here before any hook runs: hooks may be slow, denials may not wait.
        self._refresh_now(now)
        self._notify(stop.scope)
        if stop.level != Level.DRAIN:
            effects = self._run_hooks(stop, now, local=None)
            self._record_effects(effects, problems)
        payload = {
            "effects": {
                e.hook: (e.count if e.error is None else f"error: {e.error}") for e in effects
            }
        }
        try:
            self._audit(action, stop, stop.operator, stop.reason, payload)
        except Exception as exc:  # noqa: BLE001 - the stop stays in force; the failure is reported
            problems.append(f"the audit event could not be written: {exc}")
            self._alert(
                Severity.CRITICAL,
                f"audit:{stop.stop_id}",
                "kill-switch change not audited",
                str(exc),
                now,
            )
        severity = Severity.CRITICAL if stop.level == Level.HALT else Severity.WARNING
        title = {"halt": "halted", "drain": "draining", "breaker": "paused by a breaker"}[
            stop.level
        ]
        done = ", ".join(_effect_text(e) for e in effects) or "no halt hooks ran"
        self._alert(
            severity,
            f"{action}:{stop.scope}",
            f"{stop.scope} {title}",
            f"{stop.rule} by {stop.operator}: {stop.reason} ({done})",
            now,
            {"scope": stop.scope, "rule": stop.rule, "operator": stop.operator},
        )
        return StopReport(stop=stop, effects=tuple(effects), problems=tuple(problems))

    def _run_hooks(
        self, stop: StopRecord, now: datetime, *, local: bool | None
    ) -> list[EffectRecord]:
        """Run the hooks of ``stop`` (``local=None``: all of them) and capture each result."""
        scope = Scope.parse(stop.scope)
        at = iso(now)
        effects = []
        for hook in self._hooks:
            if local is not None and hook.local != local:
                continue
            try:
                count = int(hook.fn(scope, now))
            except Exception as exc:  # a failing hook is reported and never undoes the halt
                if isinstance(exc, ScopeNotCoveredError):
                    log.info("halt hook %s does not act on %s", hook.name, stop.scope)
                else:
                    log.exception("halt hook %s failed for %s", hook.name, stop.scope)
                effects.append(
                    EffectRecord(
                        stop.stop_id,
                        self.replica,
                        hook.name,
                        None,
                        f"{type(exc).__name__}: {exc}",
                        at,
                    )
                )
            else:
                effects.append(EffectRecord(stop.stop_id, self.replica, hook.name, count, None, at))
        return effects

    def _record_effects(self, effects: list[EffectRecord], problems: list[str]) -> None:
        if not effects:
            return
        try:
            self.store.add_effects(effects)
        except ClearanceError as exc:
            log.exception("could not record halt effects")
            problems.append(f"the hook effects could not be stored: {exc}")

    def _audit(
        self, action: str, stop: StopRecord, operator: str, reason: str, payload: dict[str, Any]
    ) -> None:
        if self.audit is None:
            return
        self.audit.record_event(
            "killswitch",
            {
                "action": action,
                "scope": stop.scope,
                "level": stop.level,
                "rule": stop.rule,
                "stop_id": stop.stop_id,
                "operator": operator,
                "replica": self.replica,
            },
            {"reason": reason, **payload},
        )

    def _alert(
        self,
        severity: Severity,
        key: str,
        title: str,
        text: str,
        now: datetime,
        fields: dict[str, str] | None = None,
    ) -> None:
        if self.alerts is not None:
            self.alerts.send(
                Alert(
                    key=key, severity=severity, title=title, text=text, at=now, fields=fields or {}
                )
            )

    # reading ------------------------------------------------------------------------------
    def status(self, *, history: int = 20) -> ControlStatus:
        """The stops in force with every recorded effect, this node's hooks and recent changes."""
        version = self.store.control_version()
        stops = tuple(
            StopStatus(s, tuple(self.store.effects(s.stop_id))) for s in self.store.stops()
        )
        return ControlStatus(
            version=version,
            stops=stops,
            hooks=self.hook_names,
            history=tuple(self.store.control_history(limit=history)),
        )


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise RequestError(
            "a reason is required", hint="say why, for the audit log and the on-call"
        )
    return text


def agent_hook(fn: Callable[[str, datetime], int]) -> HaltHook:
    """Adapt a per-agent action (``approvals.cancel_for(agent_id, now) -> int``) into a hook.

    For tool, environment and ``all`` scopes such an action cannot know which agents are meant,
    so the hook raises and ``status`` shows that it did not run rather than a reassuring zero.
    """

    def hook(scope: Scope, now: datetime) -> int:
        if scope.kind != "agent":
            raise ScopeNotCoveredError(f"this hook acts per agent and cannot stop {scope.key}")
        return fn(scope.value, now)

    return hook


def effects_by_hook(effects: Iterable[EffectRecord]) -> dict[str, int | None]:
    """``{hook: count}`` summed over replicas; None for a hook that failed everywhere."""
    out: dict[str, int | None] = {}
    for e in effects:
        if e.count is not None:
            out[e.hook] = (out.get(e.hook) or 0) + e.count
        else:
            out.setdefault(e.hook, None)
    return out
