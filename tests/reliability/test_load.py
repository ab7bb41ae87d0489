"""Sustained load against the real service: zero errors, bounded memory growth.

``python -m clearance serve`` runs as its own process on a data directory with the FinanceApp
policy, a durable audit shard and real agent and orchestrator keys. Eight client threads send a
mixed workload over HTTP for 20 s (10 minutes with ``--soak``): sessions opened by the
orchestrator, decisions of every outcome (each checked against the outcome the policy
prescribes), results reported for the PERMITs, health probes. Any transport error, unexpected
status or outcome fails the run. The server's RSS after a warm-up and at the end must not grow by
more than 64 MiB. Decisions per second, errors and RSS are printed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.reliability.kit import PYTHON, init_data_dir, public_key

from clearance.audit.verify.verify import verify_log
from clearance.gate.clock import SystemClock
from clearance.model.decision import Outcome
from clearance.server.identity import IdentityService
from clearance.server.wire import OUTCOME_STATUS
from clearance.store import open_store
from clearance.store.identity_sql import identity_store

AGENT = "load-bot"
MAX_RSS_GROWTH = 64 * 1024 * 1024
CLIENTS = 8

#: (tool, args, outcome, rule) in a ``transfer`` session of the FinanceApp example policy.
MIX: list[tuple[str, dict[str, object], str, str]] = [
    ("read_account", {"account_id": "ACC-100001"}, "PERMIT", "read-accounts"),
    (
        "transfer_funds",
        {"from_account": "ACC-100001", "to_account": "ACC-100002", "amount": 120},
        "PERMIT",
        "small-transfer-known-payee",
    ),
    (
        "transfer_funds",
        {"from_account": "ACC-100001", "to_account": "ACC-100002", "amount": -4},
        "DENY",
        "constraint",
    ),
    ("delete_records", {"table": "payees", "ids": [1]}, "DENY", "scope"),
    ("launch_rocket", {}, "SILENCE", "unknown-tool"),
]


@dataclass
class Tally:
    """What the clients did and what went wrong."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    decisions: int = 0
    reports: int = 0
    probes: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keys(data_dir: Path) -> tuple[str, str]:
    store = open_store(f"sqlite:///{data_dir / 'clearance.db'}")
    try:
        identity = IdentityService(identity_store(store), SystemClock())
        identity.register_agent(AGENT, environment="staging", description="load", created_by="t")
        agent = identity.create_agent_key(AGENT, created_by="t").secret
        orchestrator = identity.create_orchestrator_key(
            "load-runner", environment="staging", created_by="t"
        ).secret
        return agent, orchestrator
    finally:
        store.close()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _client(base: str, agent: str, orchestrator: str, until: float, tally: Tally) -> None:
    auth = {"Authorization": f"Bearer {agent}"}
    with (
        httpx.Client(base_url=base, headers=auth, timeout=30) as client,
        httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {orchestrator}"}, timeout=30
        ) as opener,
    ):
        session = ""
        step = 0
        while time.monotonic() < until:
            try:
                if step % 50 == 0:
                    opened = opener.post(
                        "/v1/sessions", json={"agent_id": AGENT, "task": "transfer"}
                    )
                    if opened.status_code != 201:
                        tally.error(f"open session: {opened.status_code} {opened.text[:200]}")
                        return
                    session = opened.json()["session_id"]
                tool, args, outcome, rule = MIX[step % len(MIX)]
                answer = client.post(
                    "/v1/decide", json={"session_id": session, "tool": tool, "args": args}
                )
                body = answer.json()
                got = (answer.status_code, body.get("outcome"), body.get("rule"))
                if got != (OUTCOME_STATUS[Outcome(outcome)], outcome, rule):
                    tally.error(f"{tool}: {answer.status_code} {answer.text[:200]}")
                    continue
                with tally.lock:
                    tally.decisions += 1
                if outcome == "PERMIT":
                    done = client.post(
                        "/v1/results",
                        json={
                            "decision_id": body["decision_id"],
                            "success": True,
                            "output_size": 42,
                        },
                    )
                    if done.status_code != 202:
                        tally.error(f"report: {done.status_code} {done.text[:200]}")
                    else:
                        with tally.lock:
                            tally.reports += 1
                if step % 25 == 0:
                    probe = client.get("/healthz")
                    if probe.status_code != 200:
                        tally.error(f"healthz: {probe.status_code}")
                    with tally.lock:
                        tally.probes += 1
            except httpx.HTTPError as exc:
                tally.error(f"transport: {exc!r}")
            step += 1


def _run_clients(base: str, agent: str, orchestrator: str, seconds: float) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=_client, args=(base, agent, orchestrator, until, tally))
        for _ in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally


def _wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the service exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the service did not become ready")


def test_sustained_mixed_load_has_no_errors_and_bounded_memory(tmp_path: Path, soak: bool) -> None:
    seconds = 600.0 if soak else 20.0
    data_dir = tmp_path / "data"
    init_data_dir(data_dir)
    agent, orchestrator = _keys(data_dir)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [PYTHON, "-m", "clearance", "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "CLEARANCE_LOG_LEVEL": "warning"},
    )
    try:
        _wait_up(base, proc)
        warm = _run_clients(base, agent, orchestrator, 3.0)
        assert not warm.errors, warm.errors[:5]
        before = _rss(proc.pid)
        started = time.monotonic()
        tally = _run_clients(base, agent, orchestrator, seconds)
        elapsed = time.monotonic() - started
        after = _rss(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    print(
        f"load: {elapsed:.1f} s, {tally.decisions} decisions ({tally.decisions / elapsed:.0f}/s), "
        f"{tally.reports} results, {tally.probes} probes, {len(tally.errors)} errors; "
        f"server RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB"
    )
    assert not tally.errors, tally.errors[:10]
    assert tally.decisions > 0
    assert after - before < MAX_RSS_GROWTH
    report = verify_log(data_dir, [public_key(data_dir)])
    assert report.exit_code == 0, report.findings
