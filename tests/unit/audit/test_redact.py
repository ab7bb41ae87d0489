"""Masking: configured paths, built-in secret detectors, tags, no mutation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearance.audit.redact import BUILTIN_DETECTORS, Redactor, luhn_valid, mask_text
from clearance.audit.sign import MaskKey

KEY = MaskKey("m1", bytes(range(32)))

SECRETS = {
    "private-key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "aws-access-key": "AKIAIOSFODNN7EXAMPLE",
    "github-token": "ghp_" + "a1B2" * 9,
    "slack-token": "xoxb-1234567890-abcdefghij",
    "stripe-key": "sk_live_" + "x" * 24,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefghijklmnop",
    "card-number": "4111 1111 1111 1111",
}


@pytest.mark.parametrize(("name", "secret"), sorted(SECRETS.items()))
def test_builtin_detectors_find_each_secret(name: str, secret: str) -> None:
    masked = mask_text(f"before {secret} after", BUILTIN_DETECTORS)
    assert secret not in masked
    assert f"redacted:{name}" in masked
    assert masked.startswith("before ")


def test_password_in_url_and_bearer_token() -> None:
    assert mask_text("postgres://app:s3cr3tpw@db:5432/x", BUILTIN_DETECTORS) == (
        "postgres://app:redacted:url-password@db:5432/x"
    )
    masked = mask_text("Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123", BUILTIN_DETECTORS)
    assert "abcdefghijklmnopqrstuvwxyz0123" not in masked


def test_card_numbers_need_a_valid_luhn_check() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert mask_text("order 4111111111111112", BUILTIN_DETECTORS) == "order 4111111111111112"


def test_paths_remove_and_tag_without_mutating_input() -> None:
    r = Redactor(
        KEY, paths={"args.password": "remove", "agent_id": "tag", "args.items.*.email": "tag"}
    )
    payload = {
        "agent_id": "agent-7",
        "args": {
            "password": "hunter2",
            "items": [{"email": "a@x.example"}, {"email": "a@x.example"}],
        },
    }
    out = r.redact(payload)
    assert "password" not in out["args"]
    assert out["agent_id"].startswith("hmac-sha256:m1:")
    assert out["args"]["items"][0]["email"] == out["args"]["items"][1]["email"] != "a@x.example"
    assert payload["args"]["password"] == "hunter2"


def test_equal_values_correlate_across_payloads_and_normalisation() -> None:
    r = Redactor(KEY, paths={"user": "tag"})
    assert r.redact({"user": "Alice "})["user"] == r.redact({"user": "Alice"})["user"]
    assert r.redact({"user": "Alice"})["user"] != r.redact({"user": "Bob"})["user"]


def test_redaction_is_idempotent() -> None:
    r = Redactor(KEY, paths={"user": "tag"})
    once = r.redact({"user": "alice", "note": "key AKIAIOSFODNN7EXAMPLE"})
    assert r.redact(once) == once


def test_custom_detector_is_used() -> None:
    r = Redactor(detectors=[lambda text: [(0, 3, "custom")] if text.startswith("abc") else []])
    assert r.redact({"x": "abcdef"}) == {"x": "redacted:customdef"}


def test_tag_path_needs_a_key() -> None:
    with pytest.raises(ValueError, match="masking key"):
        Redactor(paths={"x": "tag"})


# Every built-in detector carries a trigger (a necessary condition for a match) that lets masking
# pass over text without running the detectors. The output must be exactly what running every
# detector on every string gives: the same detectors wrapped as plain callables have no trigger.
UNFILTERED = Redactor(KEY, paths={"user": "tag"}, detectors=[d.__call__ for d in BUILTIN_DETECTORS])
FILTERED = Redactor(KEY, paths={"user": "tag"})
PIECES = [
    *SECRETS.values(),
    "postgres://app:s3cr3tpw@db",
    "Bearer abcdefghijklmnopqrstuvwxyz0123",
    "aws_secret_access_key=" + "A" * 40,
    "aws_\u017fecret_access_key=" + "B" * 40,  # long s: matches `s` under (?i)
    "\u017fECRET: 'abcdefghijk'",
    "PWD=12345678",
    "api-key: zzzzzzzzzz",
    "sk-" + "a" * 25,
    "AIza" + "b" * 35,
    "4111-1111-1111-1111",
    "\u0664\u0661\u0661\u0661" * 4,  # Arabic-Indic digits are digits to the card pattern
    "1234 5678 9012 3",
    "-----BEGIN ",
    "://",
    "K",
    " ",
    "-",
    "\x00",
    "é",
]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=5).map("".join),
        max_size=6,
    )
)
def test_triggers_never_change_what_is_masked(texts: list[str]) -> None:
    payload = {"user": "alice", "args": {f"k{i}": t for i, t in enumerate(texts)}, "n": texts}
    assert FILTERED.redact(payload) == UNFILTERED.redact(payload)


@pytest.mark.parametrize("text", PIECES)
def test_each_secret_piece_is_masked_the_same_with_and_without_triggers(text: str) -> None:
    payload = {"note": f"see {text} here"}
    assert FILTERED.redact(payload) == UNFILTERED.redact(payload)


def test_a_secret_written_with_a_non_ascii_case_variant_is_still_masked() -> None:
    secret = "C" * 40
    out = FILTERED.redact({"note": f"aws_\u017fecret_access_key={secret}"})
    assert secret not in out["note"]
    assert "redacted:aws-secret-key" in out["note"]
