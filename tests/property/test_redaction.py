"""Redaction is idempotent, removes every seeded secret, and keeps equal values correlated."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clearance.audit.redact import Redactor
from clearance.audit.sign import MaskKey

KEY = MaskKey("p1", bytes(range(32)))
SECRETS = [
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "Z9y8" * 9,
    "sk_live_" + "q" * 24,
    "4012 8888 8888 1881",
    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
]
filler = st.text(alphabet=st.sampled_from("abc XYZ.,:-_/"), max_size=20)
payloads = st.recursive(
    st.none() | st.booleans() | st.integers() | filler,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(filler, children, max_size=4),
    max_leaves=15,
)
REDACTOR = Redactor(KEY, paths={"user": "tag", "args.*.email": "tag", "args.password": "remove"})


@settings(max_examples=200, deadline=None)
@given(payloads, st.sampled_from(SECRETS), filler, filler)
def test_no_seeded_secret_survives(value: object, secret: str, before: str, after: str) -> None:
    payload = {"data": value, "note": f"{before} {secret} {after}"}
    out = REDACTOR.redact(payload)
    assert secret not in repr(out)
    assert REDACTOR.redact(out) == out


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_equal_values_give_equal_tags(a: str, b: str) -> None:
    ta = REDACTOR.redact({"user": a})["user"]
    tb = REDACTOR.redact({"user": b})["user"]
    assert ta.startswith("hmac-sha256:p1:")
    assert (ta == tb) == (a.strip() == b.strip() or _nfc(a).strip() == _nfc(b).strip())


def _nfc(s: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFC", s)


@settings(max_examples=100, deadline=None)
@given(payloads)
def test_input_is_never_mutated(value: object) -> None:
    payload = {"args": {"password": "pw12345678", "x": value}, "user": "u"}
    snapshot = repr(payload)
    REDACTOR.redact(payload)
    assert repr(payload) == snapshot
