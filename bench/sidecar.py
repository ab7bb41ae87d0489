"""Loopback sidecar vs in-process: decisions per second and p50/p99 latency, durable audit on.

One run measures both, so the ratio is meaningful on whatever machine runs it:

* **in-process**: ``Gate.decide()`` called in a loop in this process (one caller);
* **HTTP**: ``clearance serve``'s app in a separate process (one uvicorn worker, uvloop and
  httptools), loaded with ``wrk`` (Debian package ``wrk``) at 1, 16 and 64 connections, every
  request a permitted ``POST /v1/decide`` with an agent key; any non-200 answer fails the run.

Both use the composed runtime: SQLite store, group-committed SQLite audit shard, signed receipts,
approvals, the kill switch and breakers as pre-checks and observers.

    python bench/sidecar.py                      # 5 s per connection count
    python bench/sidecar.py --seconds 10 --event-loop     # decide on the event loop instead
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path and its name would shadow the
# standard library's `http` package (which uvicorn and prometheus_client import): drop it.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

import httpx

from clearance.cli.commands.serve import open_service
from clearance.cli.runtime import create_keys, open_runtime, store_url_for
from clearance.gate.config import GateConfig
from clearance.model.request import Request
from clearance.policy import load_policy
from clearance.server.identity import IdentityService
from clearance.server.settings import ServerSettings
from clearance.store import open_store
from clearance.store.identity_sql import identity_store

POLICY = """\
version: "1"
name: bench
tools:
  read_account:
    tier: read-only
    params:
      account_id: {type: string, required: true}
tasks:
  support: {tools: [read_account]}
environments:
  staging: {}
  production: {}
breakers:
  rate_spike: {enabled: false}
  consecutive_failures: {enabled: false}
  unusual_sequence: {enabled: false}
  data_volume: {enabled: false}
  approval_backlog: {enabled: false}
rules:
  - id: reads
    tools: [read_account]
    outcome: permit
    reason: reads are harmless
"""

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


def prepare(data_dir: Path) -> tuple[str, str]:
    """A data directory with the bench policy, an agent key and an open session."""
    create_keys(data_dir, GateConfig().deployment)
    open_store(store_url_for(data_dir, None)).close()
    runtime = open_runtime(data_dir, require_policy=False)
    try:
        runtime.gate.activate(load_policy(POLICY, source_name="bench.yaml"), by="bench")
        identity = IdentityService(identity_store(runtime.store), runtime.gate.clock)
        identity.register_agent(
            "bench-bot", environment="staging", description="bench", created_by="bench"
        )
        key = identity.create_agent_key("bench-bot", created_by="bench").secret
        session = runtime.gate.open_session(
            agent_id="bench-bot", task="support", environment="staging"
        )
    finally:
        runtime.close()
    return key, session.session_id


def in_process(data_dir: Path, session_id: str, count: int) -> dict[str, float]:
    """``Gate.decide()`` ``count`` times in this process; every decision must be PERMIT."""
    runtime, _ = open_service(ServerSettings(data_dir=data_dir))
    try:
        gate = runtime.gate
        request = Request(
            agent_id="bench-bot",
            session_id=session_id,
            tool="read_account",
            args={"account_id": "acc-1"},
        )
        latencies = []
        started = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            decision = gate.decide(request)
            latencies.append(time.perf_counter() - t0)
            assert decision.permitted, decision
        elapsed = time.perf_counter() - started
    finally:
        runtime.close()
    latencies.sort()
    return {
        "rate": count / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(data_dir: Path, port: int, *, threadpool: bool) -> None:
    """The server process: the composed app on one uvicorn worker with uvloop and httptools."""
    import uvicorn

    from clearance.server.app import create_app

    settings = ServerSettings(data_dir=data_dir, port=port, decide_in_threadpool=threadpool)
    runtime, services = open_service(settings)
    try:
        uvicorn.run(
            create_app(services, settings),
            host="127.0.0.1",
            port=port,
            loop="uvloop",
            http="httptools",
            log_level="error",
            access_log=False,
            lifespan="off",
        )
    finally:
        runtime.close()


def wait_until_up(base_url: str) -> None:
    for _ in range(200):
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit("the server did not start")


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


def run_wrk(base_url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    """One wrk run; fails when any answer was not a 2xx."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"{base_url}/v1/decide",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw answers other than PERMIT:\n{out}")
    timeouts = re.search(r"timeout (\d+)", out)
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return {
        "rate": rate,
        "p50_ms": p50,
        "p99_ms": p99,
        "timeouts": float(timeouts.group(1)) if timeouts else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--in-process", type=int, default=3000, dest="count")
    parser.add_argument(
        "--event-loop", action="store_true", help="decide on the event loop, not in a thread"
    )
    parser.add_argument("--serve", nargs=2, metavar=("DATA_DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]), threadpool=not args.event_loop)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        key, session_id = prepare(data_dir)
        baseline = in_process(data_dir, session_id, args.count)
        body = json.dumps(
            {"session_id": session_id, "tool": "read_account", "args": {"account_id": "acc-1"}}
        )
        script = Path(tmp) / "decide.lua"
        script.write_text(WRK_SCRIPT.format(body=body, key=key), encoding="utf-8")
        port = free_port()
        command = [sys.executable, __file__, "--serve", str(data_dir), str(port)]
        if args.event_loop:
            command.append("--event-loop")
        server = subprocess.Popen(command, env=os.environ.copy())
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(base_url)
            results = {
                int(c): run_wrk(base_url, script, int(c), args.seconds)
                for c in args.connections.split(",")
            }
        finally:
            server.terminate()
            server.wait(10)

    mode = "event loop" if args.event_loop else "threadpool"
    print(f"decide path on the {mode}; durable audit on; {os.cpu_count()} CPUs")
    print(
        f"{'caller':<22}{'decisions/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'vs in-proc':>12}"
        f"{'timeouts':>10}"
    )
    print(
        f"{'in-process, 1 caller':<22}{baseline['rate']:>12.0f}"
        f"{baseline['p50_ms']:>9.2f}{baseline['p99_ms']:>9.2f}{1.0:>12.2f}"
    )
    for connections, r in results.items():
        print(
            f"{f'HTTP, {connections} conn':<22}{r['rate']:>12.0f}{r['p50_ms']:>9.2f}"
            f"{r['p99_ms']:>9.2f}{r['rate'] / baseline['rate']:>12.2f}{r['timeouts']:>10.0f}"
        )


if __name__ == "__main__":
    main()
