"""Egress through the per-job proxy, from inside a real sandbox, against loopback upstreams.

``allowed.test`` and ``internal.test`` are pinned by the proxy's resolver hook (never real DNS):
``allowed.test`` to the test's own server on 127.0.0.1 (loopback explicitly allowed for these
tests), ``internal.test`` to a private 10.x address that nothing may reach.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from clearance.sandbox import EgressPolicy, Job, JobResult, Sandbox, SandboxLimits

pytestmark = pytest.mark.sandbox

Report = Callable[[JobResult], dict[str, Any]]
HOSTS = {"allowed.test": ["127.0.0.1"], "internal.test": ["10.0.0.5"]}


def pinned_resolver(host: str, port: int) -> Sequence[str]:
    if host not in HOSTS:
        raise OSError(f"{host} is not in the test hosts mapping")
    return HOSTS[host]


class Upstream:
    """A loopback HTTP server that records the Host header of every request it serves."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        seen = self.hosts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.headers.get("Host", ""))
                body = b"upstream says hi"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def egress_sandbox(sandbox: Sandbox) -> Sandbox:
    return Sandbox(sandbox.backend, resolver=pinned_resolver)  # type: ignore[arg-type]


def run_with_egress(
    box: Sandbox, upstream: Upstream, code: str, events: list[dict[str, Any]] | None = None
) -> JobResult:
    policy = EgressPolicy(
        allow=("allowed.test", "internal.test"),
        ports=(upstream.port,),
        allow_private=("127.0.0.0/8",),
    )
    hook = events.append if events is not None else None
    return box.run(
        Job(kind="python", code=code), SandboxLimits(wall_seconds=15), policy, on_connection=hook
    )


FETCH = """
import json, urllib.error, urllib.request
def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return [response.status, response.read().decode()]
    except urllib.error.HTTPError as exc:
        return [exc.code, exc.headers.get("X-Proxy-Error")]
"""


def test_allowlisted_host_is_reached_and_audited(
    egress_sandbox: Sandbox, upstream: Upstream, report: Report
) -> None:
    events: list[dict[str, Any]] = []
    code = FETCH + f'print(json.dumps(fetch("http://allowed.test:{upstream.port}/")))'
    assert report(run_with_egress(egress_sandbox, upstream, code, events)) == [
        200,
        "upstream says hi",
    ]
    assert upstream.hosts == [f"allowed.test:{upstream.port}"]
    opened = [e for e in events if e["event"] == "egress.open"]
    closed = [e for e in events if e["event"] == "egress.close"]
    assert [(e["host"], e["allowed"]) for e in opened] == [("allowed.test", True)]
    assert closed[0]["bytes_out"] > 0
    assert closed[0]["bytes_in"] > 0


def test_non_allowlisted_host_is_refused_before_dns(
    egress_sandbox: Sandbox, upstream: Upstream, report: Report
) -> None:
    events: list[dict[str, Any]] = []
    code = FETCH + f'print(json.dumps(fetch("http://denied.test:{upstream.port}/")))'
    assert report(run_with_egress(egress_sandbox, upstream, code, events)) == [
        403,
        "blocked-by-allowlist",
    ]
    assert upstream.hosts == []
    assert [e.get("reason") for e in events] == ["blocked-by-allowlist"]


def test_allowlisted_name_resolving_to_a_private_address_is_refused(
    egress_sandbox: Sandbox, upstream: Upstream, report: Report
) -> None:
    code = FETCH + f'print(json.dumps(fetch("http://internal.test:{upstream.port}/")))'
    assert report(run_with_egress(egress_sandbox, upstream, code)) == [403, "private-address"]


def test_smuggled_host_header_is_refused(
    egress_sandbox: Sandbox, upstream: Upstream, report: Report
) -> None:
    code = f"""
import json, socket
s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
s.sendall(b"GET http://allowed.test:{upstream.port}/ HTTP/1.1\\r\\nHost: denied.test\\r\\n\\r\\n")
print(json.dumps(s.recv(200).decode().split("\\r\\n")[:2]))
"""
    status, header = report(run_with_egress(egress_sandbox, upstream, code))
    assert status.startswith("HTTP/1.1 403")
    assert header == "X-Proxy-Error: host-mismatch"
    assert upstream.hosts == []


def test_connect_tunnel_to_an_allowlisted_host_works(
    egress_sandbox: Sandbox, upstream: Upstream, report: Report
) -> None:
    code = f"""
import json, socket
s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
s.sendall(b"CONNECT allowed.test:{upstream.port} HTTP/1.1\\r\\n\\r\\n")
established = s.recv(100).decode().split("\\r\\n")[0]
s.sendall(b"GET / HTTP/1.1\\r\\nHost: allowed.test\\r\\nConnection: close\\r\\n\\r\\n")
reply = b""
while chunk := s.recv(4096):
    reply += chunk
print(json.dumps([established, reply.decode().split("\\r\\n")[0]]))
"""
    assert report(run_with_egress(egress_sandbox, upstream, code)) == [
        "HTTP/1.1 200 Connection established",
        "HTTP/1.0 200 OK",
    ]


def test_direct_connection_bypassing_the_proxy_fails(
    egress_sandbox: Sandbox, upstream: Upstream, report: Report
) -> None:
    code = f"""
import json, socket
try:
    socket.create_connection(("127.0.0.1", {upstream.port}), timeout=2)
    print(json.dumps("connected"))
except OSError as exc:
    print(json.dumps(exc.strerror))
"""
    assert report(run_with_egress(egress_sandbox, upstream, code)) != "connected"
    assert upstream.hosts == []
