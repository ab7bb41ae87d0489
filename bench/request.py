"""Benchmark of what a request costs before policy runs: building it, digesting it, deciding it.

Run: ``python bench/request.py [--batches N]``.

Every request the gate decides is built (``Request(...)``, pydantic validation) and digested
(RFC 8785 canonical JSON, SHA-256). The request refuses values canonical JSON cannot carry (NaN,
Infinity, integers beyond 2**53 - 1, lone surrogates, non-JSON types) while it is built; this
benchmark keeps that check honest about its cost on ordinary arguments. Three figures, on the
FinanceApp policy and in one run:

* ``evaluate()`` of the built request: the pure policy step, the in-run baseline;
* ``Request(...)`` plus ``.digest``: what building a request costs, for a small mix of tool calls
  and for one larger ordinary payload (a 2 KB nested e-mail body with attachments metadata);
* ``Gate.decide(Request(...))`` on a real SQLite store without audit: the whole decision.

Batches of each are interleaved; each figure is the median of the per-batch means, and each is
printed as a ratio to the baseline so runs on different machines compare.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clearance.gate.gate import Gate, facts_of
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.policy import evaluate, load_policy
from clearance.store import open_store

BATCH = 200
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "financeapp" / "policy.yaml"

SMALL: list[tuple[str, dict[str, Any], Outcome]] = [
    ("read_account", {"account_id": "ACC-100001"}, Outcome.PERMIT),
    (
        "transfer_funds",
        {"from_account": "ACC-100001", "to_account": "ACC-100002", "amount": 120.5},
        Outcome.PERMIT,
    ),
    (
        "transfer_funds",
        {"from_account": "ACC-100001", "to_account": "ACC-100002", "amount": -4.0},
        Outcome.DENY,
    ),
    ("delete_records", {"table": "payees", "ids": [1, 2, 3]}, Outcome.DENY),
]

LARGE: dict[str, Any] = {
    "recipient": "bob@financeapp.example",
    "subject": "quarterly statement",
    "body": "Dear Bob, " + "the figures for the quarter are attached. " * 45,
    "attachments": [
        {"name": f"statement-{i}.pdf", "size": 1024 * i, "pages": i, "ratio": i / 7}
        for i in range(8)
    ],
    "headers": {"x-priority": 3, "x-trace": ["a", "b", "c"], "x-sent": 1_700_000_000},
}


def _per_call(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    bundle = load_policy(EXAMPLE.read_text(), source_name="financeapp.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        gate = Gate(open_store(f"sqlite:///{Path(tmp) / 'bench.db'}"))
        gate.activate(bundle, by="bench")
        session = gate.open_session(agent_id="bench", task="transfer", environment="staging")
        state = gate.store.session_state(session.session_id)
        assert state is not None
        facts = facts_of(state)
        fields = [
            ({"agent_id": "bench", "session_id": session.session_id, "tool": t, "args": a}, want)
            for t, a, want in SMALL
        ]
        large = {
            "agent_id": "bench",
            "session_id": session.session_id,
            "tool": "send_email",
            "args": LARGE,
        }
        built = [(Request(**f), want) for f, want in fields]

        def policy_only() -> None:
            for req, want in built:
                assert evaluate(bundle.compiled, req, facts).outcome is want

        def build_small() -> None:
            for f, _ in fields:
                assert Request(**f).digest.startswith("sha256:")

        def build_large() -> None:
            assert Request(**large).digest.startswith("sha256:")

        def decide_small() -> None:
            for f, want in fields:
                assert gate.decide(Request(**f)).outcome is want

        series: dict[str, list[float]] = {}
        cases = {
            "evaluate() (baseline)": (policy_only, len(SMALL)),
            "Request(...) + digest, small args": (build_small, len(SMALL)),
            "Request(...) + digest, 2 KB args": (build_large, 1),
            "decide(Request(...)), SQLite, no audit": (decide_small, len(SMALL)),
        }
        for name, (fn, _) in cases.items():  # warm-up
            _per_call(fn, 20)
            series[name] = []
        for _ in range(args.batches):
            for name, (fn, per) in cases.items():
                series[name].append(_per_call(fn, BATCH // 4) / per)
        base = statistics.median(series["evaluate() (baseline)"])
        for name, values in series.items():
            median = statistics.median(values)
            print(f"{name:42} {median * 1e6:8.2f} us per request   {median / base:6.2f}x baseline")
        gate.store.close()


if __name__ == "__main__":
    main()
