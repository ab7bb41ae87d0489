"""Summary templates, tokens and intents, decay, backlog, waiting and the webhook payload."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from tests.approvals_kit import ALICE, BOB, Kit, kit_fixture  # noqa: F401

from clearance.approvals.backlog import BacklogMonitor
from clearance.approvals.notify import Notification, WebhookNotifier, slack_payload
from clearance.approvals.service import State
from clearance.approvals.summary import compile_template, default_template, mask_args
from clearance.approvals.tokens import IntentClaims, IntentKey, RejectedToken, new_token, token_hash
from clearance.approvals.waiting import PendingApproval, await_approval, wait_for_approval
from clearance.errors import ConfigError
from clearance.model.decision import Outcome
from clearance.model.result import ActionResult


def test_template_has_no_attribute_access_or_format_spec() -> None:
    for bad in (
        "{args.__class__.__init__}",
        "{args.x!r}",
        "{args.x:>10}",
        "{self}",
        "{args[0]}",
        "{ {args.x}",
    ):
        with pytest.raises(ConfigError):
            compile_template(bad)
    t = compile_template("pay {args.amount|money} to {args.iban|last4} {{literal}}")
    out = t.render(
        {"args": {"amount": "2400", "iban": "DE44 5001 0517 5407 3249 31"}}, mask=frozenset()
    )
    assert out == "pay 2,400.00 to *4931 {literal}"


def test_rendered_values_are_masked_flattened_and_bounded() -> None:
    t = compile_template("{args.note} {args.password} {args.acct} {args.missing}")
    out = t.render(
        {
            "args": {
                "note": "a\nb\x1b[31m{args.password}" + "x" * 500,
                "password": "hunter2",
                "acct": "9876543210",
            }
        },
        mask=frozenset({"acct"}),
    )
    assert "hunter2" not in out
    assert "\n" not in out
    assert "\x1b" not in out
    assert "*3210" in out
    assert out.endswith("?")
    assert mask_args({"token": "abc", "nested": {"k": "sk-" + "a" * 20}}, frozenset()) == {
        "token": "[masked]",
        "nested": {"k": "[masked]"},
    }


def test_intent_round_trip_and_tamper() -> None:
    key = IntentKey.generate()
    claims = IntentClaims(
        "apr_1", "sha256:" + "0" * 64, "agent", "ses_x", "2030-01-01T00:00:00.000000Z"
    )
    intent = key.sign_intent(claims)
    assert key.verify_intent(intent) == claims
    with pytest.raises(RejectedToken) as bad:
        IntentKey.generate().verify_intent(intent)
    assert bad.value.reason == "bad-intent-signature"
    assert str(bad.value) == "the token is not valid for this request"
    token = new_token()
    assert token_hash(token) != token_hash(new_token())
    assert len(token) == 48


def test_intent_key_file_is_created_private_and_refused_when_open(tmp_path) -> None:
    from clearance.errors import KeyFileError

    path = tmp_path / "intent.key"
    first = IntentKey.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert IntentKey.load_or_create(path).key_id == first.key_id
    path.chmod(0o644)
    with pytest.raises(KeyFileError):
        IntentKey.load_or_create(path)


def _approve_round(kit: Kit, s, amount: int):
    req = kit.request(s, "pay_vendor", amount=amount, from_account="x", vendor="v")
    d = kit.decide(req)
    if d.outcome is Outcome.APPROVAL:
        assert d.approval_id is not None
        kit.service.approve(d.approval_id, ALICE, kit.clock.now())
        d = kit.decide(req, kit.token_for(d, req))
    return d


def test_decay_after_three_clean_approvals_and_reset_on_failure(kit: Kit) -> None:
    s = kit.session()
    rules = [_approve_round(kit, s, n).rule for n in range(1, 5)]
    assert rules[:3] == [r for r in rules[:3] if r.startswith("approval:")]
    assert rules[3] == "decay:vendor-payments"
    assert [n.kind for n in kit.notifier.sent].count("decayed") == 1
    failed = _approve_round(kit, s, 9)
    assert failed.rule == "decay:vendor-payments"
    kit.gate.report(
        ActionResult(decision_id=failed.decision_id, success=False), agent_id=s.agent_id
    )
    assert (
        kit.decide(kit.request(s, "pay_vendor", amount=10, from_account="x", vendor="v")).outcome
        is Outcome.APPROVAL
    )


def test_decay_never_applies_to_write_broad(kit: Kit) -> None:
    s = kit.session()
    for n in range(5):
        req = kit.request(s, "transfer_funds", amount=n + 1, to_account="acc-1")
        d = kit.decide(req)
        assert d.outcome is Outcome.APPROVAL
        assert d.approval_id is not None
        kit.service.approve(d.approval_id, ALICE, kit.clock.now())


def test_backlog_signals_and_pauses_over_the_threshold(kit: Kit) -> None:
    backlog = BacklogMonitor(kit.store, threshold=3)
    signals: list[tuple[str, int]] = []
    backlog.subscribe(lambda agent, n: signals.append((agent, n)))
    kit.service.backlog = backlog
    s = kit.session()
    for n in range(4):
        kit.decide(kit.request(s, "transfer_funds", amount=n + 1, to_account="acc-1"))
    assert signals == [("fin-1", 4)]
    assert backlog.pending_count("fin-1") == 4
    kit.gate.pre_checks.append(backlog)
    paused = kit.decide(kit.request(s, "read_account", account_id="a"))
    assert paused.outcome is Outcome.DENY
    assert paused.rule == "approval-backlog"


def test_waiting_blocking_and_async(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "pay_vendor", amount=3, from_account="x", vendor="v")
    d = kit.decide(req)
    pending = PendingApproval.from_dict(PendingApproval.from_decision(d, req).to_dict())
    timed_out = wait_for_approval(kit.service, pending, clock=kit.clock, timeout_s=0)
    assert timed_out.state is State.PENDING
    assert d.approval_id is not None
    approval_id = d.approval_id
    threading.Timer(0.05, lambda: kit.service.approve(approval_id, BOB, kit.clock.now())).start()

    class Ticking:
        def __init__(self) -> None:
            self.t = 0.0

        def now(self):
            return kit.clock.now()

        def monotonic(self) -> float:
            self.t += 0.01
            return self.t

    done = wait_for_approval(kit.service, pending, clock=Ticking(), timeout_s=5, poll_s=0.5)
    assert done.state is State.APPROVED
    assert done.token is not None
    other = kit.request(s, "pay_vendor", amount=4, from_account="x", vendor="v")
    d2 = kit.decide(other)
    assert d2.approval_id is not None
    kit.service.deny(d2.approval_id, BOB, kit.clock.now(), comment="no")
    later = asyncio.run(
        await_approval(
            kit.service, PendingApproval.from_decision(d2, other), clock=kit.clock, timeout_s=1
        )
    )
    assert later.state is State.DENIED
    assert later.reason == "no"


def test_webhook_posts_escaped_slack_json() -> None:
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = WebhookNotifier(f"http://127.0.0.1:{server.server_port}/x", timeout_s=2)
        n = Notification(
            "created",
            "apr_1",
            "agent",
            "pay",
            "pay <!channel> & co",
            tier="write-limited",
            required=2,
        )
        hook.send(n)
        hook.close()
    finally:
        server.shutdown()
    assert received == [slack_payload(n)]
    assert "<!channel>" not in json.dumps(received)
    assert "&lt;!channel&gt;" in received[0]["text"]
    with pytest.raises(ConfigError):
        WebhookNotifier("file:///etc/passwd")


def test_a_tool_without_a_template_shows_its_arguments_masked() -> None:
    args = {"url": "https://api.example/sync", "api_key": "sk-live-0123456789abcdef", "n": 3}
    values = {
        "args": args,
        "request": {"agent_id": "bot", "tool": "fetch_url", "target": None, "reasoning": "rates"},
    }
    text = default_template(args, reasoning="rates").render(values, mask=frozenset({"n"}))
    assert (
        text == "bot wants fetch_url (url=https://api.example/sync, api_key=[masked], n=*3): rates"
    )


def test_the_default_summary_names_a_target_and_omits_what_is_missing() -> None:
    values = {"args": {}, "request": {"agent_id": "bot", "tool": "deploy", "target": "prod-eu"}}
    assert default_template({}, target="prod-eu").render(values, mask=frozenset()) == (
        "bot wants deploy on prod-eu"
    )
