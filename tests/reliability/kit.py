"""Shared parts of the reliability suite: soak switch, data directories, audit log readers."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
