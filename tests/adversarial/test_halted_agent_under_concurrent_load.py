"""Attack: keep the gate busy from another thread so a halt lands mid-stream and slips through.

An agent hammers the gate from its own thread while an operator halts it, either through the
node's own control plane (its default 0.25 s version poll does not matter: a local change is in
force at once) or from another replica's kill switch (a second store connection, as the CLI is)
with the strict setting that reads the version row on every decision. Every decision that
*started* after ``halt()`` returned must be DENY ``kill-switch``: the halt takes effect within
one decision.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tests.control_kit import ADMIN, START, build_rig

from clearance.control.killswitch import KillSwitch
from clearance.control.scope import Scope
from clearance.gate.clock import FixedClock
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request
from clearance.store import open_store
from clearance.store.control_sql import control_store


@pytest.mark.parametrize("via", ["same-node", "other-replica"])
def test_halt_is_seen_by_the_next_decision_under_load(tmp_path: Path, via: str) -> None:
    url = f"sqlite:///{tmp_path / 'clearance.db'}"
    store = open_store(url)
    operator_store = open_store(url)
    try:
        rig = build_rig(store, FixedClock(START), poll_s=0.25 if via == "same-node" else 0.0)
        operator = (
            rig.plane.killswitch
            if via == "same-node"
            else KillSwitch(control_store(operator_store), replica="cli")
        )
        s = rig.session("bot")
        bystander = rig.session("bystander")
        halted = threading.Event()
        stop = threading.Event()
        seen: list[tuple[bool, Decision]] = []
        other: list[Decision] = []

        def hammer() -> None:
            req = Request(agent_id="bot", session_id=s.session_id, tool="search")
            while not stop.is_set():
                after = halted.is_set()
                seen.append((after, rig.gate.decide(req)))

        def bystand() -> None:
            req = Request(agent_id="bystander", session_id=bystander.session_id, tool="search")
            while not stop.is_set():
                other.append(rig.gate.decide(req))

        workers = [threading.Thread(target=hammer), threading.Thread(target=bystand)]
        for w in workers:
            w.start()
        while len(seen) < 30:
            threading.Event().wait(0.005)
        operator.halt(Scope.agent("bot"), operator=ADMIN, reason="runaway", now=START)
        halted.set()
        while sum(1 for after, _ in seen if after) < 30:
            threading.Event().wait(0.005)
        stop.set()
        for w in workers:
            w.join(10)

        before = [d for after, d in seen if not after]
        after = [d for after, d in seen if after]
        assert any(d.outcome is Outcome.PERMIT for d in before)
        assert after
        assert all((d.outcome, d.rule) == (Outcome.DENY, "kill-switch") for d in after)
        assert other
        assert all(d.rule != "kill-switch" for d in other)  # other agents unaffected
    finally:
        operator_store.close()
        store.close()
