"""`clearance audit` against the data directory a real gate wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _clearance(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clearance", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_export_tail_and_verify_read_the_gates_audit_shard(tmp_path: Path) -> None:
    assert _clearance("demo", "--data-dir", "d", cwd=tmp_path).returncode == 0
    exported = _clearance("audit", "export", "--data-dir", "d", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    decisions = [e for e in events if e.get("tool") == "transfer_funds"]
    assert {e["outcome"] for e in decisions} >= {"DENY", "APPROVAL", "PERMIT"}
    assert all("timestamp" in e and "risk_tier" in e for e in decisions)
    tail = _clearance("audit", "tail", "--data-dir", "d", "-n", "3", cwd=tmp_path)
    assert tail.returncode == 0, tail.stderr
    assert len(tail.stdout.strip().splitlines()) == 3
    vkey = (tmp_path / "d" / "keys" / "audit.pub").read_text().strip()
    verified = _clearance("audit", "verify", "log", "--key", vkey, "d/audit.db", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
