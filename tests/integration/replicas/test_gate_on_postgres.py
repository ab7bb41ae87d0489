"""The gate on the PostgreSQL store: decisions, idempotency across gates, and SILENCE when it is down.

Two ``Gate`` objects on one database stand for two replicas (the HTTP server and separate
processes are exercised on top of this elsewhere).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.conftest import SMALL_POLICY

from clearance.gate.gate import Gate
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.policy import load_policy

pytestmark = pytest.mark.postgres


@pytest.fixture
def gates(pg_database_url: str) -> Iterator[list[Gate]]:
    from clearance.store.postgres import PostgresStore

    stores = [PostgresStore(pg_database_url) for _ in range(2)]
    first = Gate(stores[0])
    first.activate(load_policy(SMALL_POLICY, source_name="small.yaml"), by="test")
    second = Gate(stores[1])
    second.load_active()  # the other replica picks the active policy up from the store
    yield [first, second]
    for store in stores:
        store.close()


def read(session_id: str, key: str | None = None) -> Request:
    return Request(
        agent_id="fin-1",
        session_id=session_id,
        tool="read_account",
        args={"account_id": "acc-1"},
        idempotency_key=key,
    )


def test_both_replicas_decide_with_the_same_policy(gates: list[Gate]) -> None:
    a, b = gates
    s = a.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    da, db = a.decide(read(s.session_id)), b.decide(read(s.session_id))  # b sees a's session
    assert da.outcome is db.outcome is Outcome.PERMIT
    assert da.policy == db.policy
    state = a.store.session_state(s.session_id)
    assert state is not None
    assert dict(state.calls) == {"read_account": 2}


def test_an_idempotency_key_is_honoured_by_the_other_replica(gates: list[Gate]) -> None:
    a, b = gates
    s = a.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    first = a.decide(read(s.session_id, key="k-1"))
    again = b.decide(read(s.session_id, key="k-1"))
    assert again.decision_id == first.decision_id


def test_database_unreachable_means_silence_then_recovery(
    gates: list[Gate], pg_database_url: str, pg_admin: Any
) -> None:
    a, _ = gates
    s = a.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    assert a.decide(read(s.session_id)).outcome is Outcome.PERMIT
    name = urlsplit(pg_database_url).path.lstrip("/")
    pg_admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    pg_admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
    )
    try:
        for _ in range(3):
            down = a.decide(read(s.session_id))
            assert down.outcome is Outcome.SILENCE
            assert down.rule == "store"
    finally:
        pg_admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    # recovery is automatic: the pool reconnects on its own, within seconds even on a loaded host
    deadline = time.monotonic() + 20
    outcome = a.decide(read(s.session_id)).outcome
    while outcome is not Outcome.PERMIT and time.monotonic() < deadline:
        time.sleep(0.2)
        outcome = a.decide(read(s.session_id)).outcome
    assert outcome is Outcome.PERMIT
    assert a.decide(read(s.session_id)).outcome is Outcome.PERMIT
