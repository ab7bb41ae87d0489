"""Attack: get a small payment approved, then redeem the token with a bigger amount or payee."""

from __future__ import annotations

from tests.approvals_kit import ALICE, Kit, kit_fixture  # noqa: F401

from clearance.model.decision import Outcome


def test_swapped_arguments_are_denied_and_the_token_survives_for_the_real_call(kit: Kit) -> None:
    s = kit.session()
    shown = kit.request(s, "pay_vendor", amount=24, from_account="chk-1", vendor="acme")
    d = kit.decide(shown)
    assert d.approval_id is not None
    kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    token = kit.token_for(d, shown)

    for swapped in (
        kit.request(s, "pay_vendor", amount=2400000, from_account="chk-1", vendor="acme"),
        kit.request(s, "pay_vendor", amount=24, from_account="chk-1", vendor="attacker"),
        shown.model_copy(update={"target": "other-ledger"}),
        shown.model_copy(update={"action": "refund"}),
    ):
        swapped_decision = kit.decide(swapped, token)
        assert swapped_decision.outcome is Outcome.DENY
        assert swapped_decision.rule == "invalid-token"
        assert not swapped_decision.permitted
    assert kit.audit.reasons("approval.token_rejected") == ["request-mismatch"] * 4
    assert kit.decide(shown, token).permitted
