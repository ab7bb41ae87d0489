"""Malformed bodies get a 4xx ``{code, message, hint}``: never a 500, never a decision."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import World  # noqa: TID252 - sibling fixture module


def assert_error(response, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "hint"}
    assert body["code"] == code
    assert "outcome" not in body


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b'{"session_id": "s", "tool": }', b"\xff\xfe", b'{"a": NaN'],
)
def test_malformed_json_is_400(world: World, raw: bytes) -> None:
    with world.agent() as client:
        response = client.post(
            "/v1/decide", content=raw, headers={"Content-Type": "application/json"}
        )
    assert_error(response, 400, "malformed_json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_is_415(world: World, content_type: str) -> None:
    with world.agent() as client:
        response = client.post(
            "/v1/decide",
            content=b'{"session_id": "s", "tool": "read_account"}',
            headers={"Content-Type": content_type},
        )
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"session_id": "s", "tool": "t", "surprise": 1}, "surprise"),
        ({"session_id": "s", "tool": 5}, "tool"),
        ({"session_id": "s", "tool": "t", "args": [1, 2]}, "args"),
        ({"session_id": "s", "tool": "t", "args": "x"}, "args"),
        ({"tool": "t"}, "session_id"),
        ({"session_id": "s", "tool": ""}, "tool"),
        ({"session_id": "s", "tool": "t" * 300}, "tool"),
    ],
)
def test_unknown_fields_and_wrong_types_are_422(world: World, body: dict, field: str) -> None:
    with world.agent() as client:
        response = client.post("/v1/decide", json=body)
    assert_error(response, 422, "invalid_request")
    assert field in response.json()["message"]


@pytest.mark.parametrize("body", [[], "text", 5, None])
def test_a_body_that_is_not_an_object_is_422(world: World, body: object) -> None:
    with world.agent() as client:
        response = client.post("/v1/decide", json=body)
    assert_error(response, 422, "invalid_request")


def test_declared_huge_body_is_413_before_parsing(world: World) -> None:
    session_id = world.open_session()
    big = {"session_id": session_id, "tool": "read_account", "args": {"blob": "x" * 70_000}}
    with world.agent() as client:
        response = client.post("/v1/decide", json=big)
    assert_error(response, 413, "body_too_large")


def test_streamed_huge_body_without_length_is_413(world: World) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"session_id": "s", "tool": "read_account", "args": {"blob": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}}'

    with world.agent() as client:
        response = client.post(
            "/v1/decide", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert_error(response, 413, "body_too_large")


def test_lying_content_length_is_refused(world: World) -> None:
    # Declares a tiny body and sends a large one: the server must not read past the limit.
    parts = urlsplit(world.base_url)
    payload = b'{"session_id":"s","tool":"read_account","args":{"b":"' + b"x" * 100_000 + b'"}}'
    request = (
        b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {world.agent_key}\r\n".encode()
        + b"Content-Length: not-a-number\r\nConnection: close\r\n\r\n"
        + payload
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(request)
        reply = sock.recv(4096)
    status = int(reply.split(b" ", 2)[1])
    assert 400 <= status < 500


def test_unknown_route_and_method_are_json_errors(world: World) -> None:
    with world.agent() as client:
        assert_error(client.get("/v1/nope"), 404, "not_found")
        assert_error(client.get("/v1/decide"), 405, "method_not_allowed")


def test_every_response_carries_security_headers(world: World) -> None:
    with world.agent() as client:
        response = client.get("/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


# The decide routes parse their own bodies: numbers the request digest cannot carry get the
# precise 422 naming the field, and an integer beyond 64 bits is never decided as a rounded float.
@pytest.mark.parametrize(
    "raw",
    [
        b'{"session_id": "s", "tool": "read_account", "args": {"amount": NaN}}',
        b'{"session_id": "s", "tool": "read_account", "args": {"amount": -Infinity}}',
        b'{"session_id": "s", "tool": "read_account", "args": {"amount": 123456789012345678901}}',
        b'{"session_id": "s", "tool": "read_account", "args": {"body": "a\\ud800b"}}',
        b'{"session_id": "s", "tool": "read_account", "args": {"\\udfff": "x"}}',
        b'{"session_id": "s", "tool": "read_account", "args": {"l": [{"t": "\\ud83d"}]}}',
    ],
)
def test_non_canonical_numbers_in_args_are_422_naming_args(world: World, raw: bytes) -> None:
    with world.agent() as client:
        response = client.post(
            "/v1/decide", content=raw, headers={"Content-Type": "application/json"}
        )
    assert_error(response, 422, "invalid_request")
    assert "args" in response.json()["message"]


@pytest.mark.parametrize("raw", [b"null", b"", b"   "])
def test_an_empty_or_null_body_is_refused(world: World, raw: bytes) -> None:
    with world.agent() as client:
        response = client.post(
            "/v1/decide", content=raw, headers={"Content-Type": "application/json"}
        )
    assert response.status_code in (400, 422), response.text
    assert set(response.json()) == {"code", "message", "hint"}


def test_an_agent_id_in_the_body_is_refused_even_when_it_names_the_caller(world: World) -> None:
    # The caller's own id is refused too: the body never carries identity, whatever it says.
    session_id = world.open_session()
    body = {"session_id": session_id, "tool": "read_account", "agent_id": "payments-bot"}
    with world.agent() as client:
        response = client.post("/v1/decide", json=body)
    assert_error(response, 422, "invalid_request")
    assert "agent_id" in response.json()["message"]


def test_redeem_without_a_token_is_422_and_decides_nothing(world: World) -> None:
    session_id = world.open_session()
    body = {"session_id": session_id, "tool": "read_account", "args": {"account_id": "acc-1"}}
    with world.agent() as client:
        response = client.post("/v1/tokens/redeem", json=body)
    assert_error(response, 422, "invalid_request")
    assert "approval_token" in response.json()["message"]
    decided = world.gate.store.recent_decisions(limit=1000, agent_id="payments-bot")
    assert all(record.request.get("session_id") != session_id for record in decided)


def test_a_malformed_body_without_a_key_is_401_and_not_parsed(world: World) -> None:
    with httpx.Client(base_url=world.base_url, timeout=10) as client:
        response = client.post(
            "/v1/decide", content=b"{", headers={"Content-Type": "application/json"}
        )
    assert_error(response, 401, "unauthenticated")


def test_the_openapi_document_names_the_decide_bodies(world: World) -> None:
    with httpx.Client(base_url=world.base_url, timeout=10) as client:
        document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for path, model in (
        ("/v1/decide", "DecideRequestV1"),
        ("/v1/tokens/redeem", "RedeemRequestV1"),
    ):
        body = document["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{model}"
        }
        assert schemas[model]["additionalProperties"] is False
        assert "agent_id" not in schemas[model]["properties"]
    assert schemas["RedeemRequestV1"]["required"] == ["session_id", "tool", "approval_token"]
