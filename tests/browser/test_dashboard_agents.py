"""The agents page in a real Chromium: stopping a tool from the keyboard, seeing it, resuming it."""

from __future__ import annotations

from typing import Any

import pytest
from tests.integration.server.conftest import World

pytestmark = pytest.mark.browser


def _rule(world: World, session_id: str, tool: str, args: dict[str, Any]) -> str:
    with world.agent() as agent:
        call = {"session_id": session_id, "tool": tool, "args": args}
        return str(agent.post("/v1/decide", json=call).json()["rule"])


def test_stop_a_tool_with_the_keyboard_then_an_admin_resumes_it(
    page: Any, full_world: World, log_in: Any
) -> None:
    session_id = full_world.open_session()
    pay = {"amount": 5.0, "to_account": "acc-1"}
    log_in("ana")
    page.goto(f"{full_world.base_url}/agents")
    assert page.locator("#agent-payments-bot").is_visible()  # the agents render with their keys
    assert "Nothing is stopped." in page.locator("table.stops").inner_text()

    form = page.locator("form.halt-scope")
    form.get_by_label("Scope").select_option("tool")
    form.get_by_label("Tool or environment name").fill("transfer_funds")
    form.get_by_label("Reason").fill("duplicate payments")
    form.get_by_label("Reason").press("Enter")  # submits the form: no mouse needed
    page.wait_for_url("**/agents?msg=*")
    row = page.locator("table.stops tbody tr", has_text="tool:transfer_funds")
    assert "duplicate payments" in row.inner_text()
    assert "ana" in row.inner_text()
    assert _rule(full_world, session_id, "transfer_funds", pay) == "kill-switch"
    assert _rule(full_world, session_id, "read_account", {"account_id": "acc-1"}) == "reads"

    page.get_by_role("button", name="Log out").click()
    log_in("root")
    page.goto(f"{full_world.base_url}/agents")
    row = page.locator("table.stops tbody tr", has_text="tool:transfer_funds")
    row.get_by_label("Reason").fill("duplicates reversed")
    row.get_by_role("button", name="Resume tool:transfer_funds").click()
    page.wait_for_url("**/agents?msg=*")
    assert "Nothing is stopped." in page.locator("table.stops").inner_text()
    assert _rule(full_world, session_id, "transfer_funds", pay) != "kill-switch"
