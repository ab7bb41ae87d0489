"""Over real HTTP: a result the session taint cannot record is answered 503 (not 202), and the
session's next call is SILENCE (503) until the agent reports the same result again.

The composed service (as ``clearance serve`` builds it) runs on a real SQLite file; a trigger
makes the store refuse the provenance write, as a failing disk would."""

from __future__ import annotations

import sqlite3

from clearance.cli.runtime import Runtime

from .conftest import World  # noqa: TID252 - sibling fixture module

REFUSE_KV = """
CREATE TRIGGER refuse_kv BEFORE INSERT ON kv WHEN NEW.namespace = 'provenance'
BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END
"""


def sql(runtime: Runtime, statement: str) -> None:
    with sqlite3.connect(runtime.data_dir / "clearance.db") as conn:
        conn.execute(statement)


def read_call(session_id: str) -> dict[str, object]:
    return {"session_id": session_id, "tool": "read_account", "args": {"account_id": "acc-1"}}


def test_unrecorded_result_is_503_and_the_session_is_silent(
    full_world: World, runtime: Runtime
) -> None:
    session_id = full_world.open_session()
    with full_world.agent() as client:
        first = client.post("/v1/decide", json=read_call(session_id)).json()
        assert first["outcome"] == "PERMIT"
        result = {"decision_id": first["decision_id"], "success": True, "output": "balance 12"}
        sql(runtime, REFUSE_KV)
        refused = client.post("/v1/results", json=result)
        assert refused.status_code == 503
        assert refused.json()["code"] == "taint_unrecorded"
        assert refused.json()["hint"]

        silent = client.post("/v1/decide", json=read_call(session_id))
        assert silent.status_code == 503
        assert silent.json()["outcome"] == "SILENCE"

        sql(runtime, "DROP TRIGGER refuse_kv")
        assert client.post("/v1/results", json=result).status_code == 202
        again = client.post("/v1/decide", json=read_call(session_id))
    assert again.status_code == 200
    assert again.json()["outcome"] == "PERMIT"
