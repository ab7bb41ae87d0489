"""Break-glass over the operator API: open, use, list, close; who may, and who may not.

The policy's grant names `gus` only, for `delete_records` and `transfer_funds` at the write-broad
and destructive tiers, for at most an hour. `hal` holds the break-glass role but no grant; `ana`
is an approver without the role.
"""

from __future__ import annotations

import logging

import pytest

from clearance.cli.runtime import Runtime
from clearance.gate.clock import FixedClock

from .conftest import World  # noqa: TID252 - sibling fixture module

OPEN = {
    "reason": "INC-88: cleanup job blocked by the never-delete rule",
    "minutes": 30,
    "tool": "delete_records",
    "tiers": ["destructive"],
}


def _delete(world: World, session_id: str) -> dict[str, object]:
    with world.agent() as client:
        response = client.post(
            "/v1/decide",
            json={"session_id": session_id, "tool": "delete_records", "args": {"table": "tmp"}},
        )
    body: dict[str, object] = response.json()
    body["status"] = response.status_code
    return body


def test_named_operator_opens_an_override_that_permits_and_is_audited(
    brokered_world: World, brokered_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="clearance.alerts")
    session_id = brokered_world.open_session(task="cleanup")
    assert _delete(brokered_world, session_id)["status"] == 403

    gus, csrf = brokered_world.operator("gus")
    opened = gus.post("/v1/ops/break-glass", json=OPEN, headers={"X-CSRF-Token": csrf})
    assert opened.status_code == 201, opened.text
    override = opened.json()
    assert override["operator_id"] == "gus"
    assert override["expires_at"] == "2026-03-01T12:30:00.000000Z"
    assert override["signature"]
    assert any("break-glass opened" in r.getMessage() for r in caplog.records)

    used = _delete(brokered_world, session_id)
    assert used["status"] == 200
    assert used["outcome"] == "PERMIT"
    assert used["rule"] == f"break-glass:{override['override_id']}"
    assert any("break-glass used" in r.getMessage() for r in caplog.records)

    listed = gus.get("/v1/ops/break-glass").json()
    assert [(o["override_id"], o["uses"]) for o in listed] == [(override["override_id"], 1)]

    closed = gus.post(
        f"/v1/ops/break-glass/{override['override_id']}/close",
        json={},
        headers={"X-CSRF-Token": csrf},
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["closed_by"] == "gus"
    assert _delete(brokered_world, session_id)["status"] == 403
    assert gus.get("/v1/ops/break-glass").json() == []
    history = gus.get("/v1/ops/break-glass", params={"include_closed": "true"}).json()
    assert [o["override_id"] for o in history] == [override["override_id"]]

    brokered_runtime.audit_log.checkpoint_now()
    shard = b"".join(p.read_bytes() for p in brokered_runtime.data_dir.glob("audit.db*"))
    assert shard.count(b'"kind":"breakglass"') >= 3  # opened, used, closed


def test_override_ends_at_its_deadline(brokered_world: World, clock: FixedClock) -> None:
    session_id = brokered_world.open_session(task="cleanup")
    gus, csrf = brokered_world.operator("gus")
    opened = gus.post(
        "/v1/ops/break-glass", json={**OPEN, "minutes": 5}, headers={"X-CSRF-Token": csrf}
    )
    assert opened.status_code == 201
    assert _delete(brokered_world, session_id)["status"] == 200
    clock.advance(5 * 60 + 1)
    assert _delete(brokered_world, session_id)["status"] == 403


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"minutes": 120}, "exceeds the allowed"),
        ({"tool": "read_account", "tiers": ["read-only"]}, "may not break glass"),
        ({"tool": "*"}, "may not break glass"),
    ],
)
def test_scope_or_duration_outside_the_grant_is_refused(
    brokered_world: World, change: dict[str, object], message: str
) -> None:
    gus, csrf = brokered_world.operator("gus")
    response = gus.post(
        "/v1/ops/break-glass", json={**OPEN, **change}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 403
    assert message in response.json()["message"]
    assert gus.get("/v1/ops/break-glass").json() == []


def test_operator_not_named_by_the_policy_is_refused(brokered_world: World) -> None:
    hal, csrf = brokered_world.operator("hal")
    response = hal.post("/v1/ops/break-glass", json=OPEN, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 403
    assert "may not break glass" in response.json()["message"]


def test_approver_without_the_role_is_refused(brokered_world: World) -> None:
    ana, csrf = brokered_world.operator("ana")
    response = ana.post("/v1/ops/break-glass", json=OPEN, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 403
    assert "break-glass" in response.json()["message"]


def test_agent_key_is_refused_and_nothing_opens(brokered_world: World) -> None:
    session_id = brokered_world.open_session(task="cleanup")
    with brokered_world.agent() as client:
        response = client.post("/v1/ops/break-glass", json=OPEN)
    assert response.status_code == 403
    assert response.json()["message"] == "API keys cannot call operator routes"
    assert _delete(brokered_world, session_id)["status"] == 403


def test_missing_csrf_token_is_refused(brokered_world: World) -> None:
    gus, _ = brokered_world.operator("gus")
    response = gus.post("/v1/ops/break-glass", json=OPEN)
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"


def test_override_never_lifts_an_emergency_stop(brokered_world: World) -> None:
    session_id = brokered_world.open_session(task="cleanup")
    gus, csrf = brokered_world.operator("gus")
    assert (
        gus.post("/v1/ops/break-glass", json=OPEN, headers={"X-CSRF-Token": csrf}).status_code
        == 201
    )
    ana, ana_csrf = brokered_world.operator("ana")
    halted = ana.post(
        "/v1/ops/control/kill-switch",
        json={"engaged": True, "agent_id": "payments-bot", "reason": "runaway deletes"},
        headers={"X-CSRF-Token": ana_csrf},
    )
    assert halted.status_code == 200
    stopped = _delete(brokered_world, session_id)
    assert stopped["status"] == 403
    assert stopped["rule"] == "kill-switch"
