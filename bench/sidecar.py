"""Loopback sidecar vs in-process: decisions per second and p50/p99 latency, durable audit on.

    python bench/sidecar.py                          # 5 s per point, connections 1,16,64
    python bench/sidecar.py --seconds 10 --generators 2
    python bench/sidecar.py --wrk                    # load with wrk (apt-get install wrk)
    python bench/sidecar.py --event-loop             # decide on the event loop, not a thread

One run measures both sides at each concurrency, back to back, so the ratios mean something on
whatever machine runs it:

* **in-process**: ``Gate.decide()`` called by N threads of this process, each building a fresh
  ``Request`` per call as an embedding would (a reused one would keep its digest cached);
* **HTTP**: the app ``clearance serve`` builds, served from a second process exactly as the
  command serves it (``clearance.server.embedded.uvicorn_options``: one worker, uvloop,
  httptools), loaded over N keep-alive connections by a load generator in separate processes (a small asyncio HTTP/1.1
  client on uvloop; ``--wrk`` uses wrk instead). Every request is a permitted
  ``POST /v1/decide`` with an agent key; any answer that is not a 200 PERMIT fails the run.

Both use the composed runtime: SQLite store, group-committed SQLite audit shard (each side its
own replica id and shard), signed receipts, approvals, kill switch and breakers as pre-checks and
observers.

Besides rate and latency it reports where the CPU went, because the load generator shares the
machine's cores with the server: CPU per decision of the server process and of the in-process
gate (their difference is the HTTP layer's own cost), the generator's CPU, the machine's busy
share and how much of it was other processes (a loaded machine lowers every figure), and the mean
time the server spent inside ``Gate.decide()`` per request (from its ``/metrics``) against the
mean latency the client saw. Figures go in notes, never in assertions.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this directory is first on sys.path (and its name would shadow the standard
# library's `http` package, which uvicorn imports): put the repository root there instead, so
# `bench.store` (the shared CPU meter) imports.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from bench.store import CLK, machine_busy

from clearance.cli.commands.serve import open_service, serve_app
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

SERVER_REPLICA = "sidecar"
IN_PROCESS_REPLICA = "inproc"
WARMUP_S = 1.0


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


@dataclass
class Point:
    """One measured point: rate, latency percentiles and CPU use."""

    rate: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # CPU of the deciding process per decision
    extra: dict[str, float] = field(default_factory=dict)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (seconds in, milliseconds out)."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values)) - 1))
    return sorted_values[rank] * 1000


def process_cpu(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) of ``pid``, or of this process."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


# -- in-process --------------------------------------------------------------------------------


def in_process(gate: Any, session_id: str, callers: int, seconds: float) -> Point:
    """``callers`` threads call ``gate.decide()`` for ``seconds``; every decision must be PERMIT."""
    fields = {
        "agent_id": "bench-bot",
        "session_id": session_id,
        "tool": "read_account",
        "args": {"account_id": "acc-1"},
    }
    start = threading.Barrier(callers + 1)
    latencies: list[list[float]] = [[] for _ in range(callers)]
    failures: list[str] = []
    deadline = 0.0

    def caller(out: list[float]) -> None:
        start.wait()
        while (now := time.perf_counter()) < deadline:
            decision = gate.decide(Request(**fields))
            out.append(time.perf_counter() - now)
            if not decision.permitted:
                failures.append(f"{decision.outcome.value} {decision.rule}: {decision.reason}")
                return

    threads = [threading.Thread(target=caller, args=(out,)) for out in latencies]
    for thread in threads:
        thread.start()
    cpu0, busy0 = process_cpu(), machine_busy()
    deadline = time.perf_counter() + seconds
    start.wait()
    for thread in threads:
        thread.join()
    cpu, busy = process_cpu() - cpu0, machine_busy()
    if failures:
        raise SystemExit(f"an in-process decision was not PERMIT: {failures[0]}")
    merged = sorted(x for out in latencies for x in out)
    machine = _machine_share(busy0, busy)
    return Point(
        rate=len(merged) / seconds,
        p50_ms=percentile(merged, 0.50),
        p99_ms=percentile(merged, 0.99),
        cpu_ms=cpu / len(merged) * 1000,
        extra={"machine_busy": machine, "others": machine - cpu / seconds / _cpus()},
    )


def _cpus() -> int:
    return os.cpu_count() or 1


def _machine_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Busy share of the whole machine between two ``machine_busy()`` readings."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


# -- the server process ------------------------------------------------------------------------


def serve(data_dir: Path, port: int, *, threadpool: bool, threads: int) -> None:
    """The server process: the app of ``clearance serve``, served the way it serves it."""
    from clearance.server.app import create_app

    settings = ServerSettings(
        data_dir=data_dir,
        port=port,
        decide_in_threadpool=threadpool,
        decide_threads=threads,
        replica_id=SERVER_REPLICA,
    )
    runtime, services = open_service(settings)
    try:
        serve_app(create_app(services, settings), settings)
    finally:
        runtime.close()


def wait_until_up(base_url: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if server.poll() is not None:
            raise SystemExit("the server process exited before serving")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit("the server did not start")


_DECIDE_SECONDS = re.compile(
    r"^clearance_http_decide_duration_seconds_(sum|count)\{[^}]*\} ([0-9.e+-]+)$", re.M
)


def time_in_decide(base_url: str) -> tuple[float, float]:
    """(seconds inside ``Gate.decide()``, HTTP decisions) so far, from the server's /metrics."""
    totals = {"sum": 0.0, "count": 0.0}
    for kind, value in _DECIDE_SECONDS.findall(httpx.get(f"{base_url}/metrics").text):
        totals[kind] += float(value)
    return totals["sum"], totals["count"]


# -- the load generator (its own processes) ----------------------------------------------------


def request_bytes(port: int, key: str, body: bytes) -> bytes:
    return (
        f"POST /v1/decide HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nUser-Agent: bench-sidecar\r\n\r\n"
    ).encode("ascii") + body


async def _connection(
    port: int, payload: bytes, start: float, stop: float, out: list[float], bad: list[bytes]
) -> None:
    """One keep-alive connection sending requests back to back until ``stop``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (sent := time.perf_counter()) < stop:
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            body = await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200 ") or b'"outcome":"PERMIT"' not in body:
                bad.append(head.split(b"\r\n", 1)[0] + b" " + body[:300])
                return
            if sent >= start:
                out.append(time.perf_counter() - sent)
    finally:
        writer.close()


def load(port: int, connections: int, seconds: float, key: str, body: bytes) -> None:
    """Generator process: ``connections`` connections; prints latencies and its own CPU as JSON."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    payload = request_bytes(port, key, body)
    out: list[float] = []
    bad: list[bytes] = []

    async def run() -> None:
        start = time.perf_counter() + WARMUP_S
        stop = start + seconds
        await asyncio.gather(
            *(_connection(port, payload, start, stop, out, bad) for _ in range(connections))
        )

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    asyncio.run(run())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
    json.dump(
        {"latencies": out, "cpu": cpu, "bad": [b.decode("utf-8", "replace") for b in bad]},
        sys.stdout,
    )


def run_generators(
    port: int, connections: int, seconds: float, key: str, body: str, generators: int
) -> tuple[list[float], float]:
    """Start the generator processes (connections split between them); merge what they saw."""
    shares = [connections // generators + (i < connections % generators) for i in range(generators)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--load", str(port), str(n), str(seconds), key, body],
            stdout=subprocess.PIPE,
        )
        for n in shares
        if n > 0
    ]
    latencies: list[float] = []
    cpu = 0.0
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0:
            raise SystemExit("a load generator failed")
        result = json.loads(out)
        if result["bad"]:
            raise SystemExit(f"an answer was not a PERMIT: {result['bad'][0]}")
        latencies.extend(result["latencies"])
        cpu += result["cpu"]
    return sorted(latencies), cpu


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


def run_wrk(
    base_url: str, script: Path, connections: int, seconds: float
) -> tuple[float, float, float, float]:
    """One wrk run: (rate, p50 ms, p99 ms, wrk CPU seconds); fails on any non-2xx answer."""
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            f"{base_url}/v1/decide",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw answers other than PERMIT or socket errors:\n{out}")

    def grab(pattern: str) -> str:
        match = re.search(pattern, out)
        if match is None:
            raise SystemExit(f"unexpected wrk output:\n{out}")
        return match.group(1)

    cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
    return (
        float(grab(r"Requests/sec:\s+([0-9.]+)")),
        _wrk_ms(grab(r"\s50%\s+(\S+)")),
        _wrk_ms(grab(r"\s99%\s+(\S+)")),
        cpu,
    )


@dataclass
class Sidecar:
    """The running server process and how to load it."""

    process: subprocess.Popen[bytes]
    port: int
    key: str
    body: str
    wrk_script: Path | None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def measure(self, connections: int, seconds: float, generators: int) -> Point:
        decide0, count0 = time_in_decide(self.base_url)
        cpu0, busy0 = process_cpu(self.process.pid), machine_busy()
        started = time.perf_counter()
        if self.wrk_script is not None:
            rate, p50, p99, generator_cpu = run_wrk(
                self.base_url, self.wrk_script, connections, seconds
            )
            elapsed = time.perf_counter() - started
            latencies: list[float] = []
        else:
            latencies, generator_cpu = run_generators(
                self.port, connections, seconds, self.key, self.body, generators
            )
            elapsed = time.perf_counter() - started
            rate, p50, p99 = (
                len(latencies) / seconds,
                percentile(latencies, 0.50),
                percentile(latencies, 0.99),
            )
        server_cpu, busy = process_cpu(self.process.pid) - cpu0, machine_busy()
        decide, count = time_in_decide(self.base_url)
        served = count - count0  # includes the generators' warm-up requests
        machine = _machine_share(busy0, busy)
        mean_latency = sum(latencies) / len(latencies) * 1000 if latencies else float("nan")
        return Point(
            rate=rate,
            p50_ms=p50,
            p99_ms=p99,
            cpu_ms=server_cpu / served * 1000,
            extra={
                "generator_cores": generator_cpu / elapsed,
                "decide_ms": (decide - decide0) / served * 1000,
                "latency_ms": mean_latency,
                "machine_busy": machine,
                "others": machine - (server_cpu + generator_cpu) / elapsed / _cpus(),
            },
        )


def start_sidecar(data_dir: Path, key: str, session_id: str, args: argparse.Namespace) -> Sidecar:
    body = json.dumps(
        {"session_id": session_id, "tool": "read_account", "args": {"account_id": "acc-1"}}
    )
    wrk_script = None
    if args.wrk:
        wrk_script = data_dir.parent / "decide.lua"
        wrk_script.write_text(WRK_SCRIPT.format(body=body, key=key), encoding="utf-8")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [sys.executable, __file__, "--serve", str(data_dir), str(port)]
    command += ["--decide-threads", str(args.decide_threads)]
    if args.event_loop:
        command.append("--event-loop")
    process = subprocess.Popen(command)
    sidecar = Sidecar(process, port, key, body, wrk_script)
    wait_until_up(sidecar.base_url, process)
    return sidecar


def report(results: list[tuple[int, Point, Point]], args: argparse.Namespace) -> None:
    mode = "event loop" if args.event_loop else f"{args.decide_threads} worker threads"
    generator = "wrk" if args.wrk else f"{args.generators} Python generator process(es)"
    load = os.getloadavg()
    print(
        f"{_cpus()} CPUs, load average {load[0]:.1f}; durable audit on; decide on {mode}; "
        f"HTTP load from {generator}; {args.seconds:g} s per point"
    )
    print(
        f"{'conc':>4} {'caller':<11}{'dec/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'CPU ms/dec':>11}"
        f"{'HTTP/in':>8}{'decide ms':>10}{'client ms':>10}{'gen cores':>10}{'busy':>6}"
        f"{'others':>7}"
    )
    for connections, inproc, http in results:
        print(
            f"{connections:>4} {'in-process':<11}{inproc.rate:>8.0f}{inproc.p50_ms:>8.2f}"
            f"{inproc.p99_ms:>8.2f}{inproc.cpu_ms:>11.2f}{1.0:>8.2f}{'':>10}{'':>10}{'':>10}"
            f"{inproc.extra['machine_busy']:>6.0%}{inproc.extra['others']:>7.0%}"
        )
        print(
            f"{connections:>4} {'HTTP':<11}{http.rate:>8.0f}{http.p50_ms:>8.2f}{http.p99_ms:>8.2f}"
            f"{http.cpu_ms:>11.2f}{http.rate / inproc.rate:>8.2f}{http.extra['decide_ms']:>10.2f}"
            f"{http.extra['latency_ms']:>10.2f}{http.extra['generator_cores']:>10.2f}"
            f"{http.extra['machine_busy']:>6.0%}{http.extra['others']:>7.0%}"
        )
    print(
        "CPU ms/dec: the deciding process's CPU (all threads) per decision; HTTP minus in-process "
        "is the HTTP layer's own cost. decide ms: mean time inside Gate.decide() per HTTP "
        "request; client ms: mean latency the generator saw. gen cores: the load generator's "
        "CPU. busy: the whole machine; others: processes outside this benchmark."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--generators", type=int, default=1, help="load generator processes")
    parser.add_argument("--wrk", action="store_true", help="load with wrk instead")
    parser.add_argument(
        "--event-loop", action="store_true", help="decide on the event loop, not in a thread"
    )
    parser.add_argument(
        "--decide-threads",
        type=int,
        default=ServerSettings().decide_threads,
        help="the server's decide_threads setting",
    )
    parser.add_argument("--serve", nargs=2, metavar=("DATA_DIR", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(
            Path(args.serve[0]),
            int(args.serve[1]),
            threadpool=not args.event_loop,
            threads=args.decide_threads,
        )
        return
    if args.load:
        port, connections, seconds, key, body = args.load
        load(int(port), int(connections), float(seconds), key, body.encode("utf-8"))
        return
    if args.wrk and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        key, session_id = prepare(data_dir)
        runtime, _ = open_service(ServerSettings(data_dir=data_dir, replica_id=IN_PROCESS_REPLICA))
        sidecar = start_sidecar(data_dir, key, session_id, args)
        try:
            in_process(runtime.gate, session_id, 4, WARMUP_S)  # warm both before measuring
            sidecar.measure(4, WARMUP_S, 1)
            results = []
            for connections in (int(c) for c in args.connections.split(",")):
                inproc = in_process(runtime.gate, session_id, connections, args.seconds)
                http = sidecar.measure(connections, args.seconds, args.generators)
                results.append((connections, inproc, http))
        finally:
            sidecar.process.terminate()
            sidecar.process.wait(10)
            runtime.close()
    report(results, args)


if __name__ == "__main__":
    main()
