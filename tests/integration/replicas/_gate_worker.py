"""One gate replica process: ``python _gate_worker.py DATA_DIR STORE_URL REPLICA_ID``.

It opens the full runtime the way ``clearance serve`` does (``open_runtime``: PostgreSQL store,
this replica's audit shard in the shared database, LISTEN/NOTIFY, approvals, kill switch), prints
``{"ready": origin, "size": n}`` (or ``{"error": ..., "message": ...}`` and exits 3 when the
runtime refuses to open), then executes JSON commands read from stdin, one per line, answering
each with one JSON line (``load`` streams one line per acknowledged decision). Commands that
carry ``"at"`` wait for that wall-clock instant first, so several replicas really race.

Every line is flushed as soon as it is known: a test that ``kill -9``s this process counts as
acknowledged exactly the decisions whose line it received.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from clearance.approvals.rules import Operator
from clearance.cli.runtime import Runtime, open_runtime
from clearance.control.operator import Operator as ControlOperator
from clearance.control.scope import Scope
from clearance.errors import ClearanceError
from clearance.model.request import Request

_out = threading.Lock()
ADMIN = Operator("alice", frozenset({"admin", "approver"}))
OPERATOR = ControlOperator("alice", frozenset({"admin"}))


def emit(**fields: Any) -> None:
    with _out:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()


def wait_until(at: float | None) -> None:
    if at is not None and at > time.time():
        time.sleep(at - time.time())


def decide(runtime: Runtime, request: dict[str, Any]) -> dict[str, Any]:
    d = runtime.gate.decide(Request(**request))
    index = None
    if d.receipt is not None:
        import base64

        index = json.loads(base64.b64decode(d.receipt["payload"]))["index"]
    return {
        "decision_id": d.decision_id,
        "outcome": d.outcome.value,
        "rule": d.rule,
        "approval_id": d.approval_id,
        "intent": d.intent,
        "index": index,
    }


def op_session(runtime: Runtime, cmd: dict[str, Any]) -> None:
    s = runtime.gate.open_session(
        agent_id=cmd["agent_id"], task=cmd["task"], environment=cmd["environment"]
    )
    emit(session_id=s.session_id)


def op_decide_many(runtime: Runtime, cmd: dict[str, Any]) -> None:
    wait_until(cmd.get("at"))
    emit(results=[decide(runtime, r) for r in cmd["requests"]])


def op_approve(runtime: Runtime, cmd: dict[str, Any]) -> None:
    now = runtime.gate.clock.now()
    runtime.approvals.approve(cmd["approval_id"], ADMIN, now)
    status = runtime.approvals.status(
        cmd["approval_id"],
        intent=cmd["intent"],
        agent_id=cmd["agent_id"],
        session_id=cmd["session_id"],
        now=now,
    )
    emit(token=status.token)


def op_halt(runtime: Runtime, cmd: dict[str, Any]) -> None:
    wait_until(cmd.get("at"))
    now = runtime.gate.clock.now()
    runtime.control.killswitch.halt(
        Scope.agent(cmd["agent_id"]), operator=OPERATOR, reason="replica test", now=now
    )
    emit(halted_at=time.time())


def op_watch(runtime: Runtime, cmd: dict[str, Any]) -> None:
    """Decide ``request`` every few milliseconds until it is denied by the kill switch."""
    emit(watching=True)
    end = time.time() + cmd["seconds"]
    while time.time() < end:
        result = decide(runtime, cmd["request"])
        if result["outcome"] == "DENY":
            emit(denied_at=time.time(), rule=result["rule"])
            return
        time.sleep(0.005)
    emit(denied_at=None, rule=None)


def op_load(runtime: Runtime, cmd: dict[str, Any]) -> None:
    """``threads`` clients deciding ``request`` until ``seconds`` have passed; one line per ack."""
    wait_until(cmd.get("at"))
    end = time.time() + cmd["seconds"]
    counts = {"ok": 0, "other": 0}

    def client() -> None:
        while time.time() < end:
            result = decide(runtime, cmd["request"])
            if result["outcome"] == "PERMIT":
                emit(ack=result["decision_id"], index=result["index"])
                counts["ok"] += 1
            else:
                counts["other"] += 1

    threads = [threading.Thread(target=client) for _ in range(cmd["threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    emit(done=counts["ok"], other=counts["other"])


OPS = {
    "session": op_session,
    "decide_many": op_decide_many,
    "approve": op_approve,
    "halt": op_halt,
    "watch": op_watch,
    "load": op_load,
}


def main() -> int:
    data_dir, url, replica = sys.argv[1:4]
    try:
        runtime = open_runtime(Path(data_dir), store_url=url, replica_id=replica)
    except ClearanceError as exc:
        emit(error=type(exc).__name__, message=str(exc))
        return 3
    runtime.audit_log.anchor_interval = timedelta(seconds=1)  # one minute by default
    emit(ready=runtime.audit_log.origin, size=runtime.audit_log.size)
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["op"] == "quit":
                break
            try:
                OPS[cmd["op"]](runtime, cmd)
            except ClearanceError as exc:
                emit(error=type(exc).__name__, message=str(exc))
    finally:
        runtime.close()
    emit(closed=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
