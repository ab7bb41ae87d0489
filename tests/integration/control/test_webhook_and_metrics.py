"""A real webhook receiver on 127.0.0.1, and the Prometheus exposition of a real gate."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.control_kit import ADMIN, Rig, rig_fixture  # noqa: F401

from clearance.control.alerts import Alert, AlertRouter, Severity, WebhookSink
from clearance.control.scope import Scope
from clearance.model.decision import Outcome

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.bodies: list[dict[str, object]] = []
        self.status = 200
        self.delay = 0.0
        self.got = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.delay:
            threading.Event().wait(self.server.delay)
        self.server.bodies.append(json.loads(body))
        self.send_response(self.server.status)
        self.end_headers()
        self.server.got.set()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_halt_alert_reaches_the_webhook(rig: Rig, receiver: Receiver) -> None:
    rig.plane.killswitch.alerts = AlertRouter([WebhookSink(receiver.url)])
    rig.plane.killswitch.halt(
        Scope.agent("bot"), operator=ADMIN, reason="loop", now=rig.clock.now()
    )
    assert rig.plane.killswitch.alerts.flush(5)
    (body,) = receiver.bodies
    assert str(body["text"]).startswith("[CRITICAL] agent:bot halted")
    assert "alice" in str(body["text"])


def test_slow_or_failing_webhook_never_delays_a_decision(rig: Rig, receiver: Receiver) -> None:
    receiver.delay = 1.5
    receiver.status = 500
    router = AlertRouter([WebhookSink(receiver.url, timeout_s=0.5)])
    rig.plane.killswitch.alerts = router
    rig.plane.killswitch.halt(
        Scope.agent("bot"), operator=ADMIN, reason="loop", now=rig.clock.now()
    )
    s = rig.session()
    d = rig.call(s)  # decided while the sink is still stuck on the first alert
    assert (d.outcome, d.rule) == (Outcome.DENY, "kill-switch")
    assert not receiver.got.is_set()  # the halt and the decision finished before delivery did
    assert router.flush(5)
    assert router.stats.failed == {"webhook": 1}


def test_webhook_sink_raises_on_error_status(receiver: Receiver) -> None:
    receiver.status = 500
    sink = WebhookSink(receiver.url, timeout_s=2)
    with pytest.raises(OSError):
        sink.deliver(Alert(key="k", severity=Severity.INFO, title="t", text="x", at=T0))


def test_metrics_expose_decisions_latency_stops_and_policy(rig: Rig) -> None:
    s = rig.session()
    rig.call(s, "search")
    rig.plane.killswitch.trip("bot", "rate-spike", "test", rig.clock.now())
    rig.call(s, "search")
    assert rig.plane.metrics is not None
    text = rig.plane.metrics.render().decode()
    assert (
        'clearance_decisions_total{agent="bot",outcome="PERMIT",rule="reads",tool="search"} 1.0'
        in text
    )
    assert 'outcome="DENY",rule="breaker:rate-spike"' in text
    assert "clearance_decision_latency_seconds_count 2.0" in text
    assert 'clearance_breaker_tripped{agent="bot",breaker="rate-spike"} 1.0' in text
    assert (
        'clearance_killswitch_stops{level="breaker",rule="breaker:rate-spike",scope="agent:bot"} 1.0'
        in text
    )
    assert f'clearance_policy_info{{digest="{rig.gate.bundle.digest}"}} 1.0' in text  # type: ignore[union-attr]
    assert "clearance_control_store_up 1.0" in text
