"""``/metrics`` after decisions over HTTP: each decision counted once, with bounded labels."""

from __future__ import annotations

import httpx
from tests.integration.server.test_agent_api import read_call

from .conftest import World  # noqa: TID252 - sibling fixture module


def series(world: World, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric family in the Prometheus text ``/metrics`` serves."""
    text = httpx.get(f"{world.base_url}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) :].rsplit(" ", 1)
            found[labels] = float(value)
    return found


def test_decisions_are_counted_once_each_with_bounded_labels(world: World) -> None:
    session_id = world.open_session(task="balance_check")
    with world.agent() as client:
        for _ in range(3):
            assert client.post("/v1/decide", json=read_call(session_id)).status_code == 200
        # A tool outside the session's grants: DENY; a made-up tool name must not become a label.
        outside = {"session_id": session_id, "tool": "transfer_funds", "args": {}}
        assert client.post("/v1/decide", json=outside).status_code == 403
        made_up = {"session_id": session_id, "tool": "exfiltrate_everything_" + "x" * 40}
        assert client.post("/v1/decide", json=made_up).status_code in (403, 503)
        # Refused before deciding: not a decision, so not counted as one.
        assert client.post("/v1/decide", json={"tool": "read_account"}).status_code == 422

    decisions = series(world, "clearance_http_decisions_total")
    permits = [v for labels, v in decisions.items() if 'outcome="PERMIT"' in labels]
    assert permits == [3.0]
    assert sum(decisions.values()) == 5.0
    assert not any("exfiltrate" in labels for labels in decisions)
    assert any('tool="_unknown"' in labels for labels in decisions)
    durations = series(world, "clearance_http_decide_duration_seconds_count")
    assert sum(durations.values()) == 5.0
