"""Turns decisions, outcomes and events into audit entries and signed receipts.

The header of each entry holds only digests, ids, enumerations and names (AUDIT.md 3.2); the
standard audit field set of every tool call (time, session, agent, action, tool, input, reasoning,
approval status, risk tier, context hash, and later the output) travels in the masked payload.

The recorder also serves evidence back: ``inclusion_proof_for(receipt)`` (the tlog-proof an
auditor verifies with the deployment's public key alone) and ``verification_status(now)``, which
re-checks the shard against its signed checkpoints with that same public key.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from clearance.audit.log import AuditLog
from clearance.audit.redact import BUILTIN_DETECTORS, Redactor
from clearance.audit.sign import AuditKey, MaskKey
from clearance.errors import AuditWriteError, EvidenceUnavailableError, StoreError
from clearance.formats.checkpoint import Checkpoint, CheckpointError, verify_checkpoint
from clearance.formats.entry import format_time
from clearance.formats.note import VerifierKey
from clearance.formats.proof import (
    ProofFileError,
    verify_consistency_proof,
    verify_inclusion_proof,
)
from clearance.formats.receipt import ReceiptError, build_statement, verify_receipt
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request
from clearance.model.result import AUDITED_OUTPUT_CHARS, ActionResult
from clearance.store.protocol import SessionState

log = logging.getLogger("clearance.gate.evidence")


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
        # Only the public half is used to check evidence, as an outside auditor would.
        self._public = VerifierKey.parse(key.vkey)
        self._verified: Checkpoint | None = None
        self._status_lock = threading.Lock()

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
        output = result.output
        if isinstance(output, str):
            output = output[:AUDITED_OUTPUT_CHARS]
        payload = {
            "success": result.success,
            "output_size": result.output_size,
            "output": output,
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

    # -- evidence served back ---------------------------------------------------------------

    def inclusion_proof_for(self, receipt: Mapping[str, Any]) -> str:
        """The tlog-proof (text) that the entry ``receipt`` names is in a signed checkpoint.

        Raises ``EvidenceUnavailableError`` when the receipt is not this deployment's, its entry
        is in another shard (another replica or period), or the entry is pruned to its hash.
        """
        try:
            statement = verify_receipt(receipt, [self._public])
        except ReceiptError as exc:
            raise EvidenceUnavailableError(
                "the stored receipt does not verify with this deployment's key",
                hint="run `clearance audit verify` on the store",
            ) from exc
        if statement["log"] != self.log.origin:
            raise EvidenceUnavailableError(
                f"the entry is in shard `{statement['log']}`; this gate appends to "
                f"`{self.log.origin}`",
                hint="ask the replica that wrote it, or export that shard with "
                "`clearance audit export`",
            )
        try:
            return self.log.inclusion_proof(int(statement["index"]))
        except AuditWriteError as exc:
            raise EvidenceUnavailableError(exc.message, hint=exc.hint) from exc

    def verification_status(self, now: datetime) -> dict[str, Any]:
        """Re-check the shard with the public key only; a finding is reported, never raised.

        Checks, in order: the latest checkpoint's signature; that it extends the checkpoint this
        process verified last (a consistency proof, so history was neither rewritten nor rolled
        back meanwhile); and an inclusion proof of the newest entry (its stored leaves hash to the
        signed root). The full entry-by-entry check is ``clearance audit verify``.
        """
        with self._status_lock:
            status: dict[str, Any] = {
                "origin": self.log.origin,
                "checked_at": format_time(now),
                "entries": self.log.size,
            }
            try:
                checks = self._verify_head()
            except (AuditWriteError, StoreError, CheckpointError, ProofFileError) as exc:
                log.exception("audit verification of %s failed", self.log.origin)
                return {**status, "verified": False, "problem": str(exc)}
            verified = self._verified
            return {
                **status,
                "verified": True,
                "checkpoint_size": verified.size if verified else 0,
                "root": verified.root.hex() if verified else None,
                "checks": checks,
            }

    def _verify_head(self) -> list[str]:
        note = self.log.checkpoint_now()
        if note is None:
            return ["no checkpoint signed yet"]
        keys = [self._public]
        signed = verify_checkpoint(note, keys, origin=self.log.origin).checkpoint
        checks = [f"checkpoint of size {signed.size} is signed by the deployment key"]
        previous = self._verified
        if previous is not None and previous.size > 0:
            proof = self.log.consistency_proof(previous.size)
            signed = verify_consistency_proof(previous, proof.encode(), keys).checkpoint
            checks.append(f"size {signed.size} extends the size {previous.size} verified before")
        if signed.size > 0:
            included = verify_inclusion_proof(
                self.log.inclusion_proof(signed.size - 1).encode(), keys, origin=self.log.origin
            )
            signed = included.checkpoint.checkpoint
            checks.append(f"entry {included.index} is included under the signed root")
        self._verified = signed
        return checks
