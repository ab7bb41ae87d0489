"""A gate process to be killed: ``python _crash_worker.py DATA_DIR [--threads N] [--seconds S]``.

It opens the data directory's runtime the way ``clearance serve`` does (``open_runtime``: SQLite
store, the durable audit shard with group commit and signed receipts, approvals, control plane),
prints ``{"ready": origin, "size": n}`` and waits for a line on stdin: ``go`` starts a mixed
workload from ``--threads`` threads that runs until the process is killed (or ``--seconds`` pass,
a guard against a test that forgot it); anything else (or end of input) closes the runtime cleanly.
``--disk-headroom BYTES`` caps file sizes (``RLIMIT_FSIZE``) once the runtime is open, so the
store and the audit log hit a full disk mid-run.

Each decision is printed as one JSON line, flushed as soon as ``Gate.decide`` returned it: the test
that SIGKILLs this process counts as acknowledged exactly the lines it received in full, and
"dispatches" only the PERMITs among them.
"""

from __future__ import annotations

import argparse
import base64
import json
import resource
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from clearance.cli.runtime import open_runtime
from clearance.model.request import Request

AGENT = "crash-agent"

#: (tool, args): the FinanceApp example policy answers PERMIT, DENY and SILENCE here. No APPROVAL:
#: pending approvals would trip the approval-backlog breaker and turn the load into its DENYs.
MIX: list[tuple[str, dict[str, Any]]] = [
    ("read_account", {"account_id": "ACC-100001"}),
    ("transfer_funds", {"from_account": "ACC-100001", "to_account": "ACC-100002", "amount": 120}),
    ("transfer_funds", {"from_account": "ACC-100001", "to_account": "ACC-100002", "amount": -4}),
    ("delete_records", {"table": "payees", "ids": [1]}),
    ("launch_rocket", {}),
]

_out = threading.Lock()


def emit(**fields: Any) -> None:
    line = json.dumps(fields) + "\n"
    with _out:
        sys.stdout.write(line)
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--disk-headroom",
        type=int,
        default=None,
        help="bytes any file may grow beyond the largest one in DATA_DIR: a disk about to fill",
    )
    args = parser.parse_args()
    runtime = open_runtime(args.data_dir)
    if args.disk_headroom is not None:
        largest = max(p.stat().st_size for p in args.data_dir.iterdir() if p.is_file())
        limit = largest + args.disk_headroom
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    gate = runtime.gate
    log = runtime.audit_log
    emit(ready=log.origin, size=log.size)
    if sys.stdin.readline().strip() != "go":  # the test only wanted the restart: stop cleanly
        runtime.close()
        return
    deadline = time.monotonic() + args.seconds

    def work(thread: int) -> None:
        session = gate.open_session(agent_id=AGENT, task="transfer", environment="staging")
        step = 0
        while time.monotonic() < deadline:
            tool, tool_args = MIX[(step + thread) % len(MIX)]
            request = Request(
                agent_id=AGENT, session_id=session.session_id, tool=tool, args=tool_args
            )
            decision = gate.decide(request)
            index = None
            if decision.receipt is not None:
                index = json.loads(base64.b64decode(decision.receipt["payload"]))["index"]
            emit(
                id=decision.decision_id,
                outcome=decision.outcome.value,
                rule=decision.rule,
                digest=decision.request_digest,
                index=index,
            )
            step += 1

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runtime.close()


if __name__ == "__main__":
    main()
