"""The control plane assembled: kill switch, breakers, outcome monitor and metrics, wired once.

``ControlPlane`` is what a composition root (the CLI, the server) builds and hands to the gate::

    plane = ControlPlane(store, clock=clock, audit=audit_log, alerts=router,
                         pending=approvals, notifier=notifier_for(store), replica="node-1")
    plane.killswitch.on_halt("approvals.cancelled", agent_hook(approvals.cancel_for))
    plane.killswitch.on_halt("tokens.revoked", agent_hook(approvals.revoke_tokens_for))
    plane.killswitch.on_halt("sandbox.killed", agent_hook(kill_jobs), local=True)
    gate = Gate(store, pre_checks=plane.pre_checks, overrides=plane.overrides,
                observers=plane.observers)
    plane.configure(gate.bundle.compiled)      # after every policy activation

The kill switch re-reads its version row at most every ``poll_s`` (0.25 s by default; 0 reads it
on every decision): a change made through this plane is in force at once, one made by another
process or replica within ``poll_s``, or at once when a ``notifier`` delivers its notice.

The order matters and is fixed here: the kill switch is the first pre-check, the breakers'
unusual-sequence override runs after policy, and observers run breakers, monitor, metrics.
"""

from __future__ import annotations

from collections.abc import Callable

from clearance.control.alerts import AlertRouter
from clearance.control.breakers import BreakerConfig, Breakers, PendingApprovals
from clearance.control.killswitch import EventSink, KillSwitch
from clearance.control.metrics import GateMetrics
from clearance.control.monitor import MonitorConfig, OutcomeMonitor
from clearance.control.times import NowSource
from clearance.policy.compile import CompiledPolicy
from clearance.store.control_sql import control_store
from clearance.store.notify import Notifier
from clearance.store.protocol import Store


class ControlPlane:
    """Every control part of one gate node; ``pre_checks``/``overrides``/``observers`` for ``Gate``."""

    def __init__(
        self,
        store: Store,
        *,
        clock: NowSource,
        alerts: AlertRouter | None = None,
        audit: EventSink | None = None,
        pending: PendingApprovals | None = None,
        pending_total: Callable[[], float] | None = None,
        audit_lag: Callable[[], float] | None = None,
        notifier: Notifier | None = None,
        replica: str = "node",
        poll_s: float = 0.25,
        config: BreakerConfig | None = None,
        monitor: MonitorConfig | None = None,
        metrics: bool = True,
    ) -> None:
        self.alerts = alerts or AlertRouter([])
        control = control_store(store)
        self.killswitch = KillSwitch(
            control,
            replica=replica,
            audit=audit,
            alerts=self.alerts,
            notifier=notifier,
            poll_s=poll_s,
        )
        self.breakers = Breakers(
            self.killswitch,
            store,
            control,
            clock=clock,
            config=config,
            pending=pending,
            alerts=self.alerts,
        )
        self.monitor = OutcomeMonitor(self.alerts, clock=clock, config=monitor)
        self.metrics = (
            GateMetrics(
                clock=clock,
                killswitch=self.killswitch,
                pending_total=pending_total,
                audit_lag=audit_lag,
                alerts=self.alerts,
            )
            if metrics
            else None
        )

    def configure(self, policy: CompiledPolicy) -> None:
        """Take breaker thresholds from the policy in force."""
        self.breakers.configure(BreakerConfig.from_policy(policy))

    @property
    def pre_checks(self) -> list[KillSwitch]:
        """Pre-checks for ``Gate``: the kill switch (halts, then drains, then breaker trips)."""
        return [self.killswitch]

    @property
    def overrides(self) -> list[Breakers]:
        """Overrides for ``Gate``: the unusual-sequence breaker."""
        return [self.breakers]

    @property
    def observers(self) -> list[Breakers | OutcomeMonitor | GateMetrics]:
        """Observers for ``Gate``: breaker bookkeeping, the outcome monitor, metrics."""
        found: list[Breakers | OutcomeMonitor | GateMetrics] = [self.breakers, self.monitor]
        if self.metrics is not None:
            found.append(self.metrics)
        return found
