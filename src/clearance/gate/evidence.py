"""Turns decisions, outcomes and events into audit entries and signed receipts.

The header of each entry holds only digests, ids, enumerations and names (AUDIT.md 3.2); the
standard audit field set of every tool call (time, session, agent, action, tool, input, reasoning,
approval status, risk tier, context hash, and later the output) travels in the masked payload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from clearance.audit.log import AuditLog
from clearance.audit.redact import BUILTIN_DETECTORS, Redactor
from clearance.audit.sign import AuditKey, MaskKey
from clearance.formats.receipt import build_statement
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.store.protocol import SessionState


class PolicyRedactor:
    """Masks payloads with the redaction rules of the policy in force, before anything is stored.

    The configured paths (``redaction.remove`` / ``redaction.hash``, globally and per tool) are
    applied with the deployment's masking key; secret detection runs unless the policy turns it
    off. A new policy digest builds a new ``Redactor``; the last one is cached.
    """

    def __init__(self, mask_key: MaskKey, policy: Callable[[], Any]) -> None:
        self._key = mask_key
        self._policy = policy
        self._cached: tuple[str, Redactor] | None = None

    def _redactor(self) -> Redactor:
        bundle = self._policy()
        digest = bundle.digest if bundle is not None else ""
        if self._cached is not None and self._cached[0] == digest:
            return self._cached[1]
        paths: dict[str, Any] = {}
        detectors = BUILTIN_DETECTORS
        if bundle is not None:
            rules = bundle.compiled.redaction
            for section in (rules, *rules.tools.values()):
                paths.update(dict.fromkeys(section.remove, "remove"))
                paths.update(dict.fromkeys(section.hash, "tag"))
            if not rules.detect_secrets:
                detectors = ()
        redactor = Redactor(self._key, paths=paths, detectors=detectors)
        self._cached = (digest, redactor)
        return redactor

    def redact(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A masked deep copy of ``payload``."""
        return self._redactor().redact(payload)


#: Event fields that may stay in the permanent entry header (AUDIT.md 3.2).
HEADER_SAFE_FIELDS = frozenset(
    {
        "id",
        "decision_id",
        "request_digest",
        "policy",
        "tool",
        "action",
        "outcome",
        "rule",
        "tier",
        "shadow",
    }
)


class AuditRecorder:
    """The gate's ``AuditSink``: one audit shard plus the key that signs receipts."""

    def __init__(self, log: AuditLog, key: AuditKey) -> None:
        self.log = log
        self.key = key

    def record_decision(
        self, request: Request, decision: Decision, state: SessionState, extra: dict[str, Any]
    ) -> dict[str, Any]:
        """Append the decision entry, wait for its commit, and return the signed receipt."""
        would_be = decision.shadow_outcome or decision.outcome
        header: dict[str, Any] = {
            "id": decision.decision_id,
            "decision_id": decision.decision_id,
            "request_digest": decision.request_digest,
            "policy": decision.policy,
            "tool": request.tool,
            "action": request.action,
            "outcome": would_be.value,
            "rule": decision.rule,
            "shadow": decision.shadow,
        }
        if decision.tier is not None:
            header["tier"] = decision.tier.value
        session = state.session
        payload: dict[str, Any] = {
            "time": decision.time,
            "agent_id": request.agent_id,
            "session_id": request.session_id,
            "tool": request.tool,
            "action": request.action,
            "args": request.args,
            "target": request.target,
            "reasoning": request.reasoning,
            "context_hash": request.context_hash,
            "task": session.task,
            "environment": session.environment.value,
            "principal": session.principal,
            "delegation": list(session.delegation),
            "taint": list(state.taint),
            "outcome": decision.outcome.value,
            "reason": decision.reason,
            "tier": decision.tier.value if decision.tier else None,
            "obligations": [o.model_dump(mode="json") for o in decision.obligations],
            "approval": {
                "status": "pending" if decision.outcome is Outcome.APPROVAL else None,
                "approval_id": decision.approval_id,
                "expires": decision.approval_expires,
            },
            **extra,
        }
        entry = self.log.append("decision", header, payload)
        statement = build_statement(
            log=entry.log,
            index=entry.index,
            leaf=entry.leaf_hash,
            decision_id=decision.decision_id,
            request_digest=decision.request_digest,
            policy=decision.policy,
            outcome=decision.outcome.value,
            rule=decision.rule,
            shadow=decision.shadow,
            time=decision.time,
            approval_id=decision.approval_id,
            expires=decision.approval_expires,
        )
        return self.key.sign_receipt(statement)

    def record_outcome(self, result: ActionResult, decision: dict[str, Any]) -> None:
        """Append the outcome entry of a dispatched call."""
        header = {
            "decision_id": result.decision_id,
            "request_digest": decision.get("request_digest"),
            "policy": decision.get("policy"),
            "outcome": decision.get("outcome"),
            "rule": decision.get("rule"),
        }
        payload = {
            "success": result.success,
            "output_size": result.output_size,
            "output": result.output,
            "error": result.error,
        }
        self.log.append("outcome", {k: v for k, v in header.items() if v is not None}, payload)

    def record_event(self, kind: str, fields: dict[str, Any], payload: dict[str, Any]) -> None:
        """Append a non-decision event (policy activated, kill switch, break-glass, ...).

        Callers name events freely (``approval.token_issued``); the entry kind is normalised to
        the log's alphabet and any field that may carry personal data (agent, session, operator
        ids, free text) moves from the header into the masked payload, so the permanent header
        holds only ids, digests and enumerations whatever the caller passed.
        """
        header = {k: v for k, v in fields.items() if k in HEADER_SAFE_FIELDS and v is not None}
        rest = {k: v for k, v in fields.items() if k not in header}
        self.log.append(kind.replace("_", "-").lower(), header, {**rest, **payload})
