"""Shared parts of the reliability suite: soak switch, data directories, audit log readers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from clearance.audit.verify.verify import verify_log
from clearance.cli.runtime import create_keys, key_paths, open_runtime, store_url_for
from clearance.formats.entry import parse_header
from clearance.formats.note import VerifierKey
from clearance.gate.config import GateConfig
from clearance.policy import load_policy
from clearance.store import open_store
from clearance.store.audit_sqlite import SQLiteAuditStorage

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = ROOT / "examples" / "financeapp" / "policy.yaml"
PYTHON = sys.executable


def soak_requested(option: bool) -> bool:
    """``--soak`` or ``CLEARANCE_SOAK=1``."""
    return option or os.environ.get("CLEARANCE_SOAK", "") not in ("", "0")


def init_data_dir(data_dir: Path, policy: Path = EXAMPLE_POLICY) -> VerifierKey:
    """What ``clearance init`` makes (keys, store, audit shard, active policy); the public key."""
    create_keys(data_dir, GateConfig().deployment)
    open_store(store_url_for(data_dir, None)).close()
    runtime = open_runtime(data_dir, require_policy=False)
    try:
        runtime.gate.activate(load_policy(policy), by="reliability")
    finally:
        runtime.close()
    return public_key(data_dir)


def vkey_text(data_dir: Path) -> str:
    """The deployment's audit verifier key as text, as an auditor would be handed it."""
    return key_paths(data_dir)[2].read_text().strip()


def public_key(data_dir: Path) -> VerifierKey:
    """The deployment's audit verifier key, parsed."""
    return VerifierKey.parse(vkey_text(data_dir))


@dataclass(frozen=True)
class LoggedDecision:
    """One decision entry of the audit log, as the header commits to it."""

    index: int
    decision_id: str
    outcome: str
    request_digest: str


def logged_decisions(data_dir: Path) -> dict[str, LoggedDecision]:
    """Every decision entry of every shard in ``data_dir/audit.db``, by decision id."""
    storage = SQLiteAuditStorage(data_dir / "audit.db", readonly=True)
    try:
        found: dict[str, LoggedDecision] = {}
        for origin in storage.origins():
            for index, _leaf, header, *_ in storage.entries(origin, 0, storage.size(origin)):
                assert header is not None, f"{origin} entry {index} has no header"
                fields: dict[str, Any] = parse_header(header)
                if fields.get("kind") == "decision":
                    found[fields["decision_id"]] = LoggedDecision(
                        index, fields["decision_id"], fields["outcome"], fields["request_digest"]
                    )
        return found
    finally:
        storage.close()


WORKER = Path(__file__).with_name("_crash_worker.py")
READY_TIMEOUT_S = 90.0


@dataclass
class Round:
    """What the client saw in one round: the lines it received in full before the kill."""

    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    torn: int = 0

    @property
    def dispatched(self) -> list[dict[str, Any]]:
        """The calls the client ran: the PERMITs it received."""
        return [d for d in self.acknowledged if d["outcome"] == "PERMIT"]


def start_worker(
    data_dir: Path, *options: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start ``_crash_worker.py`` on ``data_dir``; return it and its ready line once it is up.

    The worker's log (tracebacks of the failures a fault causes) goes to ``worker.log`` beside
    ``data_dir``.
    """
    with (data_dir.parent / "worker.log").open("ab") as log:
        proc = subprocess.Popen(
            [PYTHON, str(WORKER), str(data_dir), "--threads", "4", *options],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
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


def collect(stream: IO[bytes], into: Round) -> None:
    """Read decision lines until the process is gone; a line cut short was never received."""
    for line in stream:
        if line.endswith(b"\n"):
            into.acknowledged.append(json.loads(line))
        else:  # cut by the kill: the client never received this decision
            into.torn += 1


def verify(data_dir: Path, key: VerifierKey, state: dict[str, Any], label: object) -> int:
    """Verify the log with the standalone verifier's code, carrying its rollback ``state``."""
    report = verify_log(data_dir, [key], state=state)
    assert report.exit_code == 0, f"{label}: {report.findings}"
    assert report.state is not None
    state.clear()
    state.update(report.state)
    return report.entries_checked


def check_round(data_dir: Path, seen: Round, label: object) -> None:
    """What the client saw against what was kept.

    Every acknowledged decision with a receipt is in the audit log at the leaf index the receipt
    names, with the same outcome and request digest, and in the store; one without a receipt is a
    SILENCE (the gate could not record it); every dispatched call is a logged PERMIT.
    """
    logged = logged_decisions(data_dir)
    receipted = [ack for ack in seen.acknowledged if ack["index"] is not None]
    for ack in seen.acknowledged:
        if ack["index"] is None:
            assert ack["outcome"] == "SILENCE", f"{label}: {ack} was answered without evidence"
    for ack in receipted:
        entry = logged.get(ack["id"])
        assert entry is not None, f"{label}: acknowledged {ack} is not in the audit log"
        assert (entry.index, entry.outcome, entry.request_digest) == (
            ack["index"],
            ack["outcome"],
            ack["digest"],
        ), f"{label}: {ack} logged as {entry}"
    for call in seen.dispatched:
        assert call["index"] is not None, f"{label}: PERMIT {call} has no receipt"
        assert logged[call["id"]].outcome == "PERMIT"
    store = open_store(f"sqlite:///{data_dir / 'clearance.db'}")
    try:
        for ack in receipted:
            record = store.get_decision(ack["id"])
            assert record is not None, f"{label}: acknowledged {ack['id']} is not in the store"
            assert record.decision["outcome"] == ack["outcome"]
    finally:
        store.close()
