"""Run the service on a background thread of the current process.

For embedding the sidecar next to an agent in one process, and for tests that need real HTTP on
loopback against an app whose gate they also hold::

    with serve_in_background(create_app(services, settings)) as base_url:
        httpx.post(f"{base_url}/v1/decide", ...)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from clearance.errors import ConfigError

_START_TIMEOUT_S = 10.0
_POLL_S = 0.01


def uvicorn_options(host: str, port: int) -> dict[str, Any]:
    """How the service runs uvicorn, in ``clearance serve`` and embedded alike.

    uvloop and httptools, one worker, no access log (refusals are logged and counted by the
    service itself), and no proxy headers: the peer address that login rate limits and a key's
    source alert use comes from the socket, never from an ``X-Forwarded-For`` a local caller
    wrote. ``bench/sidecar.py`` measures exactly this configuration.
    """
    return {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "log_level": "warning",
        "lifespan": "off",
    }


@contextmanager
def serve_in_background(app: FastAPI, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on ``host:port`` (0: a free port) and yield its base URL."""
    config = uvicorn.Config(app, **uvicorn_options(host, port))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="clearance-http", daemon=True)
    thread.start()
    pause = threading.Event()
    for _ in range(int(_START_TIMEOUT_S / _POLL_S)):
        if server.started or not thread.is_alive():
            break
        pause.wait(_POLL_S)
    if not server.started:
        server.should_exit = True
        raise ConfigError(f"the service did not start on {host}:{port}")
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(_START_TIMEOUT_S)
