"""Alert routing: dedup, rate limit, queue bound, and sinks that fail or hang never block."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from clearance.control.alerts import (
    Alert,
    AlertRouter,
    AlertSettings,
    CallbackSink,
    Severity,
    WebhookSink,
)
from clearance.errors import ConfigError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def alert(key: str = "k", at: datetime = T0, text: str = "t") -> Alert:
    return Alert(key=key, severity=Severity.WARNING, title="title", text=text, at=at)


def test_duplicates_within_window_are_suppressed_then_counted() -> None:
    got: list[Alert] = []
    router = AlertRouter([CallbackSink(got.append)], dedup_s=60)
    assert router.send(alert())
    for i in range(5):
        assert not router.send(alert(at=T0 + timedelta(seconds=i + 1)))
    assert router.send(alert(at=T0 + timedelta(seconds=61)))
    assert router.flush(5)
    assert len(got) == 2
    assert "5 repeats" in got[1].text
    assert router.stats.suppressed == 5


def test_rate_limit_caps_an_incident_and_reports_the_drop() -> None:
    got: list[Alert] = []
    router = AlertRouter([CallbackSink(got.append)], burst=3, per_minute=1)
    sent = [router.send(alert(key=f"k{i}")) for i in range(100)]
    assert sent.count(True) == 3
    assert router.stats.dropped == 97
    assert router.send(alert(key="later", at=T0 + timedelta(minutes=1)))
    assert router.flush(5)
    assert len(got) == 4
    assert "97 alerts were dropped" in got[-1].text


def test_failing_sink_is_counted_and_others_still_deliver() -> None:
    got: list[Alert] = []

    def boom(a: Alert) -> None:
        raise RuntimeError("pager down")

    router = AlertRouter([CallbackSink(boom, name="pager"), CallbackSink(got.append)])
    assert router.send(alert())
    assert router.flush(5)
    assert len(got) == 1
    assert router.stats.failed == {"pager": 1}
    assert router.stats.delivered == {"callback": 1}


def test_hung_sink_never_blocks_send() -> None:
    release = threading.Event()
    router = AlertRouter([CallbackSink(lambda a: release.wait(10) and None)], queue_size=2)
    try:
        results = [router.send(alert(key=f"k{i}")) for i in range(10)]
        # one in the hung sink, two queued, the rest dropped - and no call waited
        assert results.count(True) <= 3
        assert router.stats.dropped >= 7
    finally:
        release.set()
        router.close()


def test_webhook_body_is_slack_compatible() -> None:
    body = WebhookSink.body(
        Alert(
            key="k",
            severity=Severity.CRITICAL,
            title="agent:bot halted",
            text="by alice",
            at=T0,
            fields={"scope": "agent:bot"},
        )
    )
    assert body["text"] == "[CRITICAL] agent:bot halted: by alice"
    (block,) = body["blocks"]  # type: ignore[misc]
    assert block["type"] == "section"
    assert "*scope*: agent:bot" in block["text"]["text"]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://x/y", "not a url"])
def test_webhook_refuses_non_http_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        WebhookSink(url)


def test_settings_round_trip_through_store_documents() -> None:
    class KV:
        def __init__(self) -> None:
            self.docs: dict[tuple[str, str], dict[str, object]] = {}

        def kv_get(self, ns: str, key: str) -> dict[str, object] | None:
            return self.docs.get((ns, key))

        def kv_put(self, ns: str, key: str, value: dict[str, object], at: str) -> None:
            self.docs[(ns, key)] = value

    kv = KV()
    assert not AlertSettings.load(kv).configured
    AlertSettings(log=True, webhooks=("https://hooks.example/x",)).save(kv, "now")
    loaded = AlertSettings.load(kv)
    assert loaded.configured
    assert loaded.webhooks == ("https://hooks.example/x",)
    assert [s.name for s in loaded.sinks()] == ["webhook", "log"]
    with pytest.raises(ConfigError):
        AlertSettings(webhooks=("gopher://x",)).save(kv, "now")
