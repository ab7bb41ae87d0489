"""What approvals add to a decision, in one run: creating an approval and redeeming a token.

    python bench/approvals.py [--n N]

Three timed paths on the same SQLite store and policy, no audit shard (so the figures isolate the
approval work):

* plain: ``decide()`` of a permitted read (the in-run baseline);
* create: ``decide()`` of a request whose verdict is APPROVAL (persists the request, renders the
  summary, signs the intent);
* redeem: ``decide()`` of the same request carrying its execution token (atomic single-use
  update, then PERMIT).

Each sample is checked for the outcome it must have. The report gives p50/p99 per path and the
p99 added over the plain decision; the target is at most 2 ms each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.approvals_kit import ALICE, build_kit

from clearance.gate.clock import FixedClock, SystemClock
from clearance.model.decision import Outcome
from clearance.store import open_store


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(n: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        kit = build_kit(store, FixedClock(SystemClock().now()))
        timer = time.perf_counter
        plain: list[float] = []
        create: list[float] = []
        redeem: list[float] = []
        s = kit.session()
        read = kit.request(s, "read_account", account_id="a-1")
        for _ in range(50):  # warm caches and the connection
            kit.decide(read)
        for i in range(n):
            t0 = timer()
            d = kit.decide(read)
            plain.append(timer() - t0)
            assert d.outcome is Outcome.PERMIT

            req = kit.request(s, "transfer_funds", amount=i + 1, to_account="acc-1")
            t0 = timer()
            d = kit.decide(req)
            create.append(timer() - t0)
            assert d.outcome is Outcome.APPROVAL
            assert d.approval_id is not None

            kit.service.approve(d.approval_id, ALICE, kit.clock.now())
            token = kit.token_for(d, req)
            t0 = timer()
            permit = kit.decide(req, token)
            redeem.append(timer() - t0)
            assert permit.outcome is Outcome.PERMIT
        store.close()
    return {
        name: (statistics.median(samples) * 1000, _pct(samples, 0.99) * 1000)
        for name, samples in (("plain", plain), ("create", create), ("redeem", redeem))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    figures = run(args.n)
    base_p50, base_p99 = figures["plain"]
    print(f"{'path':8} {'p50 ms':>8} {'p99 ms':>8} {'p99 added':>10} {'p50 ratio':>10}")
    for name, (p50, p99) in figures.items():
        print(f"{name:8} {p50:8.3f} {p99:8.3f} {p99 - base_p99:10.3f} {p50 / base_p50:10.2f}x")


if __name__ == "__main__":
    main()
