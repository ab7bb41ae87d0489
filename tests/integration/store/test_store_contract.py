"""The store contract: what every backend of ``store/protocol.py`` guarantees, tested on each.

One suite, parametrised over ``[sqlite, postgres]`` (see ``conftest.py``). Backend-specific
behaviour (WAL, advisory locks, reconnection) is tested elsewhere; anything here holds for both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from clearance.errors import ConflictError, StoreError
from clearance.model.session import Environment, Session
from clearance.store.protocol import (
    DecisionRecord,
    IdempotencyRecord,
    SessionState,
    Store,
    StoredBundle,
)

T0 = "2026-03-01T12:00:00.000000Z"


def ts(second: int) -> str:
    """An ISO timestamp ``second`` seconds after noon (sortable as text, like the gate's)."""
    return f"2026-03-01T12:{second // 60:02d}:{second % 60:02d}.000000Z"


def ulid(n: int) -> str:
    """Decision ids sort by time; a fixed-width stand-in keeps the expected order obvious."""
    return f"01JTEST{n:019d}"


def make_session(session_id: str = "ses_1", agent_id: str = "agent-a", **kw: Any) -> Session:
    fields: dict[str, Any] = {
        "session_id": session_id,
        "agent_id": agent_id,
        "task": "refund order 42",
        "environment": Environment.PRODUCTION,
        "opened_at": T0,
    }
    fields.update(kw)
    return Session(**fields)


def make_record(n: int, *, agent_id: str = "agent-a", outcome: str = "PERMIT") -> DecisionRecord:
    return DecisionRecord(
        decision_id=ulid(n),
        request={"agent_id": agent_id, "tool": "payments.refund", "args": {"amount": n}},
        facts={"session": {"task": "refund order 42"}},
        decision={"outcome": outcome, "rule": f"rule-{n}"},
        policy="sha256:" + "ab" * 32,
        created_at=ts(n),
    )


def make_idem(n: int, *, key: str = "key-1", agent_id: str = "agent-a") -> IdempotencyRecord:
    return IdempotencyRecord(
        agent_id=agent_id,
        key=key,
        digest="sha256:" + f"{n:064x}",
        decision_id=ulid(n),
        decision={"outcome": "PERMIT", "decision_id": ulid(n)},
        created_at=ts(n),
    )


def record(
    store: Store,
    n: int,
    *,
    session_id: str = "ses_1",
    tool: str = "payments.refund",
    count_call: bool = True,
    idem: IdempotencyRecord | None = None,
) -> IdempotencyRecord | None:
    return store.record_decision(
        make_record(n), session_id=session_id, tool=tool, count_call=count_call, idempotency=idem
    )


def state(store: Store, session_id: str = "ses_1") -> SessionState:
    found = store.session_state(session_id)
    assert found is not None
    return found


def run_together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` on ``n`` threads released at the same instant; re-raise any failure."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results


# schema and lifecycle ---------------------------------------------------------------------------
def test_migrate_is_idempotent_and_reaches_latest(store: Store) -> None:
    assert store.migrate() == []
    applied, latest = store.schema_version()
    assert applied == latest
    assert latest >= 1


def test_fresh_store_migrates_every_version(open_handle: Callable[[], Store]) -> None:
    fresh = open_handle()
    before = fresh.schema_version()
    # the ``store`` fixture was not used: this handle sees an unmigrated store
    assert before[0] == 0
    names = fresh.migrate()
    assert names
    assert names[0].startswith("0001_")
    assert fresh.schema_version() == (before[1], before[1])


def test_ping_answers(store: Store) -> None:
    store.ping()


def test_close_twice_is_harmless(store: Store, open_handle: Callable[[], Store]) -> None:
    handle = open_handle()
    handle.ping()
    handle.close()
    handle.close()


# transactions -----------------------------------------------------------------------------------
class Abort(Exception):
    """Raised by a test to abandon a transaction."""


def test_transaction_rolls_back_every_write_on_error(store: Store) -> None:
    def writes_then_fails() -> None:
        with store.transaction():
            store.kv_put("ns", "a", {"v": 1}, T0)
            store.open_session(make_session())
            raise Abort

    with pytest.raises(Abort):
        writes_then_fails()
    assert store.kv_get("ns", "a") is None
    assert store.session_state("ses_1") is None


def test_nested_transactions_join_the_outer_one(store: Store) -> None:
    def nested_then_fails() -> None:
        with store.transaction():
            store.kv_put("ns", "outer", {"v": 1}, T0)
            with store.transaction():
                store.kv_put("ns", "inner", {"v": 2}, T0)
            # the inner block ended without error, yet nothing is committed until the outer one
            raise Abort

    with pytest.raises(Abort):
        nested_then_fails()
    assert list(store.kv_list("ns")) == []


def test_transaction_commits_together(store: Store) -> None:
    with store.transaction():
        store.kv_put("ns", "a", {"v": 1}, T0)
        store.kv_put("ns", "b", {"v": 2}, T0)
        assert store.kv_get("ns", "a") == {"v": 1}  # reads see the transaction's own writes
    assert dict(store.kv_list("ns")) == {"a": {"v": 1}, "b": {"v": 2}}


def test_writes_are_visible_to_another_handle(
    store: Store, open_handle: Callable[[], Store]
) -> None:
    other = open_handle()
    store.kv_put("ns", "a", {"v": 1}, T0)
    assert other.kv_get("ns", "a") == {"v": 1}


# sessions ---------------------------------------------------------------------------------------
def test_session_round_trips_every_field(store: Store) -> None:
    session = make_session(
        principal="alice@example.com",
        instruction="refund the duplicate charge",
        delegation=("orchestrator", "planner"),
        attended=False,
        labels={"team": "billing", "ticket": "ÅÄÖ-42"},
    )
    store.open_session(session)
    found = state(store)
    assert found.session == session
    assert found.taint == ()
    assert dict(found.calls) == {}


def test_open_session_twice_is_a_conflict(store: Store) -> None:
    store.open_session(make_session())
    with pytest.raises(ConflictError):
        store.open_session(make_session(task="another task"))
    assert state(store).session.task == "refund order 42"


def test_unknown_session_has_no_state(store: Store) -> None:
    assert store.session_state("ses_missing") is None


def test_close_session_marks_it_closed_once(store: Store) -> None:
    store.open_session(make_session())
    store.close_session("ses_1", ts(5))
    assert state(store).session.closed
    store.close_session("ses_1", ts(9))  # closing again changes nothing and does not fail
    assert state(store).session.closed
    store.close_session("ses_missing", ts(9))  # unknown sessions: no error


def test_taint_accumulates_and_never_decreases(store: Store) -> None:
    store.open_session(make_session())
    store.add_taint("ses_1", ["web:example.com"], ts(1))
    store.add_taint("ses_1", ["email:inbox", "web:example.com"], ts(2))
    store.add_taint("ses_1", [], ts(3))
    assert state(store).taint == ("web:example.com", "email:inbox")  # by first sight
    store.add_taint("ses_1", ["web:example.com"], ts(4))
    assert state(store).taint == ("web:example.com", "email:inbox")


def test_concurrent_taint_loses_nothing(store: Store) -> None:
    store.open_session(make_session())
    run_together(8, lambda i: store.add_taint("ses_1", [f"src-{i}", "shared"], ts(i)))
    assert set(state(store).taint) == {f"src-{i}" for i in range(8)} | {"shared"}


def test_list_sessions_newest_first_filtered_and_limited(store: Store) -> None:
    for i, agent in enumerate(["agent-a", "agent-b", "agent-a", "agent-a"]):
        store.open_session(make_session(f"ses_{i}", agent, opened_at=ts(i)))
    assert [s.session_id for s in store.list_sessions()] == ["ses_3", "ses_2", "ses_1", "ses_0"]
    assert [s.session_id for s in store.list_sessions(agent_id="agent-a", limit=2)] == [
        "ses_3",
        "ses_2",
    ]
    assert store.list_sessions(agent_id="agent-z") == []


# decisions, call counts, idempotency ------------------------------------------------------------
def test_record_decision_stores_it_and_counts_the_call(store: Store) -> None:
    store.open_session(make_session())
    assert record(store, 1) is None
    assert record(store, 2, tool="email.send") is None
    assert record(store, 3) is None
    assert record(store, 4, count_call=False) is None
    assert dict(state(store).calls) == {"payments.refund": 2, "email.send": 1}
    got = store.get_decision(ulid(1))
    assert got == make_record(1)
    assert store.get_decision(ulid(99)) is None


def test_record_decision_with_a_new_key_stores_the_idempotency_record(store: Store) -> None:
    store.open_session(make_session())
    idem = make_idem(1)
    assert record(store, 1, idem=idem) is None
    assert store.get_idempotency("agent-a", "key-1") == idem
    assert store.get_idempotency("agent-b", "key-1") is None
    assert store.get_idempotency("agent-a", "key-2") is None


def test_record_decision_with_a_used_key_returns_the_first_and_writes_nothing(
    store: Store,
) -> None:
    store.open_session(make_session())
    first = make_idem(1)
    assert record(store, 1, idem=first) is None
    existing = record(store, 2, idem=make_idem(2))
    assert existing == first
    assert store.get_decision(ulid(2)) is None  # the loser's decision was not stored
    assert dict(state(store).calls) == {"payments.refund": 1}  # nor counted
    # the same key under another agent is another key
    assert record(store, 3, idem=make_idem(3, agent_id="agent-b")) is None


def test_record_decision_is_atomic(store: Store) -> None:
    store.open_session(make_session())
    record(store, 1)
    # a second decision with the same id fails: its idempotency record and count must not remain
    with pytest.raises(ConflictError):
        record(store, 1, idem=make_idem(1, key="key-9"))
    assert store.get_idempotency("agent-a", "key-9") is None
    assert dict(state(store).calls) == {"payments.refund": 1}


@pytest.mark.parametrize("contenders", [2, 8])
def test_idempotency_race_has_exactly_one_winner(
    store: Store, open_handle: Callable[[], Store], contenders: int
) -> None:
    store.open_session(make_session())
    # each contender uses its own handle, as separate replicas would
    handles = [open_handle() for _ in range(contenders)]
    results = run_together(
        contenders, lambda i: record(handles[i], 100 + i, idem=make_idem(100 + i))
    )
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1, results
    winner = make_idem(100 + winners[0])
    assert all(r == winner for r in results if r is not None)
    assert store.get_idempotency("agent-a", "key-1") == winner
    stored = [d.decision_id for d in store.recent_decisions(limit=100)]
    assert stored == [winner.decision_id]
    assert dict(state(store).calls) == {"payments.refund": 1}


def test_concurrent_calls_are_all_counted(store: Store, open_handle: Callable[[], Store]) -> None:
    store.open_session(make_session())
    handles = [open_handle() for _ in range(4)]

    def work(i: int) -> None:
        for j in range(10):
            record(handles[i], 1000 + i * 100 + j)

    run_together(4, work)
    assert dict(state(store).calls) == {"payments.refund": 40}


def test_recent_decisions_newest_first_filtered_and_limited(store: Store) -> None:
    store.open_session(make_session())
    for n, agent in [(1, "agent-a"), (2, "agent-b"), (3, "agent-a"), (4, "agent-a")]:
        store.record_decision(
            make_record(n, agent_id=agent),
            session_id="ses_1",
            tool="t",
            count_call=False,
            idempotency=None,
        )
    assert [d.decision_id for d in store.recent_decisions()] == [ulid(4), ulid(3), ulid(2), ulid(1)]
    assert [d.decision_id for d in store.recent_decisions(agent_id="agent-a", limit=2)] == [
        ulid(4),
        ulid(3),
    ]
    assert store.recent_decisions(agent_id="agent-z") == []


def test_prune_idempotency_deletes_strictly_older_records(store: Store) -> None:
    store.open_session(make_session())
    for n in (1, 2, 3):
        record(store, n, idem=make_idem(n, key=f"key-{n}"))
    assert store.prune_idempotency(ts(2)) == 1
    assert store.get_idempotency("agent-a", "key-1") is None
    assert store.get_idempotency("agent-a", "key-2") is not None
    assert store.prune_idempotency(ts(2)) == 0
    assert store.prune_idempotency(ts(60)) == 2
    # a pruned key may be used again
    assert record(store, 4, idem=make_idem(4, key="key-1")) is None


# bundles and activations ------------------------------------------------------------------------
def make_bundle(n: int, data: bytes | None = None) -> StoredBundle:
    return StoredBundle(
        digest="sha256:" + f"{n:064x}",
        data=data if data is not None else f"bundle {n}\n".encode(),
        source_name=f"policy-{n}.yaml",
        signature=None if n % 2 else f"sig-{n}",
        created_at=ts(n),
    )


def test_bundles_round_trip_arbitrary_bytes(store: Store) -> None:
    raw = bytes(range(256)) + b"\x00tail"
    bundle = make_bundle(1, raw)
    store.put_bundle(bundle)
    assert store.get_bundle(bundle.digest) == bundle
    assert store.get_bundle("sha256:" + "0" * 64) is None


def test_put_bundle_is_idempotent(store: Store) -> None:
    first = make_bundle(1)
    store.put_bundle(first)
    store.put_bundle(StoredBundle(first.digest, b"other bytes", "x.yaml", None, ts(9)))
    assert store.get_bundle(first.digest) == first
    assert store.list_bundles() == [first]


def test_list_bundles_newest_first(store: Store) -> None:
    for n in (2, 1, 3):
        store.put_bundle(make_bundle(n))
    assert [b.created_at for b in store.list_bundles()] == [ts(3), ts(2), ts(1)]


def test_activation_needs_an_archived_bundle(store: Store) -> None:
    with pytest.raises(ConflictError):
        store.activate("sha256:" + "0" * 64, at=T0, by="alice")
    assert store.active_digest() is None
    assert store.activations() == []


def test_activations_are_ordered_and_the_last_one_is_active(store: Store) -> None:
    one, two = make_bundle(1), make_bundle(2)
    store.put_bundle(one)
    store.put_bundle(two)
    a1 = store.activate(one.digest, at=ts(1), by="alice")
    a2 = store.activate(two.digest, at=ts(2), by="bob")
    a3 = store.activate(one.digest, at=ts(3), by="alice")  # rollback is a new activation
    assert a1.seq < a2.seq < a3.seq
    assert store.active_digest() == one.digest
    assert store.activations() == [a3, a2, a1]
    assert (a2.digest, a2.activated_at, a2.activated_by) == (two.digest, ts(2), "bob")


def test_concurrent_activations_leave_one_consistent_active_digest(
    store: Store, open_handle: Callable[[], Store]
) -> None:
    bundles = [make_bundle(n) for n in range(1, 7)]
    for bundle in bundles:
        store.put_bundle(bundle)
    handles = [open_handle() for _ in bundles]
    made = run_together(
        len(bundles), lambda i: handles[i].activate(bundles[i].digest, at=ts(i), by=f"op-{i}")
    )
    history = store.activations()
    assert sorted(a.seq for a in history) == sorted(a.seq for a in made)
    assert store.active_digest() == history[0].digest == max(made, key=lambda a: a.seq).digest


# key/value --------------------------------------------------------------------------------------
def test_kv_put_get_replace_delete(store: Store) -> None:
    assert store.kv_get("control", "halt") is None
    store.kv_put("control", "halt", {"on": True, "by": "alice", "why": "incident ✓"}, ts(1))
    assert store.kv_get("control", "halt") == {"on": True, "by": "alice", "why": "incident ✓"}
    store.kv_put("control", "halt", {"on": False}, ts(2))
    assert store.kv_get("control", "halt") == {"on": False}
    store.kv_delete("control", "halt")
    assert store.kv_get("control", "halt") is None
    store.kv_delete("control", "halt")  # deleting a missing key is not an error


def test_kv_namespaces_are_separate(store: Store) -> None:
    store.kv_put("a", "k", {"v": "a"}, T0)
    store.kv_put("b", "k", {"v": "b"}, T0)
    assert store.kv_get("a", "k") == {"v": "a"}
    assert dict(store.kv_list("b")) == {"k": {"v": "b"}}
    assert list(store.kv_list("c")) == []


def test_kv_list_orders_keys_bytewise(store: Store) -> None:
    # byte order, whatever the database locale: upper case first, punctuation by code point
    keys = ["é", "aa", "a_b", "B", "a-b", "a", "Z9", "a b"]
    for key in keys:
        store.kv_put("ns", key, {"k": key}, T0)
    listed = [key for key, _ in store.kv_list("ns")]
    assert listed == sorted(keys, key=lambda k: k.encode("utf-8"))
    assert listed == ["B", "Z9", "a", "a b", "a-b", "a_b", "aa", "é"]


def test_kv_last_writer_wins_under_concurrency(
    store: Store, open_handle: Callable[[], Store]
) -> None:
    handles = [open_handle() for _ in range(6)]
    run_together(6, lambda i: handles[i].kv_put("ns", "k", {"writer": i}, ts(i)))
    value = store.kv_get("ns", "k")
    assert value is not None
    assert value["writer"] in range(6)
    assert [k for k, _ in store.kv_list("ns")] == ["k"]


def test_store_errors_are_store_errors(store: Store) -> None:
    # every failure surfaces as a StoreError subclass, never as a driver exception
    store.open_session(make_session())
    with pytest.raises(StoreError):
        store.open_session(make_session())
