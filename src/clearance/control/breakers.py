"""Circuit breakers: pause an agent automatically when its behaviour turns anomalous.

``Breakers`` is a gate ``Observer`` (bookkeeping after each decision and reported result) and a
gate ``Override`` (the unusual-sequence breaker, which changes the verdict of the call itself).
Thresholds come from the policy's ``breakers:`` section (``BreakerConfig.from_policy``):

* ``rate-spike``: the calls of the last window exceed ``factor`` x the agent's baseline (per tool,
  and over all tools) -> pause the agent, alert;
* ``consecutive-failures``: more than ``threshold`` failed results in a row -> pause, alert;
* ``unusual-sequence``: a tool never permitted before in this task type -> that call needs
  approval (or is denied, or let through, as the policy says), and an alert says which;
* ``data-volume``: an output over ``factor`` x the normal size for the agent and tool -> pause,
  alert;
* ``approval-backlog``: more than ``approvals.max_pending_per_agent`` approvals pending for the
  agent -> pause, alert.

A *pause* is a breaker trip through the kill switch (DENY ``breaker:<name>`` for the agent until an
operator resumes it or escalates it to a halt); the action ``alert`` only alerts. Baselines warm up
over ``warmup_calls`` observations and never fall below their floors, so a quiet agent does not trip
on its second call. Decisions made by a stop (kill switch, drain, breaker) are not counted: a
halted agent that keeps knocking must not teach the baseline that knocking is normal.

Consecutive-failure counts live in memory (a restart forgets a streak); baselines, the tools seen
per task type and the warm-up counters are saved in the store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from clearance.control.alerts import Alert, AlertRouter, Severity
from clearance.control.baseline import ALL_TOOLS, BaselineBook, SequenceBook
from clearance.control.killswitch import DRAIN_RULE, KILL_SWITCH_RULE, KillSwitch
from clearance.control.scope import Scope
from clearance.control.times import NowSource, iso
from clearance.errors import ClearanceError
from clearance.model.decision import Decision, Outcome, Verdict
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.policy.compile import CompiledPolicy
from clearance.policy.document import Breakers as BreakerSection
from clearance.store.control_sql import ControlStore
from clearance.store.protocol import SessionState, Store

log = logging.getLogger("clearance.control.breakers")

RATE_SPIKE = "rate-spike"
CONSECUTIVE_FAILURES = "consecutive-failures"
UNUSUAL_SEQUENCE = "unusual-sequence"
DATA_VOLUME = "data-volume"
APPROVAL_BACKLOG = "approval-backlog"
_DEFAULT_MAX_PENDING = 3


class PendingApprovals(Protocol):
    """How many approvals wait for a human (``ApprovalService`` and ``BacklogMonitor`` fit)."""

    def pending_count(self, agent_id: str) -> int:
        """Pending approvals of ``agent_id``."""
        ...


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Breaker thresholds: the policy's ``breakers:`` section and the approval backlog limit."""

    section: BreakerSection = field(default_factory=BreakerSection)
    max_pending_per_agent: int = _DEFAULT_MAX_PENDING

    @classmethod
    def from_policy(cls, compiled: CompiledPolicy) -> BreakerConfig:
        """The thresholds a compiled policy sets (its defaults are the documented ones)."""
        return cls(compiled.breakers, compiled.approvals.max_pending_per_agent)


def _stopped_rule(rule: str) -> bool:
    return rule in (KILL_SWITCH_RULE, DRAIN_RULE) or rule.startswith("breaker:")


class Breakers:
    """Breaker bookkeeping (``on_decision``/``on_result``) and the unusual-sequence override."""

    def __init__(
        self,
        killswitch: KillSwitch,
        store: Store,
        control: ControlStore,
        *,
        clock: NowSource,
        config: BreakerConfig | None = None,
        pending: PendingApprovals | None = None,
        alerts: AlertRouter | None = None,
        flush_s: float = 10.0,
    ) -> None:
        self.config = config or BreakerConfig()
        section = self.config.section
        self._ks = killswitch
        self._store = store
        self._control = control
        self._clock = clock
        self._pending = pending
        self._alerts = alerts
        self._flush_every = timedelta(seconds=flush_s)
        self._next_flush: datetime | None = None
        self._lock = threading.Lock()
        self.book = BaselineBook(window_s=section.rate_spike.window.total_seconds())
        self.book.load(control.baselines())
        self.sequences = SequenceBook(warmup=section.warmup_calls)
        self.sequences.seen = control.seen_tools()
        self.sequences.counts = control.task_calls()
        self._failures: dict[str, int] = {}
        killswitch.on_resume(self._resumed)

    def configure(self, config: BreakerConfig) -> None:
        """Apply new thresholds (after a policy activation); learned baselines are kept."""
        with self._lock:
            self.config = config
            self.sequences.warmup = config.section.warmup_calls

    # Override: unusual sequence ------------------------------------------------------------
    def apply(
        self, request: Request, state: SessionState, verdict: Verdict, now: datetime
    ) -> Verdict:
        """Turn a PERMIT for a tool never used before in this task type into APPROVAL (or DENY)."""
        rule = self.config.section.unusual_sequence
        if not rule.enabled or verdict.outcome is not Outcome.PERMIT:
            return verdict
        task = state.session.task
        if not self.sequences.unusual(task, request.tool):
            return verdict
        reason = f"`{request.tool}` was never called before in task type `{task}`"
        held = {"approval": "held for approval", "deny": "denied", "alert": "let through"}
        self._alert(
            f"{UNUSUAL_SEQUENCE}:{task}:{request.tool}",
            f"{reason}; the call was {held[rule.action]}",
            now,
            request.agent_id,
        )
        if rule.action == "alert":
            return verdict
        outcome = Outcome.APPROVAL if rule.action == "approval" else Outcome.DENY
        return verdict.model_copy(
            update={
                "outcome": outcome,
                "rule": f"breaker:{UNUSUAL_SEQUENCE}",
                "reason": reason,
                "approvers": max(verdict.approvers, 1),
            }
        )

    # Observer --------------------------------------------------------------------------------
    def on_decision(self, request: Request, decision: Decision, state: SessionState | None) -> None:
        """Count the call against the rate baselines; learn tools; watch the approval backlog."""
        if state is None or _stopped_rule(decision.rule):
            return
        now = self._clock.now()
        section = self.config.section
        agent = request.agent_id
        floor = section.floor_calls_per_window
        with self._lock:
            t = now.timestamp()
            spike: tuple[str, float, float] | None = None
            for tool in (request.tool, ALL_TOOLS):
                count, baseline = self.book.observe_call(agent, tool, t)
                if spike is not None or count <= floor:
                    continue  # the limit is never below the floor: nothing to compute
                limit = baseline.limit(
                    factor=section.rate_spike.factor, floor=floor, warmup=section.warmup_calls
                )
                if limit is not None and count > limit:
                    spike = (tool, count, limit)
        if spike is not None and section.rate_spike.enabled:
            tool, count, limit = spike
            which = "all tools" if tool == ALL_TOOLS else f"`{tool}`"
            self._fire(
                RATE_SPIKE,
                section.rate_spike.action,
                agent,
                f"{count:.0f} calls to {which} in the last window, over the limit of {limit:.0f}",
                now,
            )
        if decision.outcome is Outcome.PERMIT:
            self._learn(state.session.task, request.tool, now)
        elif decision.outcome is Outcome.APPROVAL:
            self._check_backlog(agent, now)
        self._maybe_flush(now)

    def on_result(self, result: ActionResult, decision: Mapping[str, Any]) -> None:
        """Count failures in a row and compare the output size with the normal one."""
        del decision  # the stored decision does not name the agent; the archived request does
        record = self._store.get_decision(result.decision_id)
        if record is None:
            return
        agent = str(record.request.get("agent_id", ""))
        tool = str(record.request.get("tool", ""))
        now = self._clock.now()
        section = self.config.section
        with self._lock:
            streak = 0 if result.success else self._failures.get(agent, 0) + 1
            self._failures[agent] = streak
            size = self.book.size(agent, tool)
            limit = size.limit(
                factor=section.data_volume.factor,
                floor=section.floor_output_bytes,
                warmup=section.warmup_calls,
            )
            oversized = limit is not None and result.output_size > limit
            if not oversized:
                self.book.observe_size(agent, tool, result.output_size)
        failures = section.consecutive_failures
        if failures.enabled and streak > failures.threshold:
            self._fire(
                CONSECUTIVE_FAILURES,
                failures.action,
                agent,
                f"{streak} failed tool calls in a row (limit {failures.threshold})",
                now,
            )
        if oversized and section.data_volume.enabled:
            self._fire(
                DATA_VOLUME,
                section.data_volume.action,
                agent,
                f"`{tool}` returned {result.output_size} bytes, over the limit of {limit:.0f}",
                now,
            )
        self._maybe_flush(now)

    # internals ---------------------------------------------------------------------------------
    def _learn(self, task: str, tool: str, now: datetime) -> None:
        with self._lock:
            new, counting = self.sequences.observe(task, tool)
        if not (new or counting):
            return  # the common case once learned: no store write, no formatting
        at = iso(now)
        if new:
            self._control.add_seen_tool(task, tool, at)
        if counting:
            self._control.add_task_calls(task, 1, at)

    def _check_backlog(self, agent: str, now: datetime) -> None:
        rule = self.config.section.approval_backlog
        if self._pending is None or not rule.enabled:
            return
        pending = self._pending.pending_count(agent)
        limit = self.config.max_pending_per_agent
        if pending > limit:
            self._fire(
                APPROVAL_BACKLOG,
                rule.action,
                agent,
                f"{pending} approvals pending (limit {limit})",
                now,
            )

    def _fire(self, breaker: str, action: str, agent: str, reason: str, now: datetime) -> None:
        if action == "alert":
            self._alert(f"{breaker}:{agent}", reason, now, agent)
            return
        if self._ks.stop_for_agent(agent) is not None:
            return
        try:
            self._ks.trip(agent, breaker, reason, now)
        except ClearanceError:
            log.exception("breaker %s could not pause %s", breaker, agent)
            self._alert(f"{breaker}:{agent}:failed", f"could not pause: {reason}", now, agent)

    def _alert(self, key: str, text: str, now: datetime, agent: str) -> None:
        if self._alerts is not None:
            self._alerts.send(
                Alert(
                    key=f"breaker:{key}",
                    severity=Severity.WARNING,
                    title=f"breaker on agent:{agent}",
                    text=text,
                    at=now,
                    fields={"agent": agent},
                )
            )

    def _resumed(self, scope: Scope) -> None:
        with self._lock:
            if scope.kind == "agent":
                self._failures.pop(scope.value, None)
                self.book.forget_agent(scope.value)
            elif scope.kind == "all":
                self._failures.clear()
                for baseline in self.book.rates.values():
                    baseline.forget_window()

    def _maybe_flush(self, now: datetime) -> None:
        if self._next_flush is not None and now < self._next_flush:
            return
        self._next_flush = now + self._flush_every
        self.flush(now)

    def flush(self, now: datetime) -> int:
        """Save the baselines changed since the last flush; return how many rows were written."""
        with self._lock:
            rows = self.book.dirty_records(iso(now))
        if rows:
            self._control.put_baselines(rows)
        return len(rows)
