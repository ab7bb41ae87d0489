"""Attack: reuse an idempotency key with changed arguments to ride on an earlier decision."""

from __future__ import annotations

import threading

from clearance.gate.gate import Gate
from clearance.model.decision import Outcome
from clearance.model.request import Request


def test_same_key_with_other_args_is_denied(gate: Gate) -> None:
    s = gate.open_session(agent_id="fin-1", task="transfer", environment="staging")
    base = {
        "agent_id": "fin-1",
        "session_id": s.session_id,
        "tool": "transfer_funds",
        "idempotency_key": "k1",
    }
    first = gate.decide(Request(**base, args={"amount": 10.0, "to_account": "acc-1"}))
    assert first.outcome is Outcome.PERMIT
    swapped = gate.decide(Request(**base, args={"amount": 999.0, "to_account": "acc-2"}))
    assert swapped.outcome is Outcome.DENY
    assert swapped.rule == "idempotency-conflict"


def test_concurrent_retries_get_one_decision(gate: Gate) -> None:
    s = gate.open_session(agent_id="fin-1", task="transfer", environment="staging")
    req = Request(
        agent_id="fin-1",
        session_id=s.session_id,
        tool="transfer_funds",
        args={"amount": 10.0, "to_account": "acc-1"},
        idempotency_key="retry-1",
    )
    results: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        d = gate.decide(req)
        with lock:
            results.append(d.decision_id)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    state = gate.store.session_state(s.session_id)
    assert state is not None
    assert state.calls == {"transfer_funds": 1}
