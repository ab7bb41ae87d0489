"""The egress proxy on its own unix socket: decisions that need no sandbox to test.

Talking to the socket directly is what a job that skips the in-sandbox bridge would do, so these
cases also show that the bridge is not a control point.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from clearance.sandbox import EgressPolicy, EgressProxy

HOSTS = {"allowed.test": ["127.0.0.1"], "api.wild.test": ["127.0.0.1"]}


def resolver(host: str, port: int) -> Sequence[str]:
    return HOSTS.get(host, [])


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback TCP server that answers every connection with what it received, once."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(65536)
                conn.sendall(b"echo:" + data)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def ask(proxy: EgressProxy, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(proxy.socket_path))
        s.sendall(request)
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass  # the proxy cut the connection with our bytes still unread
        return reply


def make_proxy(tmp_path: Path, port: int, events: list[dict[str, Any]], **kw: Any) -> EgressProxy:
    policy = EgressPolicy(
        allow=("allowed.test", "*.wild.test", "127.0.0.1"),
        ports=(port,),
        allow_private=kw.pop("allow_private", ("127.0.0.0/8",)),
        **kw,
    )
    return EgressProxy(
        policy, tmp_path / "egress.sock", resolver=resolver, on_connection=events.append
    )


def test_wildcard_entry_matches_subdomains_only(tmp_path: Path, echo_port: int) -> None:
    events: list[dict[str, Any]] = []
    with make_proxy(tmp_path, echo_port, events) as proxy:
        sub = ask(proxy, f"CONNECT api.wild.test:{echo_port} HTTP/1.1\r\n\r\nping".encode())
        apex = ask(proxy, f"CONNECT wild.test:{echo_port} HTTP/1.1\r\n\r\n".encode())
    assert sub.startswith(b"HTTP/1.1 200")
    assert sub.endswith(b"echo:ping")
    assert b"blocked-by-allowlist" in apex


def test_loopback_needs_an_explicit_private_grant(tmp_path: Path, echo_port: int) -> None:
    events: list[dict[str, Any]] = []
    with make_proxy(tmp_path, echo_port, events, allow_private=()) as proxy:
        reply = ask(proxy, f"CONNECT allowed.test:{echo_port} HTTP/1.1\r\n\r\n".encode())
        literal = ask(proxy, f"CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\n\r\n".encode())
    assert b"X-Proxy-Error: private-address" in reply
    assert b"X-Proxy-Error: private-address" in literal


def test_port_outside_the_policy_is_refused(tmp_path: Path, echo_port: int) -> None:
    with make_proxy(tmp_path, echo_port, []) as proxy:
        reply = ask(proxy, b"CONNECT allowed.test:22 HTTP/1.1\r\n\r\n")
    assert b"X-Proxy-Error: port-not-allowed" in reply


def test_bytes_out_are_capped(tmp_path: Path, echo_port: int) -> None:
    events: list[dict[str, Any]] = []
    with make_proxy(tmp_path, echo_port, events, max_bytes_out=1000) as proxy:
        reply = ask(
            proxy, f"CONNECT allowed.test:{echo_port} HTTP/1.1\r\n\r\n".encode() + b"y" * 5000
        )
    assert reply == b"HTTP/1.1 200 Connection established\r\n\r\n"  # nothing was forwarded
    assert proxy.bytes_out <= 1000
    assert [e["bytes_out"] for e in events if e["event"] == "egress.close"] == [0]


def test_failing_audit_hook_refuses_the_connection(tmp_path: Path, echo_port: int) -> None:
    def broken_audit(event: dict[str, Any]) -> None:
        raise RuntimeError("audit store down")

    policy = EgressPolicy(
        allow=("allowed.test",), ports=(echo_port,), allow_private=("127.0.0.0/8",)
    )
    with EgressProxy(
        policy, tmp_path / "egress.sock", resolver=resolver, on_connection=broken_audit
    ) as proxy:
        reply = ask(proxy, f"CONNECT allowed.test:{echo_port} HTTP/1.1\r\n\r\nping".encode())
    assert b"X-Proxy-Error: audit-failed" in reply
    assert b"echo:" not in reply


@pytest.mark.parametrize(
    ("request_head", "reason"),
    [
        (b"GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", b"bad-request"),
        (
            b"GET http://evil.test@allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
            b"bad-request",
        ),
        (
            b"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nHost: x\r\n\r\n",
            b"host-mismatch",
        ),
        (b"CONNECT allowed.test:1 HTTP/1.1\r\nHost: other.test:1\r\n\r\n", b"host-mismatch"),
        (b"CONNECT allowed%2etest:1 HTTP/1.1\r\n\r\n", b"bad-host"),
    ],
)
def test_malformed_or_smuggling_requests_are_refused(
    tmp_path: Path, echo_port: int, request_head: bytes, reason: bytes
) -> None:
    with make_proxy(tmp_path, echo_port, []) as proxy:
        reply = ask(proxy, request_head)
    assert b"X-Proxy-Error: " + reason in reply
