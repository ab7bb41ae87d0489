"""The per-job egress proxy: the only way out of a sandbox, and only to allowlisted names.

A job's network namespace has no route anywhere. When a decision grants egress, the runner starts
one :class:`EgressProxy` for that job on a unix socket in the job directory (mode 0600, owned by
the job's uid) and bind-mounts it into the sandbox, where a bridge exposes it as
``HTTP(S)_PROXY=http://127.0.0.1:3128``. Every decision is made here, on the gate side:

1. the requested name is normalized and checked against the allowlist **before any DNS lookup**
   (resolving first would itself leak data through DNS);
2. the port must be allowed (80 and 443 by default);
3. the proxy resolves the name itself; if *any* address is private, loopback, link-local,
   multicast or reserved and not inside ``allow_private``, the connection is refused (SSRF to
   metadata services, DNS rebinding);
4. it connects to the address it checked, never to the name again;
5. for plain HTTP, the ``Host`` header must name the host of the absolute URL (no header
   smuggling); ``CONNECT`` is refused when a ``Host`` header names another host;
6. bytes sent out are capped per job, and the number of connections is capped.

``on_connection`` is called with an ``egress.open`` event before connecting (if it raises, the
connection is refused: audit or refuse) and an ``egress.close`` event with byte counts.

What it cannot do: it controls the destination, not what is said to it. Inside a CONNECT tunnel
the bytes are TLS it cannot read, and an allowed host that serves many tenants (a CDN, a code
host) is a path out for anything. See ``docs/sandbox.md``.

::

    policy = EgressPolicy(allow=("pypi.org", "*.pythonhosted.org"))
    with EgressProxy(policy, job_dir / "egress.sock", on_connection=audit) as proxy:
        ...  # bind proxy.socket_path into the sandbox
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import selectors
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

Resolver = Callable[[str, int], Sequence[str]]
ConnectionHook = Callable[[dict[str, Any]], None]

_NAME = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
_MAX_HEAD = 16 * 1024
_MAX_NAME = 253
_HEAD_TIMEOUT = 10.0
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "upgrade",
}


class EgressRefused(Exception):  # noqa: N818 - a refusal is an outcome, not a programming error
    """A connection the policy does not allow; ``reason`` is a stable, short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def normalize_host(host: str) -> str:
    """Lowercase, strip one trailing dot and brackets; refuse anything that is not a DNS name or
    a canonical IP literal (percent-encoding, userinfo, empty labels, unicode, ``127.000.0.1``)."""
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    h = h.lower().removesuffix(".")
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(h))
    # an all-digit last label is no DNS name: some resolvers would read it as an IPv4 address
    if len(h) > _MAX_NAME or not _NAME.match(h) or h.rsplit(".", 1)[-1].isdigit():
        raise EgressRefused("bad-host", repr(host))
    return h


class EgressPolicy(BaseModel):
    """Where one job may connect. Comes from the decision's obligations, never from the job.

    ``allow`` holds exact names (``api.example.com``), subdomain wildcards (``*.example.com``,
    which does not match ``example.com`` itself) or IP literals. ``allow_private`` lists networks
    (CIDR) that allowlisted names may resolve into; by default none.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow: tuple[str, ...]
    ports: tuple[int, ...] = (80, 443)
    allow_private: tuple[str, ...] = ()
    max_bytes_out: int = Field(default=10 * 1024 * 1024, ge=0)
    max_connections: int = Field(default=64, ge=1)
    idle_seconds: float = Field(default=60.0, gt=0)
    connect_seconds: float = Field(default=10.0, gt=0)

    @field_validator("allow")
    @classmethod
    def _normalize_allow(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for entry in entries:
            wildcard = entry.startswith("*.")
            try:
                name = normalize_host(entry[2:] if wildcard else entry)
            except EgressRefused as exc:
                raise ValueError(f"allow entry {entry!r} is not a host name or IP literal") from exc
            out.append(f"*.{name}" if wildcard else name)
        return tuple(out)

    @field_validator("allow_private")
    @classmethod
    def _valid_networks(cls, nets: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(ipaddress.ip_network(n, strict=False)) for n in nets)

    def allows_name(self, host: str) -> bool:
        """Whether a normalized host is on the allowlist (no DNS involved)."""
        for entry in self.allow:
            if entry.startswith("*."):
                if host.endswith(entry[1:]):
                    return True
            elif host == entry:
                return True
        return False

    def check_address(self, address: str) -> None:
        """Refuse an address outside the public internet unless ``allow_private`` covers it."""
        ip = ipaddress.ip_address(address)
        if ip.is_global and not ip.is_multicast:
            return
        if any(ip in ipaddress.ip_network(n) for n in self.allow_private):
            return
        raise EgressRefused("private-address", address)


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the gate host's resolver; the sandbox itself has none."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class _Head:
    """A parsed request head: request line, headers and any body bytes already read."""

    def __init__(self, raw: bytes) -> None:
        head, _, self.rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise EgressRefused("bad-request", lines[0][:100])
        self.method, self.target, self.version = parts
        self.headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise EgressRefused("bad-request", "malformed header line")
            self.headers.append((name, value.strip()))

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    host, port = authority, default_port
    match = re.fullmatch(r"(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?", authority)
    if not match:
        raise EgressRefused("bad-request", f"authority {authority[:100]!r}")
    host = match.group(1)
    if match.group(2):
        port = int(match.group(2))
    return normalize_host(host), port


class EgressProxy:
    """An HTTP proxy (CONNECT and absolute-URI requests) for one job, on a unix socket."""

    def __init__(
        self,
        policy: EgressPolicy,
        socket_path: Path,
        *,
        job_id: str = "",
        resolver: Resolver = system_resolver,
        on_connection: ConnectionHook | None = None,
        owner_uid: int | None = None,
    ) -> None:
        self.policy = policy
        self.socket_path = socket_path
        self.job_id = job_id
        self._resolver = resolver
        self._hook = on_connection
        self._owner_uid = owner_uid
        self._lock = threading.Lock()
        self._bytes_out = 0
        self._connections = 0
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def bytes_out(self) -> int:
        """Bytes sent to upstreams so far, over all connections of the job."""
        return self._bytes_out

    def start(self) -> EgressProxy:
        """Create the socket (0600, owned by the job uid) and start accepting."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        if self._owner_uid is not None:
            os.chown(self.socket_path, self._owner_uid, self._owner_uid)
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept_loop, name="egress-proxy", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting and cut every open connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for s in list(self._open):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=2)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def __enter__(self) -> EgressProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while (listener := self._listener) is not None:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    # ------------------------------------------------------------------ one connection

    def _handle(self, client: socket.socket) -> None:
        with self._lock:
            self._open.add(client)
            self._connections += 1
            over_limit = self._connections > self.policy.max_connections
        try:
            self._serve(client, over_limit=over_limit)
        finally:
            with self._lock:
                self._open.discard(client)
            client.close()

    def _serve(self, client: socket.socket, *, over_limit: bool) -> None:
        event: dict[str, Any] = {"event": "egress.open", "job_id": self.job_id}
        try:
            head = self._read_head(client)
            event["method"] = head.method
            if over_limit:
                raise EgressRefused("too-many-connections")
            host, port, first_bytes = self._route(head)
            event.update(host=host, port=port)
            address = self._decide(host, port)
            event.update(address=address, allowed=True)
            self._emit(event)
        except EgressRefused as refusal:
            event.update(allowed=False, reason=refusal.reason, detail=refusal.detail)
            self._emit(event, final=True)
            _refuse(client, refusal.reason)
            return
        event["event"] = "egress.close"
        try:
            upstream = socket.create_connection((address, port), self.policy.connect_seconds)
        except OSError as exc:
            event.update(error=f"connect: {type(exc).__name__}", bytes_out=0, bytes_in=0)
            self._emit(event, final=True)
            _refuse(client, "upstream-unreachable", status=b"502 Bad Gateway")
            return
        with self._lock:
            self._open.add(upstream)
        counts = [0, 0]
        try:
            if head.method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._relay(client, upstream, first_bytes, counts)
        except OSError as exc:
            event["error"] = f"relay: {type(exc).__name__}"
        finally:
            with self._lock:
                self._open.discard(upstream)
            upstream.close()
            event.update(bytes_out=counts[0], bytes_in=counts[1])
            self._emit(event, final=True)

    def _emit(self, event: dict[str, Any], *, final: bool = False) -> None:
        if self._hook is None:
            return
        try:
            self._hook(dict(event))
        except Exception as exc:  # the hook is the audit write: no entry, no connection
            if not final:
                raise EgressRefused("audit-failed", type(exc).__name__) from exc

    def _read_head(self, client: socket.socket) -> _Head:
        client.settimeout(_HEAD_TIMEOUT)
        buf = b""
        while b"\r\n\r\n" not in buf:
            try:
                chunk = client.recv(4096)
            except OSError as exc:
                raise EgressRefused("bad-request", f"reading the request head: {exc}") from exc
            if not chunk:
                raise EgressRefused("bad-request", "connection closed before the request head")
            buf += chunk
            if len(buf) > _MAX_HEAD:
                raise EgressRefused("bad-request", "request head too large")
        client.settimeout(None)
        return _Head(buf)

    def _route(self, head: _Head) -> tuple[str, int, bytes]:
        """Return the destination and the bytes to send first; refuse smuggled hosts."""
        hosts = head.values("host")
        if len(hosts) > 1:
            raise EgressRefused("host-mismatch", "several Host headers")
        if head.method == "CONNECT":
            host, port = _split_authority(head.target, 443)
            if hosts and _split_authority(hosts[0], port) != (host, port):
                raise EgressRefused("host-mismatch", f"{hosts[0]!r} vs {head.target!r}")
            return host, port, head.rest
        url = urlsplit(head.target)
        if url.scheme != "http" or not url.netloc or "@" in url.netloc:
            raise EgressRefused("bad-request", "need an absolute http:// URL or CONNECT")
        host, port = _split_authority(url.netloc, 80)
        if not hosts or _split_authority(hosts[0], 80) != (host, port):
            raise EgressRefused("host-mismatch", f"Host {hosts[:1]!r} vs URL {url.netloc!r}")
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        lines = [f"{head.method} {path} {head.version}"]
        lines += [f"{k}: {v}" for k, v in head.headers if k.lower() not in _HOP_BY_HOP]
        lines.append("Connection: close")
        return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + head.rest

    def _decide(self, host: str, port: int) -> str:
        """The allowlist, then the port, then DNS, then the address check; returns the address."""
        if not self.policy.allows_name(host):
            raise EgressRefused("blocked-by-allowlist", host)
        if port not in self.policy.ports:
            raise EgressRefused("port-not-allowed", str(port))
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        try:
            addresses = [str(literal)] if literal else list(self._resolver(host, port))
        except OSError as exc:
            raise EgressRefused("resolve-failed", host) from exc
        if not addresses:
            raise EgressRefused("resolve-failed", host)
        for address in addresses:
            self.policy.check_address(address)
        return addresses[0]

    def _take_budget(self, n: int) -> bool:
        with self._lock:
            if self._bytes_out + n > self.policy.max_bytes_out:
                self._bytes_out = self.policy.max_bytes_out
                return False
            self._bytes_out += n
            return True

    def _relay(
        self, client: socket.socket, upstream: socket.socket, first: bytes, counts: list[int]
    ) -> None:
        """Copy both ways until both sides close, the job idles too long or the byte cap hits.

        ``counts`` is updated in place (bytes out, bytes in) so a failure still reports them.
        """
        if first:
            if not self._take_budget(len(first)):
                return
            upstream.sendall(first)
            counts[0] += len(first)
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ)
            sel.register(upstream, selectors.EVENT_READ)
            while sel.get_map():
                ready = sel.select(self.policy.idle_seconds)
                if not ready:
                    return
                for key, _ in ready:
                    src = peer[peer[key.fileobj]]  # type: ignore[index]
                    chunk = src.recv(65536)
                    if not chunk:
                        sel.unregister(src)
                        with contextlib.suppress(OSError):
                            peer[src].shutdown(socket.SHUT_WR)
                        continue
                    if src is client:
                        if not self._take_budget(len(chunk)):
                            return
                        counts[0] += len(chunk)
                    else:
                        counts[1] += len(chunk)
                    peer[src].sendall(chunk)


def _refuse(client: socket.socket, reason: str, status: bytes = b"403 Forbidden") -> None:
    body = reason.encode() + b"\n"
    response = (
        b"HTTP/1.1 " + status + b"\r\nX-Proxy-Error: " + reason.encode()
        + b"\r\nContent-Type: text/plain\r\nContent-Length: " + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n" + body
    )  # fmt: skip
    with contextlib.suppress(OSError):
        client.sendall(response)
