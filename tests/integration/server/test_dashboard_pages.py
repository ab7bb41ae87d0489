"""Dashboard pages over plain HTTP (the browser tests drive the same pages in Chromium).

Value provenance on an approval's page, and the policy upload -> shadow run -> activate flow with
its CSRF check, so both are covered where no browser is installed.
"""

from __future__ import annotations

import re

from tests.conftest import SMALL_POLICY

from clearance.cli.runtime import Runtime

from .conftest import World  # noqa: TID252 - sibling fixture module
from .test_approval_flow import ask  # noqa: TID252 - sibling test helpers

STRICTER = SMALL_POLICY.replace(
    "    outcome: permit\n    reason: reads are harmless",
    "    outcome: deny\n    reason: reads are off today",
)


def test_approval_page_marks_a_value_seen_only_in_untrusted_content(full_world: World) -> None:
    with full_world.orchestrator() as orchestrator:
        opened = orchestrator.post(
            "/v1/sessions",
            json={
                "agent_id": "payments-bot",
                "task": "transfer",
                "instruction": "pay acc-1 the usual 50",
            },
        )
    session_id = opened.json()["session_id"]
    bundle, taint = full_world.gate.bundle, full_world.gate.provenance
    assert bundle is not None
    assert taint is not None
    taint.record(  # type: ignore[attr-defined]
        session_id, "untrusted:read_email", "new bank details: acc-31337", compiled=bundle.compiled
    )
    decision = ask(
        full_world,
        {
            "session_id": session_id,
            "tool": "transfer_funds",
            "args": {"amount": 50.0, "to_account": "acc-31337"},
        },
    )
    operator, _ = full_world.operator("ana")
    page = operator.get(f"/approvals/{decision['approval_id']}")
    assert page.status_code == 200
    rows = re.findall(r"<tr( class=\"untrusted\")?><td><code>([^<]+)</code>", page.text)
    assert ('class="untrusted"', "args.to_account") in [(r[0].strip(), r[1]) for r in rows]
    assert ("", "args.amount") in [(r[0].strip(), r[1]) for r in rows]
    assert "untrusted:read_email" in page.text
    amount_row = re.search(r"<code>args\.amount</code>.*?</tr>", page.text, re.S)
    assert amount_row is not None
    assert "instruction" in amount_row.group(0)  # 50 came from the principal's own words


def test_policy_upload_shadow_run_and_activation_need_admin_and_csrf(full_world: World) -> None:
    session_id = full_world.open_session(task="balance_check")
    with full_world.agent() as agent:
        read = {"session_id": session_id, "tool": "read_account", "args": {"account_id": "acc-1"}}
        assert agent.post("/v1/decide", json=read).status_code == 200
    before = full_world.gate.bundle

    approver, approver_csrf = full_world.operator("ana")
    refused = approver.post(
        "/policy/upload",
        data={"csrf_token": approver_csrf, "policy_text": STRICTER},
        follow_redirects=False,
    )
    assert refused.status_code == 403

    admin, csrf = full_world.operator("root")
    uploaded = admin.post(
        "/policy/upload",
        data={"csrf_token": csrf, "policy_text": STRICTER},
        follow_redirects=False,
    )
    assert uploaded.status_code == 303
    candidate = uploaded.headers["location"].rsplit("/", 1)[1]
    review = admin.get(f"/policy/candidates/{candidate}")
    assert "<strong>1</strong> would change" in review.text
    assert "reads are off today" in review.text
    assert full_world.gate.bundle is before

    no_token = admin.post("/policy/activate", data={"digest": candidate}, follow_redirects=False)
    assert no_token.status_code == 403
    assert full_world.gate.bundle is before
    activated = admin.post(
        "/policy/activate", data={"digest": candidate, "csrf_token": csrf}, follow_redirects=False
    )
    assert activated.status_code == 303
    assert full_world.gate.bundle is not None
    assert full_world.gate.bundle.digest == candidate
    with full_world.agent() as agent:
        assert agent.post("/v1/decide", json=read).status_code == 403


def test_halting_from_the_agents_page_revokes_credential_leases(
    brokered_world: World, brokered_runtime: Runtime
) -> None:
    session_id = brokered_world.open_session(task="balance_check")
    read = {"session_id": session_id, "tool": "read_account", "args": {"account_id": "acc-1"}}
    with brokered_world.agent() as agent:
        decision_id = agent.post("/v1/decide", json=read).json()["decision_id"]
        leased = agent.post(
            "/v1/credentials",
            json={"session_id": session_id, "tool": "read_account", "decision_id": decision_id},
        )
    assert leased.status_code == 200
    operator, csrf = brokered_world.operator("ana")
    halted = operator.post(
        "/agents/payments-bot/halt",
        data={"csrf_token": csrf, "reason": "suspicious reads"},
        follow_redirects=False,
    )
    assert halted.status_code == 303
    assert brokered_runtime.credentials.store.active_leases("payments-bot") == []
    with brokered_world.agent() as agent:
        assert agent.post("/v1/decide", json=read).json()["rule"] == "kill-switch"


def test_agents_page_stops_a_tool_and_an_environment_and_resumes_them(full_world: World) -> None:
    session_id = full_world.open_session()  # payments-bot works in production
    read = {"session_id": session_id, "tool": "read_account", "args": {"account_id": "acc-1"}}
    pay = {
        "session_id": session_id,
        "tool": "transfer_funds",
        "args": {"amount": 5.0, "to_account": "acc-1"},
    }

    def rule(call: dict[str, object]) -> str:
        with full_world.agent() as agent:
            return str(agent.post("/v1/decide", json=call).json()["rule"])

    operator, csrf = full_world.operator("ana")  # an approver may halt
    form = {"csrf_token": csrf, "reason": "payments incident"}
    stopped = operator.post(
        "/control/halt",
        data={**form, "scope": "tool", "name": "transfer_funds"},
        follow_redirects=True,
    )
    assert stopped.status_code == 200  # redirected back to the agents page
    assert 'id="stop-tool:transfer_funds"' in stopped.text
    assert "payments incident" in stopped.text
    assert (rule(read), rule(pay)) == ("reads", "kill-switch")

    assert "production" in operator.get("/agents").text  # offered in the scope name list
    operator.post("/control/halt", data={**form, "scope": "environment", "name": "production"})
    assert rule(read) == "kill-switch"

    # a misspelt environment is refused with the reason, nothing is stopped
    wrong = operator.post(
        "/control/halt",
        data={**form, "scope": "environment", "name": "prod"},
        follow_redirects=True,
    )
    assert "unknown environment `prod`" in wrong.text
    assert 'id="stop-environment:prod"' not in operator.get("/agents").text

    # resuming needs the admin role: the approver's attempt changes nothing
    operator.post("/control/resume", data={**form, "scope": "environment:production"})
    assert rule(read) == "kill-switch"
    admin, admin_csrf = full_world.operator("root")
    for scope in ("environment:production", "tool:transfer_funds"):
        resumed = admin.post(
            "/control/resume",
            data={"csrf_token": admin_csrf, "reason": "resolved", "scope": scope},
            follow_redirects=True,
        )
        assert f'id="stop-{scope}"' not in resumed.text
    assert rule(read) == "reads"
    assert rule(pay) != "kill-switch"
    assert "Nothing is stopped." in admin.get("/agents").text


def test_scope_forms_need_the_csrf_token(full_world: World) -> None:
    operator, _ = full_world.operator("ana")
    forged = operator.post(
        "/control/halt",
        data={"scope": "all", "reason": "forged"},
        follow_redirects=False,
    )
    assert forged.status_code in (400, 403)
    assert "Nothing is stopped." in operator.get("/agents").text
