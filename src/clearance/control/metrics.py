"""Prometheus metrics of the gate, as a gate ``Observer`` plus collectors read at scrape time.

Each ``GateMetrics`` owns its own ``CollectorRegistry`` (several gates in one process, and tests,
never collide); the server exposes ``render()`` at ``/metrics``::

    metrics = GateMetrics(clock=gate.clock, killswitch=ks, pending=approvals, alerts=router)
    gate = Gate(store, observers=[metrics])
    body, content_type = metrics.render(), CONTENT_TYPE_LATEST

Series:

* ``clearance_decisions_total{outcome,tool,agent,rule}``
* ``clearance_decision_latency_seconds`` (histogram): from the decision's timestamp (taken when the
  pipeline started) to the moment observers run, i.e. including the audit commit
* ``clearance_pending_approvals``: read from the approval service at scrape time
* ``clearance_killswitch_stops{scope,level,rule}`` and ``clearance_breaker_tripped{agent,breaker}``:
  the stops in the store at scrape time (``clearance_control_store_up`` 0 when it cannot be read)
* ``clearance_audit_write_failures_total`` (decisions that were SILENCE because the log failed) and
  ``clearance_audit_lag_seconds`` (from the audit appender, when one is wired)
* ``clearance_policy_info{digest}``: 1 for the policy that made the latest decision
* ``clearance_alerts_total{result}``: accepted, suppressed, dropped, delivered and failed alerts

The ``agent`` and ``tool`` labels multiply: a deployment with thousands of agents should drop the
``agent`` label (``per_agent=False``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from clearance.control.alerts import AlertRouter
from clearance.control.killswitch import KillSwitch
from clearance.control.scope import Level
from clearance.control.times import NowSource, parse_time
from clearance.errors import ClearanceError
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.store.protocol import SessionState

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _StateCollector(Collector):
    """Kill-switch stops, breaker trips and alert counters, read when Prometheus scrapes."""

    def __init__(self, killswitch: KillSwitch | None, alerts: AlertRouter | None) -> None:
        self._ks = killswitch
        self._alerts = alerts

    def collect(self) -> Iterator[Metric]:
        if self._ks is not None:
            stops = GaugeMetricFamily(
                "clearance_killswitch_stops",
                "Stops in force (1 per scope): halt, drain or breaker",
                labels=["scope", "level", "rule"],
            )
            trips = GaugeMetricFamily(
                "clearance_breaker_tripped",
                "Agents paused by a breaker (1 per agent and breaker)",
                labels=["agent", "breaker"],
            )
            up = GaugeMetricFamily(
                "clearance_control_store_up", "1 when the kill-switch state could be read"
            )
            try:
                records = self._ks.store.stops()
            except ClearanceError:
                up.add_metric([], 0)
            else:
                up.add_metric([], 1)
                for s in records:
                    stops.add_metric([s.scope, s.level, s.rule], 1)
                    if s.level == Level.BREAKER:
                        trips.add_metric(
                            [s.scope.removeprefix("agent:"), s.rule.removeprefix("breaker:")], 1
                        )
            yield stops
            yield trips
            yield up
        if self._alerts is not None:
            st = self._alerts.stats
            fam = GaugeMetricFamily(
                "clearance_alerts", "Alerts by what happened to them", labels=["result"]
            )
            fam.add_metric(["accepted"], st.accepted)
            fam.add_metric(["suppressed"], st.suppressed)
            fam.add_metric(["dropped"], st.dropped)
            fam.add_metric(["delivered"], sum(st.delivered.values()))
            fam.add_metric(["failed"], sum(st.failed.values()))
            yield fam


class GateMetrics:
    """Gate ``Observer`` that maintains the Prometheus series listed in the module docstring."""

    def __init__(
        self,
        *,
        clock: NowSource,
        killswitch: KillSwitch | None = None,
        pending_total: Callable[[], float] | None = None,
        audit_lag: Callable[[], float] | None = None,
        alerts: AlertRouter | None = None,
        per_agent: bool = True,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._per_agent = per_agent
        self._lock = threading.Lock()
        self._policy: str | None = None
        self.decisions = Counter(
            "clearance_decisions",
            "Decisions by outcome, tool, agent and deciding rule",
            ["outcome", "tool", "agent", "rule"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "clearance_decision_latency_seconds",
            "Time from the start of the pipeline until observers ran (audit commit included)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audit_failures = Counter(
            "clearance_audit_write_failures",
            "Decisions answered SILENCE because the audit log could not be written",
            registry=self.registry,
        )
        self.policy_info = Gauge(
            "clearance_policy_info",
            "1 for the digest of the policy in force",
            ["digest"],
            registry=self.registry,
        )
        if pending_total is not None:
            Gauge(
                "clearance_pending_approvals",
                "Approval requests waiting for a human",
                registry=self.registry,
            ).set_function(pending_total)
        if audit_lag is not None:
            Gauge(
                "clearance_audit_lag_seconds",
                "Age of the oldest audit entry not yet committed",
                registry=self.registry,
            ).set_function(audit_lag)
        self.registry.register(_StateCollector(killswitch, alerts))

    def on_decision(self, request: Request, decision: Decision, state: SessionState | None) -> None:
        """Count the decision, observe its latency, track the policy in force."""
        del state
        agent = request.agent_id if self._per_agent else ""
        self.decisions.labels(decision.outcome.value, request.tool, agent, decision.rule).inc()
        elapsed = (self._clock.now() - parse_time(decision.time)).total_seconds()
        self.latency.observe(max(elapsed, 0.0))
        if decision.outcome is Outcome.SILENCE and decision.rule == "audit":
            self.audit_failures.inc()
        if decision.policy != self._policy:
            with self._lock:
                if decision.policy == self._policy:
                    return
                if self._policy is not None:
                    self.policy_info.remove(self._policy)
                self._policy = decision.policy
                self.policy_info.labels(decision.policy).set(1)

    def on_result(self, result: ActionResult, decision: Mapping[str, Any]) -> None:
        """Results are counted by the audit log, not here."""
        del result, decision

    def render(self) -> bytes:
        """The text exposition format for ``/metrics``."""
        return generate_latest(self.registry)
