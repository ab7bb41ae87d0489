"""Approval backlog: an agent with too many requests waiting for humans is paused.

An agent that keeps asking for approvals faster than people answer is either stuck in a loop or
trying to wear its reviewers down. When more than ``threshold`` (default 3) of its requests are
pending, ``BacklogMonitor`` calls every subscriber (the kill-switch/breaker layer pauses the agent)
and, used as a gate pre-check, answers DENY ``approval-backlog`` for the agent's new requests until
the backlog drains.

Example::

    backlog = BacklogMonitor(store, threshold=3)
    backlog.subscribe(lambda agent_id, pending: breaker.pause(agent_id, reason="approval backlog"))
    gate = Gate(store, approvals=ApprovalService(store, ..., backlog=backlog), pre_checks=[backlog])
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from clearance.approvals.settings import DEFAULT_BACKLOG
from clearance.errors import ConfigError
from clearance.model.decision import Outcome, Verdict
from clearance.model.request import Request
from clearance.store.approvals_sql import ApprovalStore, approval_store
from clearance.store.protocol import SessionState

log = logging.getLogger("clearance.approvals.backlog")

BACKLOG_RULE = "approval-backlog"

BacklogCallback = Callable[[str, int], None]


class BacklogMonitor:
    """Counts pending approvals per agent and signals when one agent has too many."""

    def __init__(self, store: object, *, threshold: int = DEFAULT_BACKLOG) -> None:
        if threshold < 1:
            raise ConfigError(f"the approval backlog threshold must be at least 1, got {threshold}")
        self.store: ApprovalStore = approval_store(store)
        self.threshold = threshold
        self._callbacks: list[BacklogCallback] = []

    def subscribe(self, callback: BacklogCallback) -> None:
        """Call ``callback(agent_id, pending)`` whenever an agent goes over the threshold."""
        self._callbacks.append(callback)

    def pending_count(self, agent_id: str) -> int:
        """How many requests of ``agent_id`` are pending."""
        return self.store.count_pending(agent_id)

    def over(self, agent_id: str) -> bool:
        """True when ``agent_id`` has more than ``threshold`` pending requests."""
        return self.pending_count(agent_id) > self.threshold

    def observe(self, agent_id: str, now: datetime) -> None:  # noqa: ARG002 - uniform hook shape
        """Check ``agent_id`` after a new request; signal subscribers when over the threshold."""
        pending = self.pending_count(agent_id)
        if pending <= self.threshold:
            return
        for callback in self._callbacks:
            try:
                callback(agent_id, pending)
            except Exception:
                log.exception("backlog subscriber failed for agent %s", agent_id)

    def check(self, request: Request, state: SessionState, now: datetime) -> Verdict | None:  # noqa: ARG002 - PreCheck shape
        """Gate pre-check: DENY the agent's requests while its backlog is over the threshold."""
        pending = self.pending_count(request.agent_id)
        if pending <= self.threshold:
            return None
        return Verdict(
            outcome=Outcome.DENY,
            rule=BACKLOG_RULE,
            reason=f"{pending} approvals of this agent are pending (limit {self.threshold}); "
            "the agent is paused until they are decided",
        )
