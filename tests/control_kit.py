"""A real gate with the control plane wired as the composition root wires it (``rig`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from clearance.control.alerts import Alert, AlertRouter, CallbackSink
from clearance.control.operator import Operator
from clearance.control.plane import ControlPlane
from clearance.gate.clock import FixedClock
from clearance.gate.gate import Gate
from clearance.model.decision import Decision
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.model.session import Session
from clearance.policy import load_policy
from clearance.store import open_store
from clearance.store.protocol import Store

CONTROL_POLICY = """\
version: "1"
name: control-test
default: deny
tools:
  search: {tier: read-only}
  fetch: {tier: read-only}
  summarize: {tier: read-only}
  export: {tier: write-limited}
tasks:
  research: {tools: [search, fetch, summarize, export]}
environments:
  development: {}
  staging: {}
  production: {}
rules:
  - id: reads
    tools: [search, fetch, summarize, export]
    outcome: permit
    reason: research tools are allowed
breakers:
  warmup_calls: 10
  floor_calls_per_window: 10
  floor_output_bytes: 4096
"""

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADMIN = Operator("alice", frozenset({"admin"}))


@dataclass
class Rig:
    store: Store
    clock: FixedClock
    gate: Gate
    plane: ControlPlane
    alerts: list[Alert] = field(default_factory=list)

    def session(self, agent: str = "bot", task: str = "research") -> Session:
        return self.gate.open_session(agent_id=agent, task=task, environment="staging")

    def call(self, session: Session, tool: str = "search", **args: Any) -> Decision:
        return self.gate.decide(
            Request(agent_id=session.agent_id, session_id=session.session_id, tool=tool, args=args)
        )

    def result(
        self, session: Session, decision: Decision, *, ok: bool = True, size: int = 500
    ) -> None:
        self.gate.report(
            ActionResult(decision_id=decision.decision_id, success=ok, output_size=size),
            agent_id=session.agent_id,
        )

    def trips(self) -> list[tuple[str, str]]:
        return [(s.stop.scope, s.stop.rule) for s in self.plane.killswitch.status().stops]


def build_rig(store: Store, clock: FixedClock, **plane_kw: Any) -> Rig:
    alerts: list[Alert] = []
    router = AlertRouter([CallbackSink(alerts.append)])
    plane = ControlPlane(store, clock=clock, alerts=router, **plane_kw)
    bundle = load_policy(CONTROL_POLICY, source_name="control-test.yaml")
    plane.configure(bundle.compiled)
    gate = Gate(
        store,
        clock=clock,
        pre_checks=plane.pre_checks,
        overrides=plane.overrides,
        observers=plane.observers,
    )
    gate.activate(bundle, by="test")
    return Rig(store, clock, gate, plane, alerts)


@pytest.fixture(name="rig")
def rig_fixture(tmp_path: Path) -> Iterator[Rig]:
    store = open_store(f"sqlite:///{tmp_path / 'clearance.db'}")
    try:
        yield build_rig(store, FixedClock(START))
    finally:
        store.close()
