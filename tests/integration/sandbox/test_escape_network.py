"""Without an egress grant a job has no network: not loopback, not DNS, not vsock."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clearance.sandbox import JobResult

pytestmark = pytest.mark.sandbox

RunPy = Callable[..., JobResult]
Report = Callable[[JobResult], dict[str, Any]]


@pytest.fixture
def tcp_bait() -> Iterator[tuple[int, list[str]]]:
    """A TCP server on 127.0.0.1 that records every connection it accepts."""
    accepted: list[str] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            accepted.append(str(peer))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def test_tcp_to_a_gate_service_on_loopback_is_refused(
    run_py: RunPy, report: Report, tcp_bait: tuple[int, list[str]]
) -> None:
    port, accepted = tcp_bait
    code = f"""
import json, socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    print(json.dumps({{"connected": True}}))
except OSError as exc:
    print(json.dumps({{"error": exc.strerror}}))
"""
    assert "connected" not in report(run_py(code))
    assert accepted == []


def test_dns_does_not_resolve_or_leave(run_py: RunPy, report: Report) -> None:
    bait = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bait.bind(("127.0.0.1", 0))
    bait.settimeout(0.5)
    port = bait.getsockname()[1]
    code = f"""
import json, socket
out = {{}}
try:
    out["resolved"] = socket.getaddrinfo("clearance-escape.example", 80)[0][4][0]
except OSError as exc:
    out["resolve_error"] = str(exc)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"query", ("127.0.0.1", {port}))
    s.settimeout(1)
    out["answer"] = s.recv(100).decode()
except OSError as exc:
    out["udp_error"] = str(exc)
print(json.dumps(out))
"""
    outcome = report(run_py(code))
    with pytest.raises(TimeoutError):
        bait.recvfrom(100)
    bait.close()
    assert "resolved" not in outcome
    assert "answer" not in outcome


def test_vsock_socket_cannot_be_created(run_py: RunPy, report: Report) -> None:
    code = """
import json, socket
try:
    socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    print(json.dumps({"created": True}))
except OSError as exc:
    print(json.dumps({"errno": exc.errno}))
"""
    assert report(run_py(code)) == {"errno": errno.EAFNOSUPPORT}
