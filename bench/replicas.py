"""Durable decisions per second: 1, 2 and 3 gate replicas on PostgreSQL vs one SQLite node.

    python bench/replicas.py [--seconds S] [--clients 64] [--pg postgresql://postgres@127.0.0.1:5432/test]

Every decision is the whole ``Gate.decide()`` of the composed runtime (``open_runtime``, what
``clearance serve`` runs): session state read, policy evaluation, kill switch and breakers, the
decision row, the group-committed audit entry in the replica's own shard and a signed receipt.
A decision counts only once it came back PERMIT, i.e. after its audit batch committed
(audit-or-refuse); anything else fails the run.

One run, one machine, so the ratios mean something:

1. the baseline: one process on the embedded SQLite store (WAL, ``synchronous=FULL`` audit
   shard) with ``--clients`` threads;
2. 1, 2 and 3 replica processes sharing one PostgreSQL database, ``--clients`` threads split
   between them, each replica appending to its own audit shard.

For each it reports the rate, the machine's CPU use, client (gate) and server (postgres) CPU per
decision, and WAL flushes per decision, which says whether the run was bound by CPU, by fsync or
by locks. The per-replica appender against a raw ``COPY`` of the same rows is in
``bench/store.py``. Figures go in the issue notes, never in assertions.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this directory is first on sys.path; the repository root lets ``bench.store``
# (the shared CPU and WAL meters) import.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid

from bench.store import CLK, admin, machine_busy, wal_syncs

POLICY = """\
version: "1"
name: bench-replicas
default: deny
tools:
  read_account:
    tier: read-only
    params:
      account_id: {type: string, required: true}
tasks:
  reads: {tools: [read_account]}
environments:
  staging: {}
  production: {}
rules:
  - id: reads
    tools: [read_account]
    outcome: permit
"""


# one replica process ------------------------------------------------------------------------------
def child(data_dir: str, url: str, replica: str, *, threads: int, seconds: float) -> None:
    """Open the runtime, print ``ready``, wait for the start instant on stdin, then decide."""
    from clearance.cli.runtime import open_runtime
    from clearance.model.decision import Outcome
    from clearance.model.request import Request

    runtime = open_runtime(Path(data_dir), store_url=url or None, replica_id=replica)
    requests = []
    run = uuid.uuid4().hex[:6]
    for i in range(threads):  # one new agent and session per client, as separate agents would be
        agent = f"{replica}-{run}-agent-{i}"
        session = runtime.gate.open_session(agent_id=agent, task="reads", environment="staging")
        requests.append(
            Request(
                agent_id=agent,
                session_id=session.session_id,
                tool="read_account",
                args={"account_id": f"acc-{i}"},
            )
        )
    print(json.dumps({"ready": runtime.audit_log.origin}), flush=True)
    start = float(sys.stdin.readline())
    time.sleep(max(0.0, start - time.time()))
    end = start + seconds
    counts = [0] * threads
    failures: list[str] = []

    def client(i: int) -> None:
        request = requests[i]
        while time.time() < end:
            decision = runtime.gate.decide(request)
            if decision.outcome is not Outcome.PERMIT:
                failures.append(f"{decision.outcome.value} {decision.rule}: {decision.reason}")
                return
            counts[i] += 1

    cpu0 = sum(os.times()[:2])
    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    cpu = sum(os.times()[:2]) - cpu0
    print(json.dumps({"n": sum(counts), "cpu": cpu, "failures": failures[:3]}), flush=True)
    sys.stdin.readline()  # the parent reads the server's CPU while these connections still live
    runtime.close()


# the parent ---------------------------------------------------------------------------------------
def postgres_cpu() -> dict[int, float]:
    """CPU seconds of each running postgres process, by pid.

    Per process, so that backends ending during a run (the previous run's connections) do not
    make the difference negative, as a plain total would.
    """
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if "postgres" in comm:
            found[int(pid)] = (int(stat[11]) + int(stat[12])) / CLK
    return found


def init(data_dir: Path, url: str | None, policy: Path) -> None:
    cmd = [sys.executable, "-m", "clearance", "init", "--data-dir", str(data_dir)]
    cmd += ["--policy", str(policy)] + (["--store", url] if url else [])
    subprocess.run(cmd, check=True, capture_output=True)


def run(data_dir: Path, url: str | None, replicas: int, clients: int, seconds: float) -> float:
    procs = []
    for r in range(replicas):
        threads = len(range(r, clients, replicas))
        procs.append(
            subprocess.Popen(
                [
                    *(sys.executable, __file__, "--child", str(data_dir), url or "", f"bench-{r}"),
                    *("--threads", str(threads), "--seconds", str(seconds)),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        assert p.stdout is not None
        ready = json.loads(p.stdout.readline())
        assert "ready" in ready, ready
    start = time.time() + 0.5
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(f"{start}\n")
        p.stdin.flush()
    time.sleep(max(0.0, start - time.time()))
    server0, wal0, busy0 = postgres_cpu(), wal_syncs(url) if url else 0, machine_busy()
    time.sleep(seconds)
    outs = [json.loads(p.stdout.readline()) for p in procs if p.stdout is not None]
    server = sum(cpu - server0.get(pid, 0.0) for pid, cpu in postgres_cpu().items())
    busy1 = machine_busy()
    wal = wal_syncs(url) - wal0 if url else 0
    for p in procs:
        p.communicate("close\n", timeout=120)
    failures = [f for o in outs for f in o["failures"]]
    assert not failures, failures  # every counted decision was a durable PERMIT
    n = int(sum(o["n"] for o in outs))
    client = sum(o["cpu"] for o in outs)
    busy = (busy1[0] - busy0[0]) / (busy1[1] - busy0[1])
    label = f"postgres, {replicas} replica(s)" if url else "sqlite, one node"
    text = (
        f"  {label:<24} {clients} clients {n / seconds:7.0f} decisions/s   "
        f"machine cpu {100 * busy:3.0f}%   gate cpu/decision {1e6 * client / n:5.0f} us"
    )
    if url:
        text += f"   postgres cpu/decision {1e6 * server / n:4.0f} us   wal flushes/decision {wal / n:.2f}"
    print(text, flush=True)
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--child", nargs=3, metavar=("DATA_DIR", "URL", "REPLICA"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.child:
        data_dir, url, replica = args.child
        child(data_dir, url, replica, threads=args.threads, seconds=args.seconds)
        return
    database = f"bench_replicas_{uuid.uuid4().hex[:8]}"
    admin(args.pg, f"CREATE DATABASE {database}")
    url = args.pg.rsplit("/", 1)[0] + f"/{database}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            policy = Path(tmp) / "policy.yaml"
            policy.write_text(POLICY)
            init(Path(tmp) / "sqlite", None, policy)
            init(Path(tmp) / "pg", url, policy)
            print(f"durable decisions per second, {args.seconds:g} s each, {os.cpu_count()} cores")
            base = run(Path(tmp) / "sqlite", None, 1, args.clients, args.seconds)
            for replicas in (1, 2, 3):
                rate = run(Path(tmp) / "pg", url, replicas, args.clients, args.seconds)
                print(f"    {rate / base:.2f}x the SQLite node")
    finally:
        admin(args.pg, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


if __name__ == "__main__":
    main()
