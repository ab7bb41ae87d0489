"""Attack surface: the store becomes unreadable or unwritable mid-run; no decision may PERMIT."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clearance.gate.gate import Gate
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.policy.bundle import Bundle
from clearance.store.sqlite import SQLiteStore


def test_closed_store_means_silence(gate: Gate) -> None:
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    gate.store.close()
    # A fresh connection to a deleted file is the next thing the store would open.
    path = Path(gate.store.url.removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            p.unlink()
    path.mkdir()  # the database path is now a directory: nothing can open it
    d = gate.decide(
        Request(
            agent_id="fin-1",
            session_id=s.session_id,
            tool="read_account",
            args={"account_id": "acc-1"},
        )
    )
    assert d.outcome is Outcome.SILENCE
    assert d.rule == "store"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_database_means_silence(tmp_path: Path, small_bundle: Bundle) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    store.migrate()
    gate = Gate(store)
    gate.activate(small_bundle, by="t")
    s = gate.open_session(agent_id="a", task="balance_check", environment="staging")
    store.close()
    os.chmod(tmp_path / "c.db", 0o444)
    d = gate.decide(
        Request(
            agent_id="a", session_id=s.session_id, tool="read_account", args={"account_id": "acc-1"}
        )
    )
    assert d.outcome is Outcome.SILENCE


def test_write_failure_during_record_means_silence(gate: Gate) -> None:
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    # Break the decisions table the way a corrupted or tampered database would.
    assert isinstance(gate.store, SQLiteStore)
    with gate.store.transaction() as cur:
        cur.execute("DROP TABLE decisions")
    d = gate.decide(
        Request(
            agent_id="fin-1",
            session_id=s.session_id,
            tool="read_account",
            args={"account_id": "acc-1"},
        )
    )
    assert d.outcome is Outcome.SILENCE
