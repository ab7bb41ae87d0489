"""Attack: derive a request with swapped arguments from an approved one and reuse its digest."""

from __future__ import annotations

from clearance.formats.canonical import request_digest
from clearance.model.request import Request


def test_a_copy_with_other_args_has_its_own_digest() -> None:
    approved = Request(agent_id="a", session_id="s", tool="transfer_funds", args={"amount": 10})
    assert approved.digest  # cache it
    swapped = approved.model_copy(update={"args": {"amount": 10_000}})
    assert swapped.digest != approved.digest
    assert swapped.digest == request_digest(
        agent_id="a",
        session_id="s",
        tool="transfer_funds",
        action="call",
        args={"amount": 10_000},
        target=None,
    )


def test_a_copy_with_a_token_keeps_the_same_digest() -> None:
    request = Request(agent_id="a", session_id="s", tool="t", args={"x": 1})
    with_token = request.model_copy(update={"approval_token": "tok"})
    assert with_token.digest == request.digest
