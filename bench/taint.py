"""Benchmark of what session taint and value provenance add to ``Gate.decide``.

Run: ``python bench/taint.py [--decisions N] [--cpu]``. The budget (issue 8) is under 10 microseconds added
to a decision by the taint and provenance lookup.

Two measurements in one run, both on the FinanceApp policy plus one provenance rule
(``only_untrusted(args.to_account)`` -> approval), in a session whose provenance holds the
instruction, the policy data and a 2 KB trusted tool output:

* **lookup**: the per-decision work the wiring adds, timed alone: ``SessionTaint.for_session``
  (cache hit), the recording wrapper, the lazy ``scan`` mapping and the archived extra facts, plus
  one ``sources()`` question as the provenance rule asks it - answered from the view's memo, and
  (second figure) asked for the first time, which normalises the value;
* **decide**: ``Gate.decide`` end to end on a real SQLite store (no audit log), once on a gate
  without a provenance source and once with ``SessionTaint`` wired, interleaved in batches; the
  ratio is of the medians of the per-batch means.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from clearance.gate.clock import SystemClock
from clearance.gate.gate import Gate
from clearance.gate.outbound import OutboundScan
from clearance.gate.taint import (
    PolicyView,
    RecordingProvenance,
    SessionTaint,
    decision_extra,
)
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.model.session import Session
from clearance.policy import load_policy
from clearance.policy.bundle import Bundle
from clearance.store import open_store
from clearance.store.protocol import Store

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "financeapp" / "policy.yaml"
INSTRUCTION = "Pay the March invoice of 240.00 EUR to ACC-100002 from ACC-000001."
TRUSTED_OUTPUT = {
    "account": "ACC-000001",
    "transactions": [
        {"to": f"ACC-{100000 + i:06d}", "amount": f"{i * 17.5:.2f}", "memo": f"invoice {i}"}
        for i in range(40)
    ],
}
BATCH = 200
CLOCK: Callable[[], float] = time.perf_counter
"""Wall-clock by default; ``--cpu`` switches to this process's CPU time."""


def policy() -> Bundle:
    """FinanceApp with one rule that asks a provenance question on every transfer."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["rules"].append(
        {
            "id": "payee-only-untrusted",
            "tools": ["transfer_funds"],
            "when": "only_untrusted(args.to_account)",
            "outcome": "approval",
            "reason": "the payee was seen only in untrusted content",
        }
    )
    return load_policy(yaml.safe_dump(doc, sort_keys=False), source_name="bench-taint.yaml")


def build(
    store: Store, bundle: Bundle, *, wired: bool
) -> tuple[Gate, Session, SessionTaint | None]:
    """A gate (with or without ``SessionTaint``) and a transfer session with recorded provenance."""
    gate = Gate(store, clock=SystemClock())
    taint = None
    if wired:
        taint = SessionTaint(
            store, policies=lambda digest: gate.bundle_by_digest(digest).compiled, clock=gate.clock
        )
        gate.provenance = taint
        gate.observers.append(taint)
    gate.activate(bundle, by="bench")
    session = gate.open_session(
        agent_id="fin-1", task="transfer", environment="staging", instruction=INSTRUCTION
    )
    if taint is not None:
        taint.record(
            session.session_id,
            "trusted-tool:read_account",
            TRUSTED_OUTPUT,
            compiled=bundle.compiled,
        )
    return gate, session, taint


def request(session: Session) -> Request:
    return Request(
        agent_id=session.agent_id,
        session_id=session.session_id,
        tool="transfer_funds",
        args={"from_account": "ACC-000001", "to_account": "ACC-100002", "amount": 240.0},
    )


def time_per_call(fn: Callable[[], object], calls: int) -> float:
    """Median over 5 runs of the mean seconds per call."""
    runs = []
    for _ in range(5):
        start = CLOCK()
        for _ in range(calls):
            fn()
        runs.append((CLOCK() - start) / calls)
    return statistics.median(runs)


def lookup_costs(store: Store, bundle: Bundle) -> tuple[float, float]:
    """Seconds per decision of the work the wiring adds: memoised answer, and first question."""
    gate, session, taint = build(store, bundle, wired=True)
    assert taint is not None
    state = store.session_state(session.session_id)
    assert state is not None
    req = request(session)
    compiled = bundle.compiled
    assert gate.decide(req).outcome is Outcome.PERMIT
    provenance = taint._cache[session.session_id].provenance

    def added(view: Callable[[], PolicyView | object]) -> Callable[[], object]:
        def run() -> object:
            asked = RecordingProvenance(view())  # type: ignore[arg-type]
            scan = OutboundScan(req.args, req.target)
            asked.sources(req.args["to_account"])
            return decision_extra(asked, scan.computed)

        return run

    warm = time_per_call(added(lambda: taint.for_session(state, compiled)), 20_000)
    cold = time_per_call(added(lambda: PolicyView(provenance)), 20_000)
    return warm, cold


def decide_costs(tmp: Path, bundle: Bundle, decisions: int) -> tuple[float, float]:
    """Median per-batch mean seconds per ``decide``: without and with the wiring."""
    plain_store = open_store(f"sqlite:///{tmp / 'plain.db'}")
    wired_store = open_store(f"sqlite:///{tmp / 'wired.db'}")
    try:
        plain, plain_session, _ = build(plain_store, bundle, wired=False)
        wired, wired_session, _ = build(wired_store, bundle, wired=True)
        plain_req, wired_req = request(plain_session), request(wired_session)
        assert plain.decide(plain_req).outcome is Outcome.PERMIT
        assert wired.decide(wired_req).outcome is Outcome.PERMIT
        plain_runs: list[float] = []
        wired_runs: list[float] = []
        for _ in range(max(1, decisions // BATCH)):
            for gate, req, runs in ((plain, plain_req, plain_runs), (wired, wired_req, wired_runs)):
                start = CLOCK()
                for _ in range(BATCH):
                    gate.decide(req)
                runs.append((CLOCK() - start) / BATCH)
        return statistics.median(plain_runs), statistics.median(wired_runs)
    finally:
        plain_store.close()
        wired_store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=4000, help="decisions per gate")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time CPU use of this process instead of wall-clock (a machine shared with other work)",
    )
    options = parser.parse_args()
    global CLOCK  # one switch for every measurement of the run
    if options.cpu:
        CLOCK = time.process_time
    bundle = policy()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'lookup.db'}")
        try:
            warm, cold = lookup_costs(store, bundle)
        finally:
            store.close()
        plain, wired = decide_costs(Path(tmp), bundle, options.decisions)
    print(f"lookup added per decision: {warm * 1e6:.2f} us (budget 10 us)")
    print(f"  first question on a value: {cold * 1e6:.2f} us (normalising it)")
    print(f"decide without provenance: {plain * 1e6:.1f} us")
    print(f"decide with provenance:    {wired * 1e6:.1f} us")
    print(f"ratio with/without:        {wired / plain:.3f}")


if __name__ == "__main__":
    main()
