"""Attack: an agent (or orchestrator) key calls operator routes, alone or beside a stolen cookie.

Every operator route (``/v1/ops/...`` and every dashboard page or form) must answer 403 for any
request carrying an API key, whatever else it carries, and the refusal must be counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from tests.integration.server.conftest import (  # noqa: F401 - shared fixtures
    PASSWORD,
    World,
    compose_and_serve,
    runtime,
    settings,
)

from clearance.cli.runtime import Runtime
from clearance.server.settings import ServerSettings


@pytest.fixture
def world(runtime: Runtime, settings: ServerSettings) -> Iterator[World]:  # noqa: F811 - fixtures
    yield from compose_and_serve(runtime, settings)


OPEN_ROUTES = {"/login", "/static", "/healthz", "/readyz", "/metrics", "/openapi.json", "/"}


def operator_routes(world: World) -> list[tuple[str, str]]:
    """Every (method, path) the app serves to operators, with path parameters filled in."""
    with httpx.Client(base_url=world.base_url) as client:
        paths = client.get("/openapi.json").json()["paths"]
    routes = [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, methods in paths.items()
        if path.startswith("/v1/ops/") and path != "/v1/ops/login"
        for method in methods
    ]
    for page in ("/approvals", "/approvals/x", "/feed", "/feed/rows", "/charts", "/agents"):
        routes.append(("GET", page))
    for page in ("/policy", "/audit"):
        routes.append(("GET", page))
    for form in ("/approvals/x/approve", "/approvals/x/deny", "/approvals/batch", "/logout"):
        routes.append(("POST", form))
    routes.append(("POST", "/agents/payments-bot/halt"))
    return routes


def test_the_route_list_covers_the_operator_api(world: World) -> None:
    routes = operator_routes(world)
    assert ("POST", "/v1/ops/approvals/x/approve") in routes
    assert ("POST", "/v1/ops/control/kill-switch") in routes
    assert ("POST", "/v1/ops/policy/activate") in routes
    assert len(routes) > 30


@pytest.mark.parametrize("which", ["agent", "orchestrator"])
def test_api_keys_get_403_on_every_operator_route(world: World, which: str) -> None:
    key = world.agent_key if which == "agent" else world.orchestrator_key
    with world.agent(key) as client:
        for method, path in operator_routes(world):
            response = client.request(method, path, json={})
            assert response.status_code == 403, (method, path, response.text)


def test_an_api_key_beside_a_valid_operator_session_is_still_403(world: World) -> None:
    operator, csrf = world.operator("root")
    operator.headers["Authorization"] = f"Bearer {world.agent_key}"
    operator.headers["X-CSRF-Token"] = csrf
    for method, path in operator_routes(world):
        response = operator.request(method, path, json={})
        assert response.status_code == 403, (method, path, response.text)
    # The same session without the key works, so the 403 came from the key.
    del operator.headers["Authorization"]
    assert operator.get("/v1/ops/me").status_code == 200


def test_an_agent_key_cannot_log_in_or_approve(world: World) -> None:
    session_id = world.open_session()
    with world.agent() as client:
        asked = client.post(
            "/v1/decide",
            json={
                "session_id": session_id,
                "tool": "transfer_funds",
                "args": {"amount": 5000.0, "to_account": "acc-1"},
            },
        ).json()
        login = client.post("/v1/ops/login", json={"username": "ana", "password": "x" * 20})
        approve = client.post(f"/v1/ops/approvals/{asked['approval_id']}/approve", json={})
    assert login.status_code == 403
    assert approve.status_code == 403
    operator, _ = world.operator("ana")
    pending = operator.get("/v1/ops/approvals").json()
    assert [p["state"] for p in pending] == ["pending"]


def test_refusals_are_counted(world: World) -> None:
    with world.agent() as client:
        client.get("/v1/ops/approvals")
        metrics = client.get("/metrics").text
    assert 'clearance_http_refusals_total{reason="api-key-on-operator-route"} 1.0' in metrics
