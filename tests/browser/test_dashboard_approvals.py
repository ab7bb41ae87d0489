"""The approval flows an operator goes through, in a real Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from tests.integration.server.conftest import World
from tests.integration.server.test_approval_flow import CRITICAL_POLICY, ask, big_transfer, claim

from clearance.gate.clock import FixedClock
from clearance.policy import load_policy

pytestmark = pytest.mark.browser


def test_log_in_see_context_approve_and_the_resubmission_is_permitted(
    page: Any, full_world: World, log_in: Any
) -> None:
    session_id = full_world.open_session()
    call = big_transfer(session_id)
    decision = ask(full_world, call)

    log_in("ana")
    card = page.locator(f"#approval-{decision['approval_id']}")
    assert card.is_visible()
    text = card.inner_text()
    assert "the invoice is due today" in text  # the agent's reasoning
    assert "5000" in card.locator("pre.args").inner_text()  # the (masked) arguments
    assert "write-broad" in text  # the risk tier
    assert "payments-bot" in text
    assert card.locator("time.countdown").inner_text() != ""  # the expiry countdown

    card.get_by_role("button", name="Approve").click()
    page.wait_for_url("**/approvals?msg=*")
    assert "request is approved" in page.locator(".flash").inner_text()
    assert page.locator(f"#approval-{decision['approval_id']}").count() == 0

    token = claim(full_world, decision, session_id)["token"]
    with full_world.agent() as client:
        resubmitted = client.post("/v1/tokens/redeem", json={**call, "approval_token": token})
    assert resubmitted.status_code == 200
    assert resubmitted.json()["outcome"] == "PERMIT"


def test_a_critical_action_waits_for_a_second_distinct_approver(
    page: Any, full_world: World, log_in: Any
) -> None:
    full_world.gate.activate(load_policy(CRITICAL_POLICY, source_name="critical.yaml"), by="test")
    session_id = full_world.open_session(task="cleanup")
    call = {"session_id": session_id, "tool": "delete_records", "args": {"table": "t"}}
    decision = ask(full_world, call)
    card_id = f"#approval-{decision['approval_id']}"

    log_in("ana")
    assert "second approver required" in page.locator(card_id).inner_text()
    page.locator(card_id).get_by_role("button", name="Approve").click()
    assert "a second approver is required" in page.locator(".flash").inner_text()
    assert "1 of 2" in page.locator(card_id).locator(".votes").inner_text()
    assert claim(full_world, decision, session_id)["token"] is None

    page.locator(card_id).get_by_role("button", name="Approve").click()  # ana again: refused
    assert "Refused" in page.locator("h1").inner_text()

    page.goto(f"{full_world.base_url}/approvals")
    page.get_by_role("button", name="Log out").click()
    log_in("bo")
    page.locator(card_id).get_by_role("button", name="Approve").click()
    assert "request is approved" in page.locator(".flash").inner_text()

    token = claim(full_world, decision, session_id)["token"]
    with full_world.agent() as client:
        redeemed = client.post("/v1/tokens/redeem", json={**call, "approval_token": token})
    assert redeemed.json()["outcome"] == "PERMIT"


def test_a_form_without_its_csrf_token_is_refused(
    page: Any, full_world: World, log_in: Any
) -> None:
    session_id = full_world.open_session()
    decision = ask(full_world, big_transfer(session_id))
    log_in("ana")
    card = page.locator(f"#approval-{decision['approval_id']}")
    card.locator("form[action$='/approve'] input[name='csrf_token']").evaluate("e => e.remove()")
    card.get_by_role("button", name="Approve").click()
    assert "Refused (403)" in page.locator("h1").inner_text()
    assert "csrf_failed" in page.locator(".code").inner_text()
    assert claim(full_world, decision, session_id)["state"] == "pending"


def test_an_expired_approval_disappears_and_the_agent_is_denied(
    page: Any, full_world: World, log_in: Any, clock: FixedClock
) -> None:
    session_id = full_world.open_session()
    call = big_transfer(session_id)
    decision = ask(full_world, call)
    log_in("ana")
    assert page.locator(f"#approval-{decision['approval_id']}").is_visible()

    clock.advance(16 * 60)
    page.reload()
    assert page.locator(f"#approval-{decision['approval_id']}").count() == 0
    assert "Nothing is waiting" in page.locator("main").inner_text()

    status = claim(full_world, decision, session_id)
    assert status["state"] == "expired"
    assert status["token"] is None
    with full_world.agent() as client:
        forged = client.post(
            "/v1/tokens/redeem", json={**call, "approval_token": "clt1_" + "A" * 43}
        )
    assert forged.status_code == 403
    assert forged.json()["outcome"] == "DENY"
