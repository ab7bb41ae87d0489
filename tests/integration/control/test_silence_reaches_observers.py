"""A SILENCE is observed like any decision: counted in the metrics and raising health alerts.

Before, only decisions that reached the store were passed to observers, so the gate's own
failures (store down, no policy) were invisible to ``/metrics`` and to the health alerts meant
to report them.
"""

from __future__ import annotations

from pathlib import Path

from clearance.control.alerts import Alert, AlertRouter, CallbackSink, Severity
from clearance.control.metrics import GateMetrics
from clearance.control.monitor import MonitorConfig, OutcomeMonitor
from clearance.gate.clock import FixedClock
from clearance.gate.gate import Gate
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.policy.bundle import Bundle
from clearance.store.protocol import Store


def _observed(
    store: Store, clock: FixedClock
) -> tuple[Gate, GateMetrics, list[Alert], AlertRouter]:
    alerts: list[Alert] = []
    router = AlertRouter([CallbackSink(alerts.append)], dedup_s=0)
    metrics = GateMetrics(clock=clock.now)
    monitor = OutcomeMonitor(router, clock=clock, config=MonitorConfig())
    return Gate(store, clock=clock, observers=[metrics, monitor]), metrics, alerts, router


def _count(metrics: GateMetrics, rule: str) -> float | None:
    return metrics.registry.get_sample_value(
        "clearance_decisions_total",
        {"outcome": "SILENCE", "tool": "read_account", "agent": "fin-1", "rule": rule},
    )


def test_a_decision_without_a_policy_is_counted(store: Store, clock: FixedClock) -> None:
    gate, metrics, _alerts, _router = _observed(store, clock)
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    decision = gate.decide(
        Request(agent_id="fin-1", session_id=s.session_id, tool="read_account", args={})
    )
    assert (decision.outcome, decision.rule) == (Outcome.SILENCE, "no-policy")
    assert _count(metrics, "no-policy") == 1.0


def test_a_store_failure_is_counted_and_alerted(
    store: Store, clock: FixedClock, small_bundle: Bundle
) -> None:
    gate, metrics, alerts, router = _observed(store, clock)
    gate.activate(small_bundle, by="test")
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    store.close()
    path = Path(store.url.removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    path.mkdir()  # nothing can open the database any more
    decision = gate.decide(
        Request(
            agent_id="fin-1",
            session_id=s.session_id,
            tool="read_account",
            args={"account_id": "acc-1"},
        )
    )
    assert (decision.outcome, decision.rule) == (Outcome.SILENCE, "store")
    assert _count(metrics, "store") == 1.0
    assert router.flush(5)
    health = [a for a in alerts if a.key == "health:store"]
    assert health, alerts
    assert health[0].severity is Severity.CRITICAL
