"""The dashboard's review page over real HTTP: findings, fatigue, and a sign-off in the audit log."""

from __future__ import annotations

import json
import re

from clearance.cli.runtime import Runtime
from clearance.gate.clock import FixedClock

from .conftest import World  # noqa: TID252 - sibling fixture module
from .test_approval_flow import ask, big_transfer  # noqa: TID252


def _history(world: World, clock: FixedClock) -> None:
    session_id = world.open_session()
    with world.agent() as agent:
        read = agent.post(
            "/v1/decide",
            json={
                "session_id": session_id,
                "tool": "read_account",
                "args": {"account_id": "acc-1"},
            },
        )
        assert read.status_code == 200, read.text
    decision = ask(world, big_transfer(session_id))
    operator, csrf = world.operator("ana")
    voted = operator.post(
        f"/v1/ops/approvals/{decision['approval_id']}/approve",
        json={},
        headers={"X-CSRF-Token": csrf},
    )
    assert voted.status_code == 200, voted.text
    clock.advance(60)  # the review covers periods that end now


def _signed_off(runtime: Runtime) -> list[dict[str, object]]:
    runtime.audit_log.checkpoint_now()
    storage = runtime.audit_log.storage
    rows = storage.entries(runtime.audit_log.origin, 0, runtime.audit_log.size)
    return [
        json.loads(body)
        for _, _, header, _, body in rows
        if header and json.loads(header)["kind"] == "review.signed-off" and body
    ]


def test_the_review_page_shows_findings_and_fatigue_and_signs_off(
    full_world: World, runtime: Runtime, clock: FixedClock
) -> None:
    _history(full_world, clock)
    admin, csrf = full_world.operator("root")
    page = admin.get("/review", params={"days": 30})
    assert page.status_code == 200, page.text
    html = page.text
    assert "task `cleanup` / tool `delete_records`" in html  # granted, never asked for
    assert "rule `small-known-transfer`" in html  # never decided in the period
    assert "Suggested policy change" in html
    assert re.search(r"<th scope=\"row\">ana</th><td>1</td><td>100%</td>", html)
    digest = re.search(r'id="review-digest">(sha256:[0-9a-f]{64})<', html)
    assert digest is not None

    stale = admin.post(
        "/review/sign-off",
        data={"csrf_token": csrf, "days": "30", "digest": "sha256:" + "0" * 64},
        follow_redirects=False,
    )
    assert stale.status_code == 303
    assert "changed+since+you+opened+it" in stale.headers["location"]
    assert _signed_off(runtime) == []

    signed = admin.post(
        "/review/sign-off",
        data={"csrf_token": csrf, "days": "30", "digest": digest.group(1)},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    (entry,) = _signed_off(runtime)
    assert entry["report"] == digest.group(1)
    assert entry["operator"] == "root"


def test_only_an_admin_signs_off_and_a_form_needs_its_csrf_token(
    full_world: World, runtime: Runtime, clock: FixedClock
) -> None:
    _history(full_world, clock)
    viewer, csrf = full_world.operator("vic")
    assert viewer.get("/review").status_code == 200
    page = viewer.get("/review").text
    assert "Sign off this report" not in page
    digest = re.search(r'id="review-digest">(sha256:[0-9a-f]{64})<', page)
    assert digest is not None
    refused = viewer.post(
        "/review/sign-off",
        data={"csrf_token": csrf, "days": "90", "digest": digest.group(1)},
        follow_redirects=False,
    )
    assert refused.status_code == 403
    admin, _ = full_world.operator("root")
    forged = admin.post(
        "/review/sign-off", data={"days": "90", "digest": digest.group(1)}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert _signed_off(runtime) == []
