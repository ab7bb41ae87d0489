"""The agent API over real HTTP: statuses follow outcomes, identity comes from the key."""

from __future__ import annotations

from .conftest import World  # noqa: TID252 - sibling fixture module


def read_call(session_id: str, **extra: object) -> dict[str, object]:
    return {
        "session_id": session_id,
        "tool": "read_account",
        "args": {"account_id": "acc-1"},
        **extra,
    }


def test_permit_is_200_with_the_decision(world: World) -> None:
    session_id = world.open_session()
    with world.agent() as client:
        response = client.post("/v1/decide", json=read_call(session_id))
    assert response.status_code == 200
    body = response.json()
    assert body["outcome"] == "PERMIT"
    assert body["rule"] == "reads"
    assert body["decision_id"]


def test_deny_is_403_with_the_decision_body(world: World) -> None:
    session_id = world.open_session()
    with world.agent() as client:
        response = client.post(
            "/v1/decide",
            json={"session_id": session_id, "tool": "delete_records", "args": {"table": "t"}},
        )
    assert response.status_code == 403
    assert response.json()["outcome"] == "DENY"


def test_silence_is_503(world: World) -> None:
    # Production transfers need approval, and this gate has no approval service: SILENCE.
    session_id = world.open_session()
    with world.agent() as client:
        response = client.post(
            "/v1/decide",
            json={
                "session_id": session_id,
                "tool": "transfer_funds",
                "args": {"amount": 5.0, "to_account": "acc-9"},
            },
        )
    assert response.status_code == 503
    assert response.json()["outcome"] == "SILENCE"


def test_agent_id_in_the_body_is_refused_not_ignored(world: World) -> None:
    session_id = world.open_session()
    with world.agent(world.staging_agent_key) as client:
        response = client.post("/v1/decide", json=read_call(session_id, agent_id="payments-bot"))
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert "agent_id" in response.json()["message"]


def test_another_agents_session_is_denied(world: World) -> None:
    session_id = world.open_session()  # a payments-bot session
    with world.agent(world.staging_agent_key) as client:
        response = client.post("/v1/decide", json=read_call(session_id))
    assert response.status_code == 403
    assert response.json()["rule"] == "session"


def test_a_key_works_only_in_its_environment(world: World) -> None:
    session = world.gate.open_session(
        agent_id="staging-bot", task="balance_check", environment="production"
    )
    with world.agent(world.staging_agent_key) as client:
        response = client.post("/v1/decide", json=read_call(session.session_id))
    assert response.status_code == 403
    assert response.json()["rule"] == "key-scope"


def test_missing_unknown_and_revoked_keys_are_401(world: World) -> None:
    session_id = world.open_session()
    with world.agent("clr_agent_" + "A" * 43) as client:
        assert client.post("/v1/decide", json=read_call(session_id)).status_code == 401
    with httpx_client(world) as client:
        response = client.post("/v1/decide", json=read_call(session_id))
        assert response.status_code == 401
        assert response.json()["code"] == "unauthenticated"
    minted = world.identity.create_agent_key("payments-bot", created_by="test")
    with world.agent(minted.secret) as client:
        assert client.post("/v1/decide", json=read_call(session_id)).status_code == 200
        world.identity.revoke_key(minted.key_id)
        assert client.post("/v1/decide", json=read_call(session_id)).status_code == 401


def test_orchestrator_key_cannot_decide_and_agent_key_cannot_open_sessions(world: World) -> None:
    session_id = world.open_session()
    with world.orchestrator() as client:
        response = client.post("/v1/decide", json=read_call(session_id))
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
    with world.agent() as client:
        response = client.post(
            "/v1/sessions", json={"agent_id": "payments-bot", "task": "transfer"}
        )
        assert response.status_code == 403


def test_orchestrator_cannot_open_sessions_outside_its_environment(world: World) -> None:
    with world.orchestrator() as client:
        other_env = client.post(
            "/v1/sessions",
            json={"agent_id": "payments-bot", "task": "transfer", "environment": "staging"},
        )
        other_agent = client.post("/v1/sessions", json={"agent_id": "staging-bot", "task": "x"})
        unknown = client.post("/v1/sessions", json={"agent_id": "ghost", "task": "x"})
    assert other_env.status_code == 403
    assert other_agent.status_code == 403
    assert unknown.status_code == 404


def test_closed_session_denies(world: World) -> None:
    session_id = world.open_session()
    with world.orchestrator() as client:
        assert client.delete(f"/v1/sessions/{session_id}").status_code == 204
    with world.agent() as client:
        response = client.post("/v1/decide", json=read_call(session_id))
    assert response.status_code == 403
    assert "closed" in response.json()["reason"]


def test_report_and_fetch_own_decision_only(world: World) -> None:
    session_id = world.open_session()
    with world.agent() as client:
        decision_id = client.post("/v1/decide", json=read_call(session_id)).json()["decision_id"]
        reported = client.post(
            "/v1/results", json={"decision_id": decision_id, "success": True, "output_size": 12}
        )
        fetched = client.get(f"/v1/decisions/{decision_id}")
    assert reported.status_code == 202
    assert fetched.status_code == 200
    assert fetched.json()["decision_id"] == decision_id
    with world.agent(world.staging_agent_key) as other:
        assert other.get(f"/v1/decisions/{decision_id}").status_code == 404
        stolen = other.post("/v1/results", json={"decision_id": decision_id, "success": False})
        assert stolen.status_code >= 400


def test_parts_not_configured_answer_501(world: World) -> None:
    session_id = world.open_session()
    with world.agent() as client:
        decision_id = client.post("/v1/decide", json=read_call(session_id)).json()["decision_id"]
        credential = client.post(
            "/v1/credentials",
            json={"session_id": session_id, "tool": "read_account", "decision_id": decision_id},
        )
        proof = client.get(f"/v1/receipts/{decision_id}")
    assert credential.status_code == 501
    assert credential.json()["code"] == "not_available"
    assert proof.status_code == 501


def test_redeem_requires_a_token_and_an_invalid_one_is_denied(world: World) -> None:
    session_id = world.open_session()
    with world.agent() as client:
        missing = client.post("/v1/tokens/redeem", json=read_call(session_id))
        forged = client.post(
            "/v1/tokens/redeem", json=read_call(session_id, approval_token="clt1_" + "x" * 43)
        )
    assert missing.status_code == 422
    assert forged.status_code == 403
    assert forged.json()["outcome"] == "DENY"


def httpx_client(world: World):  # type: ignore[no-untyped-def]
    import httpx

    return httpx.Client(base_url=world.base_url, timeout=10)
