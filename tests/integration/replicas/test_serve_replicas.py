"""Three real ``clearance serve`` processes on one PostgreSQL store, driven over HTTP.

The wiring end to end: ``--replica-id`` names each process's shard, any replica answers for a
session opened on another, one idempotency key posted to all three at once yields one decision, a
halt typed into the operator CLI against the shared store is in force on every replica within a
second, and ``clearance audit verify --db`` accepts every shard afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clearance.gate.clock import SystemClock
from clearance.server.identity import IdentityService
from clearance.store.identity_sql import identity_store
from clearance.store.postgres import PostgresStore

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

AGENT = "fin-http"
REPLICAS = ("gate-a", "gate-b", "gate-c")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(deployment: tuple[Path, str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    data_dir, url, vkey = deployment
    store = PostgresStore(url)
    try:
        identity = IdentityService(identity_store(store), SystemClock())
        identity.register_agent(AGENT, environment="staging", description="http", created_by="t")
        agent = identity.create_agent_key(AGENT, created_by="t").secret
        opener = identity.create_orchestrator_key(
            "runner", environment="staging", created_by="t"
        ).secret
    finally:
        store.close()
    procs, bases = [], []
    for replica in REPLICAS:
        port = free_port()
        log = (tmp_path / f"{replica}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "clearance", "serve", "--data-dir", str(data_dir)),
                    *("--store", url, "--port", str(port), "--replica-id", replica),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        bases.append(f"http://127.0.0.1:{port}")
    try:
        for proc, base in zip(procs, bases, strict=True):
            wait_ready(base, proc)
        yield {"bases": bases, "agent": agent, "opener": opener, "url": url, "vkey": vkey}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"`clearance serve` exited with {proc.returncode}"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base} did not become ready")


def decide(base: str, key: str, session: str, **extra: Any) -> dict[str, Any]:
    answer = httpx.post(
        f"{base}/v1/decide",
        headers={"Authorization": f"Bearer {key}"},
        json={"session_id": session, "tool": "read_account", "args": {"account_id": "a"}, **extra},
        timeout=30,
    )
    return dict(answer.json())


def test_three_served_replicas_share_sessions_keys_halts_and_verify(
    served: dict[str, Any], deployment: tuple[Path, str, str]
) -> None:
    a, b, c = served["bases"]
    opened = httpx.post(
        f"{a}/v1/sessions",
        headers={"Authorization": f"Bearer {served['opener']}"},
        json={"agent_id": AGENT, "task": "payments"},
        timeout=30,
    )
    assert opened.status_code == 201, opened.text
    session = opened.json()["session_id"]
    # a session opened on A is decided on B and C
    for base in (b, c):
        assert decide(base, served["agent"], session)["outcome"] == "PERMIT"

    # one idempotency key posted to the three replicas at the same instant: one decision
    answers: list[dict[str, Any]] = []
    go = threading.Barrier(3)

    def post(base: str) -> None:
        go.wait()
        answers.append(decide(base, served["agent"], session, idempotency_key="once"))

    threads = [threading.Thread(target=post, args=(base,)) for base in served["bases"]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({x["decision_id"] for x in answers}) == 1, answers

    # a halt typed into the operator CLI against the shared store stops the agent everywhere
    data_dir, url, vkey = deployment
    killed = subprocess.run(
        [
            *(sys.executable, "-m", "clearance", "kill", f"agent:{AGENT}", "--reason", "drill"),
            *("--operator", "alice", "--data-dir", str(data_dir), "--store", url),
        ],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "CLEARANCE_REPLICA_ID": "ops"},
    )
    assert killed.returncode == 0, killed.stderr[-2000:]
    halted = time.monotonic()
    for base in (a, b, c):
        while (d := decide(base, served["agent"], session))["outcome"] != "DENY":
            assert time.monotonic() - halted < 1.0, f"{base} still permits after a second"
        assert d["rule"] == "kill-switch"

    for proc_base in served["bases"]:
        assert httpx.get(f"{proc_base}/readyz", timeout=5).status_code == 200
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
    report = json.loads(done.stdout)
    assert done.returncode == 0, report["findings"]
    assert report["entries_checked"] > 0
    check = PostgresStore(url)
    try:
        with check.read() as cur:
            cur.execute("SELECT replica FROM audit_shard")
            shards = {row[0] for row in cur.fetchall()}
    finally:
        check.close()
    assert shards >= {*REPLICAS, "ops"}  # one shard per replica id, the CLI's included
