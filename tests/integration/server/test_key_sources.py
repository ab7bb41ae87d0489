"""Identity anomalies over real HTTP: an agent key used from a new address or client alerts."""

from __future__ import annotations

import httpx
from tests.integration.server.conftest import World
from tests.integration.server.test_agent_api import read_call

from clearance.cli.runtime import Runtime
from clearance.control.alerts import Alert, CallbackSink
from clearance.store.identity_sql import identity_store


def _decide(
    world: World, session_id: str, *, source: str, client: str, forwarded: str | None = None
) -> None:
    transport = httpx.HTTPTransport(local_address=source)
    headers = {"Authorization": f"Bearer {world.agent_key}", "User-Agent": client}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    with httpx.Client(
        base_url=world.base_url, transport=transport, headers=headers, timeout=10
    ) as http:
        response = http.post("/v1/decide", json=read_call(session_id))
    assert response.status_code == 200, response.text


def test_a_key_used_from_a_new_address_or_client_alerts(
    full_world: World, runtime: Runtime
) -> None:
    alerts: list[Alert] = []
    runtime.control.alerts.sinks = (CallbackSink(alerts.append),)
    session_id = full_world.open_session()
    _decide(full_world, session_id, source="127.0.0.1", client="agent-sdk/1.0")
    _decide(full_world, session_id, source="127.0.0.1", client="agent-sdk/1.0")
    runtime.control.alerts.flush()
    assert alerts == []  # the key's first address and client are its baseline

    _decide(full_world, session_id, source="127.0.0.2", client="agent-sdk/1.0")  # stolen key
    _decide(full_world, session_id, source="127.0.0.1", client="curl/8.5.0")
    _decide(full_world, session_id, source="127.0.0.2", client="curl/8.5.0")  # nothing newer
    runtime.control.alerts.flush()
    texts = sorted(a.text for a in alerts)
    assert len(texts) == 2, texts
    assert any("new address `127.0.0.2` (known: 127.0.0.1)" in t for t in texts)
    assert any("new client `curl/8.5.0` (known: agent-sdk/1.0)" in t for t in texts)
    assert all("payments-bot" in t for t in texts)


def test_a_forwarded_for_header_neither_hides_nor_invents_an_address(
    full_world: World, runtime: Runtime
) -> None:
    """A caller on the machine cannot choose the address the gate sees by writing a header."""
    alerts: list[Alert] = []
    runtime.control.alerts.sinks = (CallbackSink(alerts.append),)
    session_id = full_world.open_session()
    _decide(full_world, session_id, source="127.0.0.1", client="agent-sdk/1.0")
    _decide(
        full_world, session_id, source="127.0.0.1", client="agent-sdk/1.0", forwarded="10.9.9.9"
    )
    _decide(
        full_world, session_id, source="127.0.0.2", client="agent-sdk/1.0", forwarded="127.0.0.1"
    )
    runtime.control.alerts.flush()
    texts = [a.text for a in alerts]
    assert len(texts) == 1, texts
    assert "new address `127.0.0.2`" in texts[0]
    assert not any("10.9.9.9" in t for t in texts)


def test_known_sources_survive_a_restart(full_world: World, runtime: Runtime) -> None:
    """The sources live in the store: another replica (or a restart) does not re-alert."""
    session_id = full_world.open_session()
    _decide(full_world, session_id, source="127.0.0.1", client="agent-sdk/1.0")
    _decide(full_world, session_id, source="127.0.0.3", client="agent-sdk/1.0")
    store = identity_store(runtime.store)
    (key,) = store.list_keys(agent_id="payments-bot")
    new, known = store.note_key_source(
        key.key_id, "address", "127.0.0.3", agent_id="payments-bot", at="2026-11-23T00:00:00+00:00"
    )
    assert not new
    assert known == ["127.0.0.1"]
