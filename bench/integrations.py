"""Overhead of a gated tool call, in process, against calling the tool directly (one run).

Run from the repository root with ``python -m bench.integrations``. The gate is a real one: a data directory initialised like
``clearance init`` (SQLite store, audit shard with signed receipts, approval service). Each timed
call checks its result, so a broken path cannot look fast. Figures go into docs/integrations.md,
never into assertions. The sidecar transport is not measured here: its client is not in this tree.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.integrations.kit import AGENT, init_data_dir

from clearance.cli.runtime import open_runtime
from clearance.gate.clock import SystemClock
from clearance.integrations.guard import Guard
from clearance.integrations.hooks import HookAdapter
from clearance.integrations.mapping import SessionHandle
from clearance.integrations.transport import InProcessTransport

RUNS = 500


def transfer_funds(amount: float, to_account: str) -> str:
    return f"sent {amount} to {to_account}"


def timed(call: Callable[[], object], runs: int = RUNS) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def describe(name: str, samples: list[float]) -> tuple[str, float]:
    ordered = sorted(samples)
    median = statistics.median(ordered)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"{name:<28} median {median * 1e6:9.1f} us   p99 {p99 * 1e6:9.1f} us", median


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        init_data_dir(data)
        runtime = open_runtime(data, clock=SystemClock())
        try:
            s = runtime.gate.open_session(agent_id=AGENT, task="ops", environment="staging")
            session = SessionHandle(agent_id=s.agent_id, session_id=s.session_id)
            transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
            guarded = Guard(transport, session).tool("transfer_funds")(transfer_funds)
            hook = HookAdapter(transport, session, "claude-code", approval_wait_s=0)
            event = {"hook_event_name": "PreToolUse", "tool_name": "transfer_funds",
                     "tool_input": {"amount": 5.0, "to_account": "acc-1"}}  # fmt: skip

            def direct() -> None:
                if transfer_funds(5.0, "acc-1") != "sent 5.0 to acc-1":
                    raise SystemExit("direct call broke")

            def gated() -> None:
                if guarded(5.0, "acc-1") != "sent 5.0 to acc-1":
                    raise SystemExit("guarded call broke")

            def hooked() -> None:
                if hook.handle(event).exit_code != 0:
                    raise SystemExit("hook broke")

            lines = []
            base_line, base = describe("direct call", timed(direct))
            lines.append(base_line)
            for name, call in (
                ("guard (decide+report)", gated),
                ("hook pre-tool (decide)", hooked),
            ):
                line, median = describe(name, timed(call))
                lines.append(
                    f"{line}   x{median / base:,.0f} direct, +{(median - base) * 1e3:.2f} ms"
                )
        finally:
            runtime.close()
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
