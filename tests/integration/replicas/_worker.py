"""One "replica" process for the multi-process store tests: ``python _worker.py MODE URL ...``.

Each mode prints JSON lines on stdout, which the test reads. Processes start their work together
at the wall-clock instant ``--start`` so that their requests really race.

* ``idempotency``: record one decision per key 0..N-1 (starting at ``--offset``) under the same
  idempotency keys as the other replicas; print ``{"key", "won", "winner"}`` per key. With
  ``--start-file`` it prints ``{"ready"}`` and starts at the instant the test writes there.
* ``watch``: subscribe to ``--channel``; on every notice re-read the kv flag; print ``{"ready"}``
  once listening and ``{"seen", "at"}`` when the flag appears.
* ``load``: print ``{"ready"}`` once connected, record decisions for ``--seconds``, then print one
  ``{"at", "ok", "error", "id"}`` per call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

from clearance.errors import StoreError
from clearance.store.notify import Notice, notifier_for
from clearance.store.postgres import PostgresStore
from clearance.store.protocol import DecisionRecord, IdempotencyRecord


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def wait_until(start: float) -> None:
    delay = start - time.time()
    if delay > 0:
        time.sleep(delay)


def decision(decision_id: str, n: int) -> DecisionRecord:
    return DecisionRecord(
        decision_id=decision_id,
        request={"agent_id": "agent-a", "tool": "payments.refund", "args": {"n": n}},
        facts={},
        decision={"outcome": "PERMIT", "decision_id": decision_id},
        policy="sha256:" + "ab" * 32,
        created_at="2026-03-01T12:00:00.000000Z",
    )


def wait_for_start_file(path: str) -> None:
    """Print ``{"ready"}``, then start at the instant the test writes into ``path``."""
    emit(ready=True)
    while not os.path.exists(path):
        time.sleep(0.01)
    with open(path) as f:
        wait_until(float(f.read()))


def run_idempotency(store: PostgresStore, args: argparse.Namespace) -> None:
    if args.start_file:
        wait_for_start_file(args.start_file)
    else:
        wait_until(args.start)
    # Each replica starts at its own offset (--offset) and wraps around: every replica wins the
    # keys near its start, and they collide where their ranges meet.
    for step in range(args.keys):
        key = (args.offset + step) % args.keys
        decision_id = f"{args.name}-{key:06d}"
        idem = IdempotencyRecord(
            agent_id="agent-a",
            key=f"key-{key}",
            digest="sha256:" + "cd" * 32,
            decision_id=decision_id,
            decision={"outcome": "PERMIT", "decision_id": decision_id},
            created_at="2026-03-01T12:00:00.000000Z",
        )
        existing = store.record_decision(
            decision(decision_id, key),
            session_id="ses_1",
            tool="payments.refund",
            count_call=True,
            idempotency=idem,
        )
        emit(
            key=key,
            won=existing is None,
            winner=decision_id if existing is None else existing.decision_id,
        )


def run_watch(store: PostgresStore, args: argparse.Namespace) -> None:
    seen = threading.Event()
    notifier = notifier_for(store)

    def on_notice(notice: Notice) -> None:
        value = store.kv_get("control", "halt")
        if value is not None and not seen.is_set():
            seen.set()
            emit(seen=value, at=time.time(), resync=notice.resync)

    notifier.subscribe(args.channel, on_notice)
    emit(ready=True)
    seen.wait(timeout=args.seconds)
    notifier.close()


def run_load(store: PostgresStore, args: argparse.Namespace) -> None:
    # Lines are kept until the end: a full stdout pipe would block this process mid-test.
    lines: list[dict[str, Any]] = []

    def emit(**fields: Any) -> None:
        lines.append(fields)

    sys.stdout.write(json.dumps({"ready": True}) + "\n")  # connected: the test may time its outage
    sys.stdout.flush()
    wait_until(args.start)
    end = time.time() + args.seconds
    n = 0
    while time.time() < end:
        decision_id = f"{args.name}-{n:08d}"
        try:
            store.record_decision(
                decision(decision_id, n),
                session_id="ses_1",
                tool="payments.refund",
                count_call=True,
                idempotency=None,
            )
        except StoreError as exc:
            emit(at=time.time(), ok=False, error=type(exc).__name__, id=decision_id)
            time.sleep(0.02)
        except Exception as exc:  # a driver error leaking out would be a bug: report it
            emit(
                at=time.time(),
                ok=False,
                error=f"LEAK:{type(exc).__module__}.{type(exc).__name__}",
                id=decision_id,
            )
        else:
            emit(at=time.time(), ok=True, error=None, id=decision_id)
        n += 1
    for line in lines:
        sys.stdout.write(json.dumps(line) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["idempotency", "watch", "load"])
    parser.add_argument("url")
    parser.add_argument("--name", default="p")
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--start-file", default="")
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--channel", default="clearance.killswitch")
    args = parser.parse_args()
    store = PostgresStore(args.url, application_name=f"replica-{args.name}")
    try:
        {"idempotency": run_idempotency, "watch": run_watch, "load": run_load}[args.mode](
            store, args
        )
    finally:
        store.close()


if __name__ == "__main__":
    main()
