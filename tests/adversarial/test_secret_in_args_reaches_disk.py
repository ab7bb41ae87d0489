"""Attack: an agent (or an injection) puts secrets into tool arguments hoping they land in the logs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clearance.cli.commands.core import example_policy_text
from clearance.cli.runtime import create_keys, open_runtime, store_url_for
from clearance.gate.config import GateConfig
from clearance.model.request import Request
from clearance.policy import load_policy
from clearance.store import open_store

AWS_KEY = "AKIAQWERTYUIOPASDFGH"
CARD = "4111 1111 1111 1111"


def test_secrets_are_masked_before_anything_is_stored(tmp_path: Path) -> None:
    data = tmp_path / ".clearance"
    create_keys(data, GateConfig().deployment)
    open_store(store_url_for(data, None)).close()
    runtime = open_runtime(data, require_policy=False)
    try:
        runtime.gate.activate(load_policy(example_policy_text()), by="test")
        s = runtime.gate.open_session(agent_id="a", task="notify", environment="staging")
        body = f"here are the keys: {AWS_KEY} and card {CARD}"
        decision = runtime.gate.decide(
            Request(
                agent_id="a",
                session_id=s.session_id,
                tool="send_email",
                args={"recipient": "ops@financeapp.example", "subject": body, "body": body},
            )
        )
        assert decision.receipt is not None
    finally:
        runtime.close()
    with sqlite3.connect(data / "audit.db") as conn:
        stored = b"".join(bytes(row[0]) for row in conn.execute("SELECT body FROM audit_payload"))
    assert stored, "the decision payload was stored"
    assert AWS_KEY.encode() not in stored
    assert CARD.replace(" ", "").encode() not in stored.replace(b" ", b"")
    assert b"redacted:aws-access-key" in stored  # detected in a field the policy keeps
    assert b"ops@financeapp.example" not in stored  # a field the policy hashes
