"""Bundles: digest covers meaning (and cited lines), bytes round-trip, signatures verify."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clearance.errors import PolicyError
from clearance.model import Request, SessionFacts
from clearance.policy import Bundle, BundleSignatureError, evaluate, load_policy

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "financeapp" / "policy.yaml"


@pytest.fixture(scope="module")
def text() -> str:
    return EXAMPLE.read_text()


def test_comments_quotes_and_trailing_spaces_do_not_change_the_digest(text: str) -> None:
    base = load_policy(text, source_name="p.yaml")
    edited = text.replace("name: financeapp", "name: 'financeapp'   # same name")
    edited = edited.replace("# FinanceApp: the finance agent", "# FinanceApp - the agent")
    assert load_policy(edited, source_name="p.yaml").digest == base.digest


def test_layout_of_uncited_keys_does_not_change_the_digest() -> None:
    head = "version: '1'\nname: x\nenvironments: {staging: {}, production: {}}\n"
    tools = "tools:\n  t:\n    tier: read-only\n"
    block = head + tools + "tasks:\n  a:\n    tools:\n      - t\n"
    flow = head + tools.replace("read-only", '"read-only"') + "tasks: {a: {tools: [t]}}\n"
    assert load_policy(block).digest == load_policy(flow).digest


def test_moving_a_rule_to_another_line_changes_the_digest() -> None:
    text = (
        "version: '1'\nname: x\nenvironments: {staging: {}, production: {}}\n"
        "tools: {t: {tier: read-only}}\ntasks: {a: {tools: [t]}}\n"
        "rules:\n  - {id: r, outcome: permit}\n"
    )
    moved = text.replace("rules:\n", "rules:\n\n")
    assert load_policy(text).digest != load_policy(moved).digest
    assert load_policy(moved).compiled.locations["r"] == "<policy>:8"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("amount <= 1000.0", "amount <= 1000.5"),
        ("max: 1000000", "max: 1000001"),
        ("ACC-300042", "ACC-300043"),
        ("timeout: 15m", "timeout: 16m"),
        ("tier: write-limited", "tier: write-broad"),
    ],
)
def test_any_semantic_change_changes_the_digest(text: str, old: str, new: str) -> None:
    assert old in text
    assert (
        load_policy(text.replace(old, new, 1), source_name="p.yaml").digest
        != load_policy(text, source_name="p.yaml").digest
    )


def test_source_name_is_covered(text: str) -> None:
    assert (
        load_policy(text, source_name="a.yaml").digest
        != load_policy(text, source_name="b.yaml").digest
    )


def test_from_bytes_recompiles_to_the_same_digest_and_verdicts(finance: Bundle) -> None:
    again = Bundle.from_bytes(finance.to_bytes())
    assert again.digest == finance.digest
    assert again.canonical_bytes == finance.canonical_bytes
    facts = SessionFacts(task="maintenance", environment="production")
    for tool, args in [
        ("execute_sql", {"database": "ledger", "query": "update t"}),
        ("delete_records", {"table": "payees", "ids": [1]}),
        ("read_account", {"account_id": "ACC-000001"}),
        ("read_account", {"account_id": "nope"}),
    ]:
        request = Request(agent_id="a", session_id="s", tool=tool, args=args)
        assert evaluate(again.compiled, request, facts) == evaluate(
            finance.compiled, request, facts
        )


def test_non_canonical_bytes_are_refused(finance: Bundle) -> None:
    with pytest.raises(PolicyError, match="canonical"):
        Bundle.from_bytes(finance.to_bytes().replace(b'{"document"', b'{ "document"', 1))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b"[]",
        b'{"format":"other"}',
        b'{"a":1,"a":2}',
        b"NaN",
        b'{"document":{},"format":"clearance.policy/1","lines":{},"source":"x"}',
    ],
)
def test_garbage_bytes_are_policy_errors(data: bytes) -> None:
    with pytest.raises(PolicyError):
        Bundle.from_bytes(data)


def test_sign_and_verify(finance: Bundle) -> None:
    key = Ed25519PrivateKey.generate()
    signed = finance.sign(key)
    assert signed.verify_signature(key.public_key()) is signed
    archived = Bundle.from_bytes(signed.to_bytes(), signature=signed.signature)
    archived.verify_signature(key.public_key())


def test_wrong_key_missing_or_tampered_signature(finance: Bundle, text: str) -> None:
    key = Ed25519PrivateKey.generate()
    signed = finance.sign(key)
    with pytest.raises(BundleSignatureError, match="does not verify"):
        signed.verify_signature(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(BundleSignatureError, match="not signed"):
        finance.verify_signature(key.public_key())
    other = load_policy(text.replace("ACC-300042", "ACC-666666"), source_name="policy.yaml")
    moved = Bundle.from_bytes(other.to_bytes(), signature=signed.signature)
    with pytest.raises(BundleSignatureError):
        moved.verify_signature(key.public_key())
