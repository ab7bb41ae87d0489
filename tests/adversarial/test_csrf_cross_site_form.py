"""Attack: a page on another site submits forms with the operator's cookie (classic CSRF).

The browser would attach the session cookie (were it not SameSite=Strict); the form cannot know
the CSRF token. Every state-changing form and API write must be refused without it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.integration.server.conftest import (  # noqa: F401 - shared fixtures
    PASSWORD,
    World,
    compose_and_serve,
    runtime,
)
from tests.integration.server.test_approval_flow import ask, big_transfer, claim

from clearance.cli.runtime import Runtime
from clearance.server.settings import ServerSettings


@pytest.fixture
def world(runtime: Runtime, settings: ServerSettings) -> Iterator[World]:  # noqa: F811 - fixtures
    yield from compose_and_serve(runtime, settings)


@pytest.fixture
def settings() -> ServerSettings:
    return ServerSettings(tls=True)


def cookie_of(world: World) -> httpx.Client:
    """A client that sends root's session cookie, as a browser would on a cross-site request.

    httpx does not send Secure cookies over plain http, so the cookie is set as a header.
    """
    operator, _ = world.operator("root")
    cookie = operator.cookies["clearance_session"]
    return httpx.Client(
        base_url=world.base_url, headers={"Cookie": f"clearance_session={cookie}"}, timeout=10
    )


def test_session_cookie_is_httponly_strict_and_secure_under_tls(world: World) -> None:
    with httpx.Client(base_url=world.base_url) as client:
        response = client.post("/v1/ops/login", json={"username": "ana", "password": PASSWORD})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" in cookie


def test_cross_site_form_posts_without_token_are_refused(world: World) -> None:
    session_id = world.open_session()
    decision = ask(world, big_transfer(session_id))
    victim = cookie_of(world)
    approval = decision["approval_id"]
    attempts = [
        ("/approvals/batch", {"action": "approve", "approval_id": approval}),
        (f"/approvals/{approval}/approve", {}),
        ("/agents/payments-bot/halt", {"reason": "csrf"}),
        ("/logout", {}),
    ]
    for path, form in attempts:
        response = victim.post(path, data=form, headers={"Origin": "https://evil.example"})
        assert response.status_code == 403, (path, response.text)
        assert "csrf_failed" in response.text
    forged = victim.post(f"/approvals/{approval}/approve", data={"csrf_token": "guess"})
    assert forged.status_code == 403
    assert claim(world, decision, session_id)["state"] == "pending"
    assert victim.get("/v1/ops/me").status_code == 200  # still logged in: logout was refused too


def test_json_api_writes_need_the_header_token(world: World) -> None:
    victim = cookie_of(world)
    response = victim.post(
        "/v1/ops/control/kill-switch",
        json={"engaged": True, "reason": "csrf"},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"


def test_login_form_without_its_double_submit_cookie_is_refused(world: World) -> None:
    with httpx.Client(base_url=world.base_url) as client:
        response = client.post(
            "/login",
            data={"username": "ana", "password": PASSWORD, "csrf_token": "anything"},
        )
    assert response.status_code == 403
    assert "clearance_session" not in response.headers.get("set-cookie", "")
