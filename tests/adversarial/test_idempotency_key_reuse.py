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


def test_approved_resubmission_under_the_same_key_runs_once(tmp_path) -> None:
    from tests.approvals_kit import BOB, START, build_kit

    from clearance.gate.clock import FixedClock
    from clearance.store import open_store

    kit = build_kit(open_store(f"sqlite:///{tmp_path / 'c.db'}"), FixedClock(START))
    s = kit.session()
    request = kit.request(s, "transfer_funds", amount=50.0, to_account="acc-9").model_copy(
        update={"idempotency_key": "pay-77"}
    )
    pending = kit.decide(request)
    assert pending.outcome is Outcome.APPROVAL
    kit.service.approve(pending.approval_id or "", BOB, kit.clock.now())
    token = kit.token_for(pending, request)
    executed = kit.decide(request, token)
    assert executed.outcome is Outcome.PERMIT
    # a retry of the same approved call (lost response) is never a second dispatch
    again = kit.decide(request, token)
    assert again.outcome is not Outcome.PERMIT
    # and the key without a token still answers with the original APPROVAL
    assert kit.decide(request).decision_id == pending.decision_id
