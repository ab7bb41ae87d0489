"""Attack: arguments no canonical digest can cover (NaN, Infinity, huge integers, lone surrogates).

The request digest (RFC 8785) binds approvals, tokens and receipts; a value it cannot encode used
to reach the gate and end in a traceback and a SILENCE with no audit entry. Each value is now
refused while the request is built, with the argument path and the fix; one that reaches the gate
anyway (a request built without validation) is a DENY ``invalid-request``, logged, and the log
still verifies.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from clearance.audit.log import AuditLog
from clearance.audit.sign import AuditKey
from clearance.audit.testing import DEPLOYMENT, ORIGIN, StepClock
from clearance.audit.verify.verify import verify_log
from clearance.formats.canonical import NotCanonicalError, canonical_bytes
from clearance.formats.note import VerifierKey
from clearance.gate.evidence import AuditRecorder
from clearance.gate.gate import Gate
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.policy.bundle import Bundle
from clearance.store.audit_sqlite import SQLiteAuditStorage
from clearance.store.protocol import Store

KEY = AuditKey(DEPLOYMENT, bytes(32))

HOSTILE: list[tuple[str, dict[str, Any], str, str]] = [
    ("nan", {"amount": math.nan, "to_account": "acc-1"}, "args.amount", "NaN"),
    ("infinity", {"amount": math.inf, "to_account": "acc-1"}, "args.amount", "Infinity"),
    ("minus-infinity", {"amount": -math.inf, "to_account": "acc-1"}, "args.amount", "-Infinity"),
    ("2**53", {"amount": 2**53, "to_account": "acc-1"}, "args.amount", "9007199254740992"),
    ("-(2**53)", {"amount": -(2**53), "to_account": "acc-1"}, "args.amount", "2**53"),
    ("2**64", {"amount": 2**64, "to_account": "acc-1"}, "args.amount", "send it as a string"),
    ("surrogate", {"amount": 5.0, "to_account": "acc-1\ud800"}, "args.to_account", "surrogate"),
    ("surrogate-key", {"amount": 5.0, "to_account": "acc-1", "\udfff": 1}, "args[", "surrogate"),
    (
        "nested",
        {"amount": 5.0, "to_account": "acc-1", "m": [{"x": math.nan}]},
        "args.m[0].x",
        "NaN",
    ),
    ("bytes", {"amount": 5.0, "to_account": b"acc-1"}, "args.to_account", "`bytes`"),
    ("int-key", {"amount": 5.0, "to_account": "acc-1", "m": {1: 2}}, "args.m[1]", "not a string"),
]
IDS = [case[0] for case in HOSTILE]


@pytest.fixture
def audited(tmp_path: Path, store: Store, small_bundle: Bundle) -> Gate:
    log = AuditLog(
        SQLiteAuditStorage(tmp_path / "audit.db"),
        KEY,
        ORIGIN,
        StepClock(datetime(2026, 3, 1, tzinfo=UTC)),
    )
    gate = Gate(store, audit=AuditRecorder(log, KEY))
    gate.activate(small_bundle, by="test")
    return gate


@pytest.mark.parametrize(("name", "args", "path", "words"), HOSTILE, ids=IDS)
def test_request_refuses_the_value_naming_path_and_fix(
    name: str, args: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Request(agent_id="a", session_id="s", tool="transfer_funds", args=args)
    message = caught.value.errors()[0]["msg"]
    assert f"`{path}" in message
    assert words in message
    assert "; send" in message or "; use" in message  # every message says what to do instead


@pytest.mark.parametrize("value", [math.nan, math.inf, 2**53, "\ud800", {1: 2}, object()])
def test_canonical_bytes_raises_one_error_type(value: object) -> None:
    with pytest.raises(NotCanonicalError):
        canonical_bytes({"v": value})


def test_limits_themselves_are_accepted() -> None:
    ok = {"max": 2**53 - 1, "min": -(2**53 - 1), "tiny": 5e-324, "big": 1.7976931348623157e308}
    request = Request(agent_id="a", session_id="s", tool="t", args=ok)
    assert request.digest.startswith("sha256:")


@pytest.mark.parametrize(("name", "args", "path", "words"), HOSTILE, ids=IDS)
def test_unvalidated_request_is_denied_logged_and_log_verifies(
    audited: Gate,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
    args: dict[str, Any],
    path: str,
    words: str,
) -> None:
    s = audited.open_session(agent_id="fin-1", task="transfer", environment="staging")
    fine = Request(
        agent_id="fin-1", session_id=s.session_id, tool="transfer_funds", args={"amount": 5.0}
    )
    smuggled = fine.model_copy(update={"args": args})  # model_copy skips validation
    with caplog.at_level(logging.WARNING):
        decision = audited.decide(smuggled)
    assert decision.outcome is Outcome.DENY
    assert decision.rule == "invalid-request"
    assert f"`{path}" in decision.reason
    assert decision.receipt is not None  # the refusal is signed evidence
    assert not [r for r in caplog.records if r.exc_info], "the refusal must not be a traceback"
    record = audited.store.get_decision(decision.decision_id)
    assert record is not None
    assert record.decision["outcome"] == "DENY"
    assert "<not representable:" in repr(record.request["args"])
    state = audited.store.session_state(s.session_id)
    assert state is not None
    assert state.calls == {}
    assert isinstance(audited.audit, AuditRecorder)
    audited.audit.log.checkpoint_now()
    audited.audit.log.close()
    report = verify_log(tmp_path / "audit.db", [VerifierKey.parse(KEY.vkey)])
    assert report.exit_code == 0, report.findings
    entries = SQLiteAuditStorage(tmp_path / "audit.db", readonly=True).size(ORIGIN)
    assert entries >= 2  # the policy activation and the refusal


def test_constructed_request_with_nan_is_denied_not_silenced(gate: Gate) -> None:
    s = gate.open_session(agent_id="fin-1", task="transfer", environment="staging")
    smuggled = Request.model_construct(
        agent_id="fin-1",
        session_id=s.session_id,
        tool="transfer_funds",
        action="call",
        args={"amount": math.nan, "to_account": "acc-1"},
        target=None,
        reasoning=None,
        context_hash=None,
        idempotency_key="pay-1",
        approval_token=None,
    )
    first = gate.decide(smuggled)
    assert (first.outcome, first.rule) == (Outcome.DENY, "invalid-request")
    # The refusal is not remembered under the key: a valid request with it is decided afresh.
    valid = Request(
        agent_id="fin-1",
        session_id=s.session_id,
        tool="transfer_funds",
        args={"amount": 5.0, "to_account": "acc-1"},
        idempotency_key="pay-1",
    )
    assert gate.decide(valid).outcome is Outcome.PERMIT


def test_other_agents_session_gets_no_record(gate: Gate) -> None:
    s = gate.open_session(agent_id="fin-1", task="transfer", environment="staging")
    fine = Request(agent_id="intruder", session_id=s.session_id, tool="transfer_funds")
    decision = gate.decide(fine.model_copy(update={"args": {"amount": math.inf}}))
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "invalid-request")
    assert gate.store.get_decision(decision.decision_id) is None
