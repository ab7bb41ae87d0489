"""Attack: use one execution token twice, including from two threads at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.approvals_kit import ALICE, Kit, kit_fixture  # noqa: F401

from clearance.model.decision import Outcome


def _approved(kit: Kit):
    s = kit.session()
    req = kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v")
    d = kit.decide(req)
    assert d.approval_id is not None
    kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    return req, kit.token_for(d, req)


def test_second_use_is_an_opaque_deny(kit: Kit) -> None:
    req, token = _approved(kit)
    assert kit.decide(req, token).permitted
    replay = kit.decide(req, token)
    assert replay.outcome is Outcome.DENY
    assert replay.rule == "invalid-token"
    assert replay.reason == "the execution token is not valid for this request"
    assert kit.audit.reasons("approval.token_rejected") == ["replayed"]


def test_concurrent_redemptions_permit_exactly_once(kit: Kit) -> None:
    req, token = _approved(kit)
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda _: kit.decide(req, token).outcome, range(16)))
    assert outcomes.count(Outcome.PERMIT) == 1
    assert set(outcomes) == {Outcome.PERMIT, Outcome.DENY}


def test_token_cannot_be_claimed_twice(kit: Kit) -> None:
    import pytest

    from clearance.errors import InvalidTokenError

    s = kit.session()
    req = kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v")
    d = kit.decide(req)
    assert d.approval_id is not None
    kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    kit.token_for(d, req)
    with pytest.raises(InvalidTokenError):
        kit.token_for(d, req)
    assert kit.audit.reasons("approval.token_rejected") == ["token-already-issued"]


def test_forged_and_malformed_tokens_are_the_same_opaque_deny(kit: Kit) -> None:
    req, token = _approved(kit)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (forged, "clt1_short", "x" * 4000, ""):
        d = kit.decide(req, bad)
        assert d.outcome is Outcome.DENY
        assert d.rule == "invalid-token"
        assert d.reason == "the execution token is not valid for this request"
    assert kit.audit.reasons("approval.token_rejected") == [
        "unknown-token",
        "malformed",
        "malformed",
        "malformed",
    ]
    assert kit.decide(req, token).permitted
