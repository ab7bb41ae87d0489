"""Alerts: deduplicated, rate-limited, and delivered off the decision path.

An incident must not become ten thousand messages, and a broken alert sink must never slow or
change a decision. So ``AlertRouter.send`` only decides, under a lock and in constant time, whether
an alert goes out (deduplication by key, then a token bucket shared by all keys) and hands it to a
bounded queue; one background thread delivers to the sinks, each with its own failure count::

    router = AlertRouter([LogSink(), WebhookSink("https://hooks.slack.com/services/...")])
    router.send(Alert(key="halt:agent:bot", severity=Severity.CRITICAL, title="agent halted",
                      text="agent:bot halted by alice", at=clock.now()))
    router.flush(timeout=2.0)

What was suppressed is never lost silently: the next alert with the same key says how many
repeats were folded into it, and the next alert after a rate-limited stretch says how many were
dropped.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from urllib.parse import urlsplit

from clearance.errors import ConfigError

log = logging.getLogger("clearance.control.alerts")


class Severity(StrEnum):
    """How urgent an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert; alerts with the same ``key`` are duplicates of each other."""

    key: str
    severity: Severity
    title: str
    text: str
    at: datetime
    fields: Mapping[str, str] = field(default_factory=dict)

    def line(self) -> str:
        """One line for logs and chat: ``[CRITICAL] title: text``."""
        return f"[{self.severity.value.upper()}] {self.title}: {self.text}"


class AlertSink(Protocol):
    """Somewhere alerts go. ``deliver`` may raise; the router counts and logs the failure."""

    name: str

    def deliver(self, alert: Alert) -> None:
        """Send one alert."""
        ...


class LogSink:
    """Alerts as log records (warning or error level by severity)."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("clearance.alerts")

    def deliver(self, alert: Alert) -> None:
        """Write the alert line to the log."""
        level = logging.ERROR if alert.severity is Severity.CRITICAL else logging.WARNING
        self._log.log(level, "%s", alert.line(), extra={"alert_key": alert.key})


class WebhookSink:
    """Slack-compatible incoming webhook: a JSON body with ``text`` and one ``blocks`` section."""

    name = "webhook"

    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ConfigError(
                f"the alert webhook `{url}` is not an http(s) URL",
                hint="use the incoming-webhook URL your chat service gave you",
            )
        if timeout_s <= 0:
            raise ConfigError("the webhook timeout must be positive")
        self.url = url
        self.timeout_s = timeout_s

    @staticmethod
    def body(alert: Alert) -> dict[str, object]:
        """The JSON document posted for ``alert``."""
        details = "".join(f"\n*{k}*: {v}" for k, v in sorted(alert.fields.items()))
        return {
            "text": alert.line(),
            "blocks": [
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"*{alert.line()}*{details}"},
                }
            ],
        }

    def deliver(self, alert: Alert) -> None:
        """POST the alert; raises on a non-2xx answer or a timeout."""
        data = json.dumps(self.body(alert)).encode()
        req = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s) above
            self.url, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
            status = int(resp.status)
        if not 200 <= status < 300:  # pragma: no cover - urlopen raises for most of these
            raise OSError(f"webhook answered {status}")


class CallbackSink:
    """Alerts handed to a Python callable (pager clients, tests, the dashboard feed)."""

    def __init__(self, callback: Callable[[Alert], None], *, name: str = "callback") -> None:
        self._callback = callback
        self.name = name

    def deliver(self, alert: Alert) -> None:
        """Call the callback with the alert."""
        self._callback(alert)


@dataclass(slots=True)
class AlertStats:
    """Counters of the router, by what happened to each alert."""

    accepted: int = 0
    suppressed: int = 0
    dropped: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)


class AlertRouter:
    """Fans alerts out to sinks on a background thread, deduplicated and rate-limited.

    * **dedup**: an alert whose key was accepted less than ``dedup_s`` ago is suppressed;
    * **rate limit**: a token bucket of ``burst`` alerts refilled at ``per_minute`` per minute;
    * **queue**: at most ``queue_size`` alerts wait for delivery; beyond that they are dropped.

    ``send`` never raises and never blocks on a sink.
    """

    def __init__(
        self,
        sinks: Sequence[AlertSink],
        *,
        dedup_s: float = 300.0,
        burst: int = 20,
        per_minute: float = 10.0,
        queue_size: int = 1000,
    ) -> None:
        if burst < 1 or per_minute <= 0 or dedup_s < 0 or queue_size < 1:
            raise ConfigError("alert limits must be positive (burst, per_minute, queue_size)")
        self.sinks: tuple[AlertSink, ...] = tuple(sinks)
        self.stats = AlertStats()
        self._dedup_s = dedup_s
        self._burst = float(burst)
        self._refill_per_s = per_minute / 60.0
        self._tokens = float(burst)
        self._last_refill: float | None = None
        self._last_sent: dict[str, float] = {}
        self._repeats: dict[str, int] = {}
        self._dropped_since = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=queue_size)
        self._worker: threading.Thread | None = None

    @property
    def configured(self) -> bool:
        """True when at least one sink is configured."""
        return bool(self.sinks)

    def send(self, alert: Alert) -> bool:
        """Queue ``alert`` unless it is a duplicate or over the rate limit; True when queued."""
        with self._lock:
            outgoing = self._admit(alert)
            if outgoing is None:
                return False
            try:
                self._queue.put_nowait(outgoing)
            except queue.Full:
                self.stats.dropped += 1
                self._dropped_since += 1
                return False
            self.stats.accepted += 1
            self._start()
        return True

    def _admit(self, alert: Alert) -> Alert | None:
        t = alert.at.timestamp()
        last = self._last_sent.get(alert.key)
        if last is not None and 0 <= t - last < self._dedup_s:
            self.stats.suppressed += 1
            self._repeats[alert.key] = self._repeats.get(alert.key, 0) + 1
            return None
        if self._last_refill is not None:
            elapsed = max(t - self._last_refill, 0.0)
            self._tokens = min(self._burst, self._tokens + elapsed * self._refill_per_s)
        self._last_refill = t
        if self._tokens < 1:
            self.stats.dropped += 1
            self._dropped_since += 1
            return None
        self._tokens -= 1
        self._last_sent[alert.key] = t
        notes = []
        repeats = self._repeats.pop(alert.key, 0)
        if repeats:
            notes.append(f"{repeats} repeats of this alert were suppressed")
        if self._dropped_since:
            notes.append(f"{self._dropped_since} alerts were dropped by the rate limit")
            self._dropped_since = 0
        if notes:
            return replace(alert, text=f"{alert.text} ({'; '.join(notes)})")
        return alert

    def _start(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run, name="clearance-alerts", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            try:
                if alert is None:
                    return
                self._deliver(alert)
            finally:
                self._queue.task_done()

    def _deliver(self, alert: Alert) -> None:
        for sink in self.sinks:
            try:
                sink.deliver(alert)
            except Exception as exc:  # noqa: BLE001 - a failing sink must never stop the others
                with self._lock:
                    self.stats.failed[sink.name] = self.stats.failed.get(sink.name, 0) + 1
                log.warning("alert sink %s failed for %s: %s", sink.name, alert.key, exc)
            else:
                with self._lock:
                    self.stats.delivered[sink.name] = self.stats.delivered.get(sink.name, 0) + 1

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued alert was handed to the sinks; False on timeout."""
        done = threading.Event()

        def _wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=_wait, daemon=True).start()
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then stop the worker thread."""
        with self._lock:
            worker = self._worker
        if worker is None:
            return
        self.flush(timeout)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            return
        worker.join(timeout)


_SETTINGS_NS = "control"
_SETTINGS_KEY = "alert-sinks"


class KeyValueStore(Protocol):
    """The store's small-document interface (``Store.kv_get``/``kv_put``)."""

    def kv_get(self, namespace: str, key: str) -> dict[str, object] | None:
        """A small JSON document, or None."""
        ...

    def kv_put(self, namespace: str, key: str, value: dict[str, object], at: str) -> None:
        """Insert or replace a small JSON document."""
        ...


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The alert sinks configured for every process that shares the store (gate, CLI, drills)."""

    log: bool = False
    webhooks: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        """True when at least one sink is configured."""
        return self.log or bool(self.webhooks)

    def sinks(self) -> list[AlertSink]:
        """The configured sinks (webhook URLs are validated here)."""
        out: list[AlertSink] = [WebhookSink(url) for url in self.webhooks]
        if self.log:
            out.append(LogSink())
        return out

    @classmethod
    def load(cls, store: KeyValueStore) -> AlertSettings:
        """The stored settings, or none configured."""
        doc = store.kv_get(_SETTINGS_NS, _SETTINGS_KEY) or {}
        hooks = doc.get("webhooks", [])
        return cls(
            log=bool(doc.get("log", False)),
            webhooks=tuple(str(u) for u in hooks) if isinstance(hooks, list) else (),
        )

    def save(self, store: KeyValueStore, at: str) -> None:
        """Store the settings (after validating every webhook URL)."""
        self.sinks()
        store.kv_put(
            _SETTINGS_NS, _SETTINGS_KEY, {"log": self.log, "webhooks": list(self.webhooks)}, at
        )
