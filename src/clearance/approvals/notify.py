"""Telling humans that something needs them: pluggable notifiers.

A notification is a courtesy, not evidence and not authority: it is sent after the state change is
committed, a notifier that raises or hangs is logged and ignored, and nothing a notifier does can
approve, deny or extend a request. ``WebhookNotifier`` posts Slack-compatible JSON from a
background thread with a short timeout so a slow endpoint never delays a decision.

Example::

    notifier = WebhookNotifier("https://hooks.example.com/T000/B000/XXX")
    service = ApprovalService(store, key=key, audit=audit, notifiers=[LogNotifier(), notifier])
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from clearance.errors import ConfigError

log = logging.getLogger("clearance.approvals.notify")


@dataclass(frozen=True, slots=True)
class Notification:
    """What happened to which approval; ``summary`` is already masked."""

    kind: str
    approval_id: str
    agent_id: str
    tool: str
    summary: str
    tier: str | None = None
    expires_at: str | None = None
    required: int = 1
    detail: str | None = None


class Notifier(Protocol):
    """Delivers notifications somewhere humans look."""

    def send(self, notification: Notification) -> None:
        """Deliver (or queue) one notification; may raise, the caller ignores failures."""
        ...


def notify_all(notifiers: Sequence[Notifier], notification: Notification) -> None:
    """Send to every notifier; a failing notifier is logged and never stops the others."""
    for notifier in notifiers:
        try:
            notifier.send(notification)
        except Exception:
            log.warning(
                "notifier %s failed on %s of %s",
                type(notifier).__name__,
                notification.kind,
                notification.approval_id,
                exc_info=True,
            )


class LogNotifier:
    """Writes notifications to the ``clearance.approvals`` logger (the embedded default)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("clearance.approvals")

    def send(self, notification: Notification) -> None:
        """Log one line with the approval id, the kind and the summary."""
        self._log.info(
            "approval %s %s: %s (agent %s, tool %s)",
            notification.approval_id,
            notification.kind,
            notification.summary,
            notification.agent_id,
            notification.tool,
        )


_TITLES = {
    "created": "Approval needed",
    "approved": "Approved",
    "denied": "Denied",
    "expired": "Expired (denied)",
    "cancelled": "Cancelled",
    "question": "Question to the agent",
    "answer": "The agent answered",
    "decayed": "Permitted without approval (decay)",
}


def _escape(text: str) -> str:
    """Slack mrkdwn escaping: agent-controlled text cannot form links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notification: Notification) -> dict[str, object]:
    """The Slack incoming-webhook body: a fallback ``text`` and a section plus context block."""
    title = _TITLES.get(notification.kind, notification.kind)
    head = f"*{title}*: {_escape(notification.summary)}"
    facts = [
        f"id `{notification.approval_id}`",
        f"agent `{_escape(notification.agent_id)}`",
        f"tool `{_escape(notification.tool)}`",
    ]
    if notification.tier:
        facts.append(f"tier {notification.tier}")
    if notification.required > 1:
        facts.append(f"{notification.required} approvers")
    if notification.expires_at:
        facts.append(f"expires {notification.expires_at}")
    blocks: list[dict[str, object]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": head}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(facts)}]},
    ]
    if notification.detail:
        blocks.insert(
            1, {"type": "section", "text": {"type": "mrkdwn", "text": _escape(notification.detail)}}
        )
    return {"text": f"{title}: {_escape(notification.summary)}", "blocks": blocks}


class WebhookNotifier:
    """POSTs Slack-compatible JSON to a webhook from one background thread.

    The queue is bounded: when the endpoint is down and the queue fills, further notifications are
    dropped with a warning rather than growing memory or blocking the caller.
    """

    def __init__(self, url: str, *, timeout_s: float = 3.0, queue_size: int = 1000) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ConfigError(
                f"the webhook url `{parts.scheme}://{parts.netloc}` is not an http(s) url"
            )
        self.url = url
        self.timeout_s = timeout_s
        self._queue: queue.Queue[Notification | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="clearance-webhook", daemon=True)
        self._thread.start()

    def send(self, notification: Notification) -> None:
        """Queue ``notification``; never blocks."""
        try:
            self._queue.put_nowait(notification)
        except queue.Full:
            log.warning("webhook queue full; dropped %s", notification.approval_id)

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._post(item)
            except Exception:
                log.warning("webhook delivery of %s failed", item.approval_id, exc_info=True)

    def _post(self, notification: Notification) -> None:
        body = json.dumps(slack_payload(notification)).encode("utf-8")
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": "clearance"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
            response.read(1024)
