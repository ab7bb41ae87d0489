"""Crash consistency: a gate process under load is SIGKILLed at random points, again and again.

Each round restarts the gate process on the same data directory (SQLite store, durable audit shard,
signed receipts), checks the log with the standalone verifier (carrying its rollback state from
round to round, so a log that lost entries or was rewritten fails), then lets four threads decide a
mixed workload and kills the process at a random instant. The test is the client: a decision is
acknowledged when its line arrived in full, and only acknowledged PERMITs are "dispatched".

After every kill: every acknowledged decision is in the audit log at the leaf index its receipt
names, with the same outcome and request digest, and in the store; every dispatched call is a
logged PERMIT. After the last round, ``python -m clearance.audit.verify log`` (a fresh interpreter)
accepts the store with the accumulated state. 10 rounds by default, 200 with ``--soak``; the seed
is printed and can be pinned with ``CLEARANCE_CRASH_SEED``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.reliability.kit import PYTHON, init_data_dir, logged_decisions, vkey_text

from clearance.audit.verify.verify import verify_log
from clearance.formats.note import VerifierKey
from clearance.store import open_store

WORKER = Path(__file__).with_name("_crash_worker.py")
READY_TIMEOUT_S = 90.0


@dataclass
class Round:
    """What the client saw in one round: the lines it received in full before the kill."""

    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    torn: int = 0

    @property
    def dispatched(self) -> list[dict[str, Any]]:
        return [d for d in self.acknowledged if d["outcome"] == "PERMIT"]


def _start(data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    proc = subprocess.Popen(
        [PYTHON, str(WORKER), str(data_dir), "--threads", "4"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    ready: list[bytes] = []
    reader = threading.Thread(target=lambda: ready.append(proc.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(READY_TIMEOUT_S)
    if not ready or not ready[0].endswith(b"\n"):
        proc.kill()
        proc.wait()
        raise AssertionError(f"the gate process did not come up: {ready!r}")
    return proc, json.loads(ready[0])


def _collect(stream: IO[bytes], into: Round) -> None:
    for line in stream:
        if line.endswith(b"\n"):
            into.acknowledged.append(json.loads(line))
        else:  # cut by the kill: the client never received this decision
            into.torn += 1


def _verify(data_dir: Path, key: VerifierKey, state: dict[str, Any], seed: int) -> int:
    report = verify_log(data_dir, [key], state=state)
    assert report.exit_code == 0, f"seed {seed}: {report.findings}"
    assert report.state is not None
    state.clear()
    state.update(report.state)
    return report.entries_checked


def _check_round(data_dir: Path, seen: Round, seed: int) -> None:
    logged = logged_decisions(data_dir)
    for ack in seen.acknowledged:
        entry = logged.get(ack["id"])
        assert entry is not None, f"seed {seed}: acknowledged {ack} is not in the audit log"
        assert (entry.index, entry.outcome, entry.request_digest) == (
            ack["index"],
            ack["outcome"],
            ack["digest"],
        ), f"seed {seed}: {ack} logged as {entry}"
    for call in seen.dispatched:
        assert logged[call["id"]].outcome == "PERMIT"
    store = open_store(f"sqlite:///{data_dir / 'clearance.db'}")
    try:
        for ack in seen.acknowledged:
            record = store.get_decision(ack["id"])
            assert record is not None, f"seed {seed}: acknowledged {ack['id']} not in the store"
            assert record.decision["outcome"] == ack["outcome"]
    finally:
        store.close()


def test_sigkill_under_load_loses_no_acknowledged_decision(tmp_path: Path, soak: bool) -> None:
    seed = int(os.environ.get("CLEARANCE_CRASH_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    rounds = 200 if soak else 10
    data_dir = tmp_path / "data"
    key = init_data_dir(data_dir)
    state: dict[str, Any] = {}
    checked_entries = acknowledged = dispatched = torn = 0
    for _ in range(rounds):
        proc, _ = _start(data_dir)
        checked_entries += _verify(data_dir, key, state, seed)
        seen = Round()
        assert proc.stdout is not None
        assert proc.stdin is not None
        reader = threading.Thread(target=_collect, args=(proc.stdout, seen))
        reader.start()
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        time.sleep(rng.uniform(0.02, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join()
        _check_round(data_dir, seen, seed)
        acknowledged += len(seen.acknowledged)
        dispatched += len(seen.dispatched)
        torn += seen.torn
    proc, _ = _start(data_dir)
    assert proc.stdin is not None
    proc.stdin.close()  # no "go": the worker closes its runtime cleanly and exits
    assert proc.wait(timeout=60) == 0
    state_file = tmp_path / "verifier-state.json"
    state_file.write_text(json.dumps(state))
    standalone = subprocess.run(
        [
            PYTHON,
            "-m",
            "clearance.audit.verify",
            "log",
            str(data_dir),
            "--key",
            vkey_text(data_dir),
            "--state",
            str(state_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert standalone.returncode == 0, standalone.stdout + standalone.stderr
    assert acknowledged > rounds, f"seed {seed}: the load never got going"
    print(
        f"crash consistency (seed {seed}): {rounds} SIGKILLs, {acknowledged} acknowledged "
        f"decisions checked against log and store ({dispatched} dispatched PERMITs, {torn} torn "
        f"lines), {checked_entries} log entries verified across restarts"
    )
