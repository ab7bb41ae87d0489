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
from pathlib import Path
from typing import Any

from tests.reliability.kit import (
    PYTHON,
    Round,
    check_round,
    collect,
    init_data_dir,
    start_worker,
    verify,
    vkey_text,
)


def test_sigkill_under_load_loses_no_acknowledged_decision(tmp_path: Path, soak: bool) -> None:
    seed = int(os.environ.get("CLEARANCE_CRASH_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    rounds = 200 if soak else 10
    data_dir = tmp_path / "data"
    key = init_data_dir(data_dir)
    state: dict[str, Any] = {}
    checked_entries = acknowledged = dispatched = torn = 0
    for _ in range(rounds):
        proc, _ = start_worker(data_dir)
        checked_entries += verify(data_dir, key, state, f"seed {seed}")
        seen = Round()
        assert proc.stdout is not None
        assert proc.stdin is not None
        reader = threading.Thread(target=collect, args=(proc.stdout, seen))
        reader.start()
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        time.sleep(rng.uniform(0.02, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join()
        check_round(data_dir, seen, f"seed {seed}")
        acknowledged += len(seen.acknowledged)
        dispatched += len(seen.dispatched)
        torn += seen.torn
    proc, _ = start_worker(data_dir)
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
