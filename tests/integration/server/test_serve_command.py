"""``clearance serve`` as a process: how it runs uvicorn matters to what the gate records.

The peer address an agent key's source alert names must come from the socket. A local caller that
writes ``X-Forwarded-For`` (uvicorn trusts it from 127.0.0.1 by default) must not be able to make
a stolen key look as if it were used from somewhere else, nor hide where it was used from.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
from tests.reliability.kit import PYTHON, init_data_dir

from clearance.gate.clock import SystemClock
from clearance.server.identity import IdentityService
from clearance.store import open_store
from clearance.store.identity_sql import identity_store


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"`clearance serve` exited with {proc.returncode}"
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("`clearance serve` did not start")


def test_a_forwarded_for_header_does_not_name_the_key_source(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    init_data_dir(data_dir)
    store = open_store(f"sqlite:///{data_dir / 'clearance.db'}")
    try:
        identity = IdentityService(identity_store(store), SystemClock())
        identity.register_agent("fin-bot", environment="staging", description="t", created_by="t")
        minted = identity.create_agent_key("fin-bot", created_by="t")
    finally:
        store.close()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [PYTHON, "-m", "clearance", "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_up(base, proc)
        answer = httpx.post(
            f"{base}/v1/decide",
            headers={
                "Authorization": f"Bearer {minted.secret}",
                "X-Forwarded-For": "203.0.113.9",
                "Forwarded": "for=203.0.113.9",
            },
            json={"session_id": "ses_none", "tool": "get_balance"},
            timeout=30,
        )
        assert answer.status_code == 403, answer.text  # decided (no such session), so observed
        assert "server" not in answer.headers  # nothing said about what serves it
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    store = open_store(f"sqlite:///{data_dir / 'clearance.db'}")
    try:
        new, known = identity_store(store).note_key_source(
            minted.key_id, "address", "127.0.0.1", agent_id="fin-bot", at="2026-11-23T00:00:00Z"
        )
    finally:
        store.close()
    assert not new, "the socket's address was not recorded as the key's source"
    assert known == [], f"a header named the key's source: {known}"
