"""What the kill switch and breaker bookkeeping add to ``Gate.decide()``, in one run.

    python bench/control.py [--n N]

Two gates on one SQLite store and one policy, no audit shard, decided alternately so that disk
and cache noise hit both alike:

* plain: ``decide()`` of a permitted call with no control parts (the in-run baseline);
* control: the same call through a gate wired with the control plane's pre-check (kill switch,
  re-reading its version row every 0.25 s), override (unusual sequence) and breaker observer.

Because a decision's own latency varies by more than the work measured, the two parts are also
timed in isolation on the same inputs: ``KillSwitch.check`` (nothing stopped; one unrelated stop
in force; the strict setting that reads the version row on every decision) and
``Breakers.on_decision``. Every sample is checked for the outcome it must have.
The target is at most 20 us p99 added.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.control_kit import ADMIN, CONTROL_POLICY, START

from clearance.control.killswitch import KillSwitch
from clearance.control.plane import ControlPlane
from clearance.control.scope import Scope
from clearance.gate.clock import FixedClock, SystemClock
from clearance.gate.gate import Gate
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.policy import load_policy
from clearance.store import open_store
from clearance.store.control_sql import control_store


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        clock = SystemClock()
        bundle = load_policy(CONTROL_POLICY, source_name="control-bench.yaml")
        plain = Gate(store, clock=clock)
        plain.activate(bundle, by="bench")
        plane = ControlPlane(store, clock=clock, metrics=False)
        plane.configure(bundle.compiled)
        controlled = Gate(
            store,
            clock=clock,
            pre_checks=plane.pre_checks,
            overrides=plane.overrides,
            observers=plane.observers,
        )
        controlled.activate(bundle, by="bench")
        s1 = plain.open_session(agent_id="a1", task="research", environment="staging")
        s2 = controlled.open_session(agent_id="a2", task="research", environment="staging")
        r1 = Request(agent_id="a1", session_id=s1.session_id, tool="search")
        r2 = Request(agent_id="a2", session_id=s2.session_id, tool="search")

        base: list[float] = []
        ctrl: list[float] = []
        for _ in range(n):
            for gate, req, sink in ((plain, r1, base), (controlled, r2, ctrl)):
                t0 = time.perf_counter()
                d = gate.decide(req)
                sink.append((time.perf_counter() - t0) * 1e6)
                assert d.outcome is Outcome.PERMIT, d

        state = store.session_state(s2.session_id)
        assert state is not None
        ks = plane.killswitch
        now = FixedClock(START).now()
        decision = controlled.decide(r2)
        check_clear = _timed(lambda: ks.check(r2, state, now), n)
        ks.halt(Scope.agent("someone-else"), operator=ADMIN, reason="bench", now=now)
        assert ks.check(r2, state, now) is None
        check_stop = _timed(lambda: ks.check(r2, state, now), n)
        observe = _timed(lambda: plane.breakers.on_decision(r2, decision, state), n)
        strict = KillSwitch(control_store(store), poll_s=0.0)
        check_strict = _timed(lambda: strict.check(r2, state, now), n)
        store.close()

    print(f"decide() n={n} per path (us)            p50      p99")
    _row("plain", base)
    _row("with kill switch + breakers", ctrl)
    ratio = _pct(ctrl, 0.5) / _pct(base, 0.5)
    print(f"  ratio p50 {ratio:.3f}   p99 added {_pct(ctrl, 0.99) - _pct(base, 0.99):+.1f} us")
    print("parts in isolation (us)")
    _row("KillSwitch.check, nothing stopped", check_clear)
    _row("KillSwitch.check, one other stop", check_stop)
    _row("KillSwitch.check, strict (poll 0)", check_strict)
    _row("Breakers.on_decision", observe)
    added = _pct(check_stop, 0.99) + _pct(observe, 0.99)
    print(f"  sum of parts p99 {added:.1f} us (target < 20 us; strict mode adds the version read)")


def _row(label: str, samples: list[float]) -> None:
    print(f"  {label:<36} {_pct(samples, 0.5):8.1f} {_pct(samples, 0.99):8.1f}")


if __name__ == "__main__":
    main()
