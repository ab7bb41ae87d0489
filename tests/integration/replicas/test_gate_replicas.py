"""Three gate processes on one PostgreSQL database, each with its own replica id and audit shard.

Each replica is a separate OS process running the full runtime ``clearance serve`` runs
(``_gate_worker.py``): PostgreSQL store, its audit shard in the shared database (advisory lock,
epoch fence), LISTEN/NOTIFY for the kill switch, approvals. What issue 10 asks of them:

* one idempotency key sent to all three at once yields one decision;
* an execution token redeemed on two replicas at once is honoured once;
* a halt on replica A denies on B and C within one second;
* ``kill -9`` of a replica under load loses no acknowledged decision, ``audit verify --db URL``
  passes for every shard (and their cross-shard anchors), and the restarted replica continues its
  shard exactly where it ended;
* a second process with a replica id in use refuses to start.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKER = Path(__file__).with_name("_gate_worker.py")
REPLICAS = ("gate-a", "gate-b", "gate-c")


class GateProcess:
    """One replica process; ``call`` sends a command and returns its answer line."""

    def __init__(self, data_dir: Path, url: str, replica: str) -> None:
        self.replica = replica
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(data_dir), url, replica],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.hello = self.next(timeout=60)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, timeout: float = 30) -> dict[str, Any]:
        line = self.lines.get(timeout=timeout)
        if line is None:
            raise AssertionError(f"{self.replica} ended: {self.stderr_text()}")
        return line

    def send(self, op: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()

    def call(self, op: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        self.send(op, **fields)
        answer = self.next(timeout)
        assert "error" not in answer, answer
        return answer

    def quit(self) -> None:
        self.send("quit")
        assert self.proc.wait(timeout=30) == 0, self.stderr_text()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stderr_text(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-3000:]


@pytest.fixture
def start(deployment: tuple[Path, str, str]) -> Iterator[Any]:
    data_dir, url, _ = deployment
    started: list[GateProcess] = []

    def launch(replica: str) -> GateProcess:
        gate = GateProcess(data_dir, url, replica)
        started.append(gate)
        return gate

    yield launch
    for gate in started:
        if gate.proc.poll() is None:
            gate.proc.kill()
            gate.proc.wait(timeout=10)


def three(start: Any) -> list[GateProcess]:
    gates = [start(r) for r in REPLICAS]
    for gate in gates:
        assert "ready" in gate.hello, gate.hello
    return gates


def read(session: dict[str, Any], agent: str, **extra: Any) -> dict[str, Any]:
    return {
        "agent_id": agent,
        "session_id": session["session_id"],
        "tool": "read_account",
        "args": {"account_id": "acc-1"},
        **extra,
    }


def verify_db(url: str, vkey: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "clearance",
            "audit",
            "verify",
            "--db",
            url,
            "--key",
            vkey,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report = dict(json.loads(done.stdout))
    report["exit"] = done.returncode
    return report


def audit_headers(url: str) -> list[dict[str, Any]]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT header FROM audit_entry ORDER BY origin, idx").fetchall()
    return [json.loads(bytes(r[0])) for r in rows]


def test_one_idempotency_key_sent_to_three_replicas_at_once_yields_one_decision(
    start: Any, deployment: tuple[Path, str, str]
) -> None:
    _, url, _ = deployment
    gates = three(start)
    session = gates[0].call("session", agent_id="fin-1", task="payments", environment="staging")
    keys = [f"retry-{n}" for n in range(12)]
    at = time.time() + 1.5
    for i, gate in enumerate(gates):  # each replica walks the keys from its own offset
        order = keys[i * 4 :] + keys[: i * 4]
        gate.send(
            "decide_many",
            at=at,
            requests=[read(session, "fin-1", idempotency_key=k) for k in order],
        )
    answers = [gate.next(timeout=60)["results"] for gate in gates]
    by_key: dict[str, set[str]] = {}
    for i, results in enumerate(answers):
        order = keys[i * 4 :] + keys[: i * 4]
        for key, result in zip(order, results, strict=True):
            assert result["outcome"] == "PERMIT", result
            by_key.setdefault(key, set()).add(result["decision_id"])
    assert all(len(ids) == 1 for ids in by_key.values()), by_key
    decided = [h["decision_id"] for h in audit_headers(url) if h["kind"] == "decision"]
    for ids in by_key.values():  # one decision, logged once, whichever replica won the key
        assert decided.count(next(iter(ids))) == 1


def test_a_token_redeemed_on_two_replicas_at_once_is_honoured_once(start: Any) -> None:
    a, b, c = three(start)
    session = a.call("session", agent_id="fin-2", task="payments", environment="staging")
    pay = {
        "agent_id": "fin-2",
        "session_id": session["session_id"],
        "tool": "pay_vendor",
        "args": {"amount": 120.0, "vendor": "acme"},
    }
    [asked] = a.call("decide_many", requests=[pay])["results"]
    assert asked["outcome"] == "APPROVAL"
    token = a.call(
        "approve",
        approval_id=asked["approval_id"],
        intent=asked["intent"],
        agent_id="fin-2",
        session_id=session["session_id"],
    )["token"]
    assert token
    at = time.time() + 1.0
    for gate in (b, c):
        gate.send("decide_many", at=at, requests=[{**pay, "approval_token": token}])
    outcomes = [gate.next()["results"][0] for gate in (b, c)]
    assert sorted(o["outcome"] for o in outcomes) == ["DENY", "PERMIT"], outcomes
    [again] = a.call("decide_many", requests=[{**pay, "approval_token": token}])["results"]
    assert again["outcome"] == "DENY"  # and never again, on any replica


def test_a_halt_on_one_replica_denies_on_the_others_within_a_second(start: Any) -> None:
    a, b, c = three(start)
    session = a.call("session", agent_id="fin-3", task="payments", environment="staging")
    for gate in (b, c):
        gate.send("watch", request=read(session, "fin-3"), seconds=20)
        assert gate.next() == {"watching": True}
    time.sleep(0.5)  # both are deciding PERMIT in a loop now
    halted = a.call("halt", agent_id="fin-3")["halted_at"]
    for gate in (b, c):
        seen = gate.next(timeout=25)
        assert seen["rule"] == "kill-switch", seen
        assert seen["denied_at"] - halted < 1.0, seen


def test_kill_9_under_load_loses_no_acknowledged_decision_and_every_shard_verifies(
    start: Any, deployment: tuple[Path, str, str]
) -> None:
    _, url, vkey = deployment
    gates = three(start)
    sessions = [
        g.call("session", agent_id=f"load-{i}", task="payments", environment="staging")
        for i, g in enumerate(gates)
    ]
    at = time.time() + 1.0
    for i, gate in enumerate(gates):
        gate.send("load", at=at, seconds=6, threads=8, request=read(sessions[i], f"load-{i}"))
    time.sleep(at - time.time() + 3.0)
    victim = gates[1]
    victim.kill9()
    acked: set[str] = set()
    victim_indexes: list[int] = []
    while True:  # every line the victim flushed before it died
        line = victim.lines.get(timeout=10)
        if line is None:
            break
        acked.add(line["ack"])
        victim_indexes.append(line["index"])
    for gate in (gates[0], gates[2]):
        while "done" not in (line := gate.next(timeout=30)):
            acked.add(line["ack"])
        assert line["done"] > 0
    assert victim_indexes, "the victim acknowledged nothing before it was killed"

    restarted = start("gate-b")
    assert "ready" in restarted.hello, restarted.hello
    # it resumes its shard: nothing acknowledged is overwritten, the chain continues
    assert restarted.hello["size"] > max(victim_indexes)
    [after] = restarted.call("decide_many", requests=[read(sessions[1], "load-1")])["results"]
    assert after["outcome"] == "PERMIT"
    assert after["index"] == restarted.hello["size"]
    acked.add(after["decision_id"])
    time.sleep(1.5)  # one anchor interval: the others anchor the restarted shard too
    for gate in (gates[0], gates[2], restarted):
        gate.call("decide_many", requests=[read(sessions[0], "load-0")])
    for gate in (gates[0], gates[2], restarted):
        gate.quit()

    headers = audit_headers(url)
    logged = {h["decision_id"] for h in headers if h["kind"] == "decision"}
    assert acked <= logged, f"{len(acked - logged)} acknowledged decisions are not in the log"
    shard_b = [h for h in headers if "/gate-b/" in h["log"]]
    assert [h["kind"] for h in shard_b].count("genesis") == 1
    assert any(h["kind"] == "anchor" for h in headers)
    report = verify_db(url, vkey)
    assert report["exit"] == 0, report["findings"]
    verified = {f["source"] for f in report["findings"] if "anchors of this shard" in f["message"]}
    assert {o for o in verified if "/gate-" in o} >= {h["log"] for h in shard_b[:1]}


def test_a_second_process_with_a_replica_id_in_use_refuses_to_start(start: Any) -> None:
    first = start("gate-a")
    assert "ready" in first.hello
    second = start("gate-a")
    assert second.hello["error"] == "AuditWriteError", second.hello
    assert "advisory lock" in second.hello["message"]
    assert "--replica-id" in second.hello["message"]
    assert second.proc.wait(timeout=30) == 3
    # the first keeps its shard
    session = first.call("session", agent_id="fin-4", task="payments", environment="staging")
    [ok] = first.call("decide_many", requests=[read(session, "fin-4")])["results"]
    assert ok["outcome"] == "PERMIT"
