"""Attack surface: a notifier that raises or hangs must never approve (or block) anything."""

from __future__ import annotations

import threading

from tests.approvals_kit import ALICE, Kit, kit_fixture  # noqa: F401

from clearance.approvals.notify import Notification, WebhookNotifier
from clearance.approvals.service import State
from clearance.model.decision import Outcome


class Exploding:
    def send(self, notification: Notification) -> None:
        raise RuntimeError("chat is down")


def test_raising_notifier_leaves_the_request_pending(kit: Kit) -> None:
    kit.service.notifiers.insert(0, Exploding())
    s = kit.session()
    req = kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v")
    d = kit.decide(req)
    assert d.outcome is Outcome.APPROVAL
    assert d.approval_id is not None
    assert kit.service.show(d.approval_id, ALICE).state is State.PENDING
    assert kit.decide(req).outcome is Outcome.APPROVAL
    assert [n.kind for n in kit.notifier.sent] == ["created", "created"]


def test_unreachable_webhook_does_not_delay_or_change_decisions(kit: Kit) -> None:
    import socket

    with socket.socket() as sink:
        sink.bind(("127.0.0.1", 0))
        sink.listen(1)  # accepts the connection, never answers: a hanging endpoint
        port = sink.getsockname()[1]
        hook = WebhookNotifier(f"http://127.0.0.1:{port}/hook", timeout_s=0.5)
        kit.service.notifiers.append(hook)
        s = kit.session()
        d = kit.decide(kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v"))
        assert d.outcome is Outcome.APPROVAL
        assert d.approval_id is not None
        assert kit.service.show(d.approval_id, ALICE).state is State.PENDING
        hook.close(timeout_s=5)
    assert not any(
        t.name == "clearance-webhook" and t.is_alive()
        for t in threading.enumerate()
        if t is hook._thread
    )
