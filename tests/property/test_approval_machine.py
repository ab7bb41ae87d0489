"""State machine over create / approve / deny / expire / claim / redeem / replay.

Invariants checked after every step, against a model kept by the test:

* no PERMIT without the required number of distinct approvals;
* no token redeemed twice (a second redemption is never a PERMIT);
* nothing is permitted once its approval or its token has expired, and nothing after a deny.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule
from tests.approvals_kit import START, Kit, build_kit

from clearance.approvals.expiry import iso
from clearance.approvals.rules import Operator
from clearance.errors import ApprovalError
from clearance.gate.clock import FixedClock
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.store import open_store

OPERATORS = [Operator(name) for name in ("alice", "bob", "carol", "dora", "dave")]


@dataclass
class Tracked:
    request: Request
    approval_id: str
    intent: str
    required: int
    approvers: set[str] = field(default_factory=set)
    denied: bool = False
    token: str | None = None
    redeemed: int = 0


class ApprovalMachine(RuleBasedStateMachine):
    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory()
        self.store = open_store(f"sqlite:///{Path(self._dir.name) / 'c.db'}")
        self.kit: Kit = build_kit(self.store, FixedClock(START))
        self.tracked: list[Tracked] = []
        self.permits_after_expiry = 0
        self.bad_permits = 0

    def teardown(self) -> None:
        self.store.close()
        self._dir.cleanup()

    @rule(
        target=requests,
        tool=st.sampled_from(["transfer_funds", "drop_table"]),
        amount=st.integers(1, 99),
    )
    def create(self, tool: str, amount: int) -> Tracked:
        task = "payments" if tool == "transfer_funds" else "maintenance"
        s = self.kit.session(task=task)
        args = (
            {"amount": amount, "to_account": "acc-1"}
            if tool == "transfer_funds"
            else {"table": f"t{amount}"}
        )
        req = self.kit.request(s, tool, **args)
        d = self.kit.decide(req)
        assert d.outcome is Outcome.APPROVAL
        assert d.approval_id is not None
        assert d.intent is not None
        t = Tracked(req, d.approval_id, d.intent, required=2 if tool == "drop_table" else 1)
        self.tracked.append(t)
        return t

    @rule(t=requests, op=st.sampled_from(OPERATORS))
    def approve(self, t: Tracked, op: Operator) -> None:
        try:
            self.kit.service.approve(t.approval_id, op, self.kit.clock.now())
        except ApprovalError:
            return
        assert op.id not in t.approvers, "the same operator was counted twice"
        assert not t.denied, "an approval was counted after a deny"
        row = self.kit.service.store.get_approval(t.approval_id)
        assert row is not None
        assert iso(self.kit.clock.now()) < row.expires_at, "approved after its deadline"
        t.approvers.add(op.id)

    @rule(t=requests, op=st.sampled_from(OPERATORS))
    def deny(self, t: Tracked, op: Operator) -> None:
        try:
            self.kit.service.deny(t.approval_id, op, self.kit.clock.now())
        except ApprovalError:
            return
        t.denied = True

    @rule(seconds=st.sampled_from([30, 120, 301, 600, 901]))
    def clock_moves(self, seconds: int) -> None:
        self.kit.clock.advance(seconds)

    @rule()
    def expire(self) -> None:
        self.kit.service.expire_due(self.kit.clock.now())

    @rule(t=requests)
    def claim(self, t: Tracked) -> None:
        try:
            status = self.kit.service.status(
                t.approval_id,
                intent=t.intent,
                agent_id=t.request.agent_id,
                session_id=t.request.session_id,
                now=self.kit.clock.now(),
            )
        except ApprovalError:
            return
        if status.token is not None:
            assert t.token is None, "a second token was handed out"
            assert len(t.approvers) >= t.required
            assert not t.denied
            t.token = status.token

    @rule(t=requests, swap=st.booleans())
    def redeem(self, t: Tracked, swap: bool) -> None:
        if t.token is None:
            return
        req = t.request
        if swap:
            req = Request(
                **{**req.model_dump(exclude={"approval_token"}), "args": {**req.args, "sneaky": 1}}
            )
        d = self.kit.decide(req, t.token)
        if d.outcome is not Outcome.PERMIT:
            return
        if swap or t.redeemed or t.denied or len(t.approvers) < t.required:
            self.bad_permits += 1
        t.redeemed += 1

    @rule(t=consumes(requests))
    def replay(self, t: Tracked) -> None:
        if t.token is None:
            return
        d = self.kit.decide(t.request, t.token)
        if d.outcome is Outcome.PERMIT:
            if t.redeemed:
                self.bad_permits += 1
            t.redeemed += 1

    @invariant()
    def no_bad_permit(self) -> None:
        assert self.bad_permits == 0

    @invariant()
    def tokens_redeemed_at_most_once(self) -> None:
        assert all(t.redeemed <= 1 for t in self.tracked)

    @invariant()
    def nothing_permitted_after_expiry(self) -> None:
        for t in self.tracked:
            if t.token is None:
                continue
            token_row = self.kit.service.store.get_token(
                __import__("clearance.approvals.tokens", fromlist=["token_hash"]).token_hash(
                    t.token
                )
            )
            assert token_row is not None
            if token_row.redeemed_at is not None:
                assert token_row.redeemed_at < token_row.expires_at


TestApprovalMachine = ApprovalMachine.TestCase
TestApprovalMachine.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
