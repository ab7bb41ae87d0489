"""Gate.decide() with and without the durable, signed audit path, in one run.

    python bench/gate.py [--requests N] [--quick]

Reports, on the FinanceApp policy and a fixed mix of requests:

* evaluate() alone (the pure policy step) as the in-run baseline;
* decide() on the SQLite store without audit;
* decide() with the audit shard (SQLite WAL, synchronous=FULL, group commit, Ed25519 receipts)
  for 1, 8, 32 and 128 concurrent callers, flat out;
* decide() with audit at offered rates of 100, 1,000 and 5,000 decisions per second (open loop,
  8 callers), p50/p99 latency measured from the scheduled send time.

Every decision is checked against the outcome the policy prescribes for its request.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from clearance.cli.commands.core import example_policy_text
from clearance.cli.runtime import Runtime, create_keys, open_runtime, store_url_for
from clearance.gate.config import GateConfig
from clearance.gate.gate import Gate, facts_of
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.policy import evaluate, load_policy
from clearance.store import open_store

MIX: list[tuple[str, str, dict[str, object], Outcome]] = [
    ("transfer", "read_account", {"account_id": "ACC-100001"}, Outcome.PERMIT),
    (
        "transfer",
        "transfer_funds",
        {"from_account": "ACC-100001", "to_account": "ACC-100002", "amount": 120.5},
        Outcome.PERMIT,
    ),
    (
        "transfer",
        "transfer_funds",
        {"from_account": "ACC-100001", "to_account": "ACC-100002", "amount": -4.0},
        Outcome.DENY,
    ),
    ("transfer", "delete_records", {"table": "payees", "ids": [1]}, Outcome.DENY),
    ("transfer", "launch_rocket", {}, Outcome.SILENCE),
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report(name: str, lat_s: list[float], wall_s: float) -> None:
    print(
        f"{name:44} p50 {_pct(lat_s, 0.5) * 1e6:9.1f} us  p99 {_pct(lat_s, 0.99) * 1e6:9.1f} us"
        f"  {len(lat_s) / wall_s:9.0f} /s"
    )


def _requests(gate: Gate, n: int) -> list[tuple[Request, Outcome]]:
    session = gate.open_session(agent_id="bench", task="transfer", environment="staging")
    out = []
    for i in range(n):
        _task, tool, args, want = MIX[i % len(MIX)]
        out.append(
            (Request(agent_id="bench", session_id=session.session_id, tool=tool, args=args), want)
        )
    return out


def _check(outcome: Outcome, want: Outcome) -> None:
    if outcome is not want:
        raise SystemExit(f"wrong outcome {outcome} (want {want})")


def _closed_loop(
    decide: Callable[[Request], Outcome], reqs: list[tuple[Request, Outcome]], threads: int
) -> tuple[list[float], float]:
    lat: list[float] = []
    lock = threading.Lock()
    chunks = [reqs[i::threads] for i in range(threads)]

    def worker(chunk: list[tuple[Request, Outcome]]) -> None:
        mine = []
        for req, want in chunk:
            t = time.perf_counter()
            _check(decide(req), want)
            mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)

    start = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, time.perf_counter() - start


def _open_loop(
    decide: Callable[[Request], Outcome],
    reqs: list[tuple[Request, Outcome]],
    rate: float,
    threads: int = 8,
) -> tuple[list[float], float]:
    """Each request has a scheduled send time; latency counts from it (no coordinated omission)."""
    lat: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.05
    schedule = [(start + i / rate, r) for i, r in enumerate(reqs)]
    chunks = [schedule[i::threads] for i in range(threads)]

    def worker(chunk: list[tuple[float, tuple[Request, Outcome]]]) -> None:
        mine = []
        for due, (req, want) in chunk:
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            _check(decide(req), want)
            mine.append(time.perf_counter() - due)
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, time.perf_counter() - start


def _runtime(tmp: Path) -> Runtime:
    data = tmp / "audit-run"
    create_keys(data, GateConfig().deployment)
    open_store(store_url_for(data, None)).close()
    runtime = open_runtime(data, require_policy=False)
    runtime.gate.activate(
        load_policy(example_policy_text(), source_name="financeapp.yaml"), by="bench"
    )
    return runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--quick", action="store_true", help="a smoke run with few requests")
    args = parser.parse_args()
    n = 200 if args.quick else args.requests
    bundle = load_policy(example_policy_text(), source_name="financeapp.yaml")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        plain = Gate(open_store(f"sqlite:///{tmp / 'plain.db'}"))
        plain.activate(bundle, by="bench")
        reqs = _requests(plain, n)
        state = plain.store.session_state(reqs[0][0].session_id)
        assert state is not None
        facts = facts_of(state)
        lat = []
        t0 = time.perf_counter()
        for req, want in reqs:
            t = time.perf_counter()
            _check(evaluate(bundle.compiled, req, facts).outcome, want)
            lat.append(time.perf_counter() - t)
        base_wall = time.perf_counter() - t0
        _report("evaluate() alone (baseline)", lat, base_wall)
        lat, wall = _closed_loop(lambda r: plain.decide(r).outcome, reqs, 1)
        _report("decide(), SQLite, no audit, 1 caller", lat, wall)
        no_audit_p50 = statistics.median(lat)

        runtime = _runtime(tmp)
        try:
            audited_reqs = _requests(runtime.gate, n)
            results = {}
            for threads in (1, 8, 32, 128):
                lat, wall = _closed_loop(
                    lambda r: runtime.gate.decide(r).outcome, audited_reqs, threads
                )
                _report(f"decide() + durable audit, {threads} callers", lat, wall)
                results[threads] = (lat, wall)
            print(
                f"ratio audit/no-audit p50 at 1 caller: {statistics.median(results[1][0]) / no_audit_p50:.1f}x"
            )
            for rate in (100, 1000, 5000):
                count = min(n, max(200, rate * 2))
                lat, wall = _open_loop(
                    lambda r: runtime.gate.decide(r).outcome, audited_reqs[:count], rate
                )
                _report(f"decide() + durable audit, offered {rate}/s", lat, wall)
        finally:
            runtime.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
