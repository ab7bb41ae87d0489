"""``Gate.decide()``: the one decision pipeline and the one fail-closed boundary.

Order of the pipeline (each step may end it):

0. values no digest can cover (unvalidated)    -> DENY ``invalid-request``
1. request size limit                          -> SILENCE ``request-too-large``
2. session lookup, agent binding, closed flag  -> DENY ``session``
3. pre-checks: kill switch, drain, breakers    -> DENY ``kill-switch`` / ``breaker:*``
4. idempotency: same key and digest            -> the stored decision; other digest -> DENY
5. execution token (``approval_token``)        -> PERMIT ``approval:<id>`` or DENY ``invalid-token``
6. policy evaluation (pure), with the session's -> Verdict
   value provenance and the scan of the outbound args
7. overrides: break-glass, unusual sequence    -> Verdict
8. shadow mode                                 -> caller gets PERMIT, would-be outcome recorded
9. approval request for APPROVAL outcomes
10. deadline                                   -> SILENCE ``deadline``
11. audit entry committed, receipt signed      -> otherwise SILENCE ``audit``
12. state recorded (calls, idempotency)        -> otherwise SILENCE ``store``

Any unexpected exception anywhere becomes SILENCE naming its cause: nothing is dispatched.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from clearance.errors import (
    ClearanceError,
    ConfigError,
    PolicyError,
    StoreError,
    TaintUnrecordedError,
)
from clearance.formats.canonical import NotCanonicalError
from clearance.gate.clock import Clock, SystemClock, iso
from clearance.gate.config import GateConfig
from clearance.gate.hooks import (
    ApprovalHandler,
    AuditSink,
    Observer,
    Override,
    PreCheck,
    Tracer,
)
from clearance.gate.outbound import OutboundScan
from clearance.gate.taint import (
    ProvenanceSource,
    RecordingProvenance,
    decision_extra,
    replay_inputs,
)
from clearance.model.decision import Decision, Outcome, Verdict
from clearance.model.ids import new_session_id, new_ulid
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.model.session import Environment, Session, SessionFacts
from clearance.policy.bundle import Bundle
from clearance.policy.evaluate import evaluate
from clearance.policy.hooks import NO_PROVENANCE
from clearance.store.protocol import (
    DecisionRecord,
    IdempotencyRecord,
    SessionState,
    Store,
    StoredBundle,
)

log = logging.getLogger("clearance.gate")

NO_POLICY = "none"


@dataclass(frozen=True, slots=True)
class Replay:
    """An archived decision and the same request re-evaluated against its archived bundle."""

    original: dict[str, Any]
    replayed: dict[str, Any]

    @property
    def identical(self) -> bool:
        """True when outcome, rule, reason, tier, obligations and shadow flag all match."""
        return _replay_view(self.original) == _replay_view(self.replayed)


def _replay_view(decision: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "outcome",
        "rule",
        "reason",
        "tier",
        "obligations",
        "shadow",
        "shadow_outcome",
        "policy",
    )
    return {k: decision.get(k) for k in keys}


def facts_of(state: SessionState) -> SessionFacts:
    """The ``session`` facts policy reads: set by the trusted opener or accumulated by the gate."""
    session = state.session
    # Every field comes from a validated ``Session`` and the store's typed state: construct
    # without validating again (this runs on every decision).
    return SessionFacts.model_construct(
        task=session.task,
        environment=session.environment,
        principal=session.principal,
        instruction=session.instruction,
        delegation=session.delegation,
        taint=state.taint,
        calls=dict(state.calls),
        attended=session.attended,
    )


class Gate:
    """The runtime-authorization gate: decides, records and explains every tool call."""

    def __init__(
        self,
        store: Store,
        *,
        config: GateConfig | None = None,
        clock: Clock | None = None,
        audit: AuditSink | None = None,
        approvals: ApprovalHandler | None = None,
        pre_checks: Sequence[PreCheck] = (),
        overrides: Sequence[Override] = (),
        observers: Sequence[Observer] = (),
        provenance: ProvenanceSource | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.store = store
        self.config = config or GateConfig()
        self.clock: Clock = clock or SystemClock()
        self.audit = audit
        self.approvals = approvals
        self.pre_checks: list[PreCheck] = list(pre_checks)
        self.overrides: list[Override] = list(overrides)
        self.observers: list[Observer] = list(observers)
        self.provenance = provenance
        #: Wraps decisions and reported outcomes in trace spans; None (the default) adds nothing.
        self.tracer = tracer
        #: Called with each bundle that comes into force (breaker thresholds, redaction, ...).
        self.on_activate: list[Callable[[Bundle], None]] = []
        self._bundle: Bundle | None = None
        self._bundles: dict[str, Bundle] = {}
        self._lock = threading.Lock()

    # policy -------------------------------------------------------------------------------
    @property
    def bundle(self) -> Bundle | None:
        """The bundle in force, or None before any activation."""
        return self._bundle

    def activate(self, bundle: Bundle, *, by: str) -> None:
        """Archive ``bundle`` under its digest, make it active, and record the activation."""
        now = iso(self.clock.now())
        self.store.put_bundle(
            StoredBundle(
                digest=bundle.digest,
                data=bundle.to_bytes(),
                source_name=bundle.source_name,
                signature=base64.b64encode(bundle.signature).decode() if bundle.signature else None,
                created_at=now,
            )
        )
        self.store.activate(bundle.digest, at=now, by=by)
        with self._lock:
            self._bundles[bundle.digest] = bundle
            self._bundle = bundle
        for listener in self.on_activate:
            listener(bundle)
        if self.audit is not None:
            self.audit.record_event(
                "policy.activated",
                {"policy": bundle.digest},
                {"source": bundle.source_name, "activated_by": by},
            )

    def load_active(self) -> Bundle:
        """Load the bundle the store names as active (at startup, or after another replica's change)."""
        digest = self.store.active_digest()
        if digest is None:
            raise ConfigError(
                "no policy is active in the store",
                hint="activate one with `clearance policy activate FILE` or `clearance init`",
            )
        bundle = self.bundle_by_digest(digest)
        with self._lock:
            self._bundle = bundle
        for listener in self.on_activate:
            listener(bundle)
        return bundle

    def bundle_by_digest(self, digest: str) -> Bundle:
        """An archived bundle, recompiled from its stored bytes (cached per digest)."""
        cached = self._bundles.get(digest)
        if cached is not None:
            return cached
        stored = self.store.get_bundle(digest)
        if stored is None:
            raise ConfigError(f"no archived policy bundle `{digest}`")
        damaged = (
            "the store was altered or damaged: activate the policy again from its file "
            "(`clearance policy activate FILE`) or restore the store from a backup"
        )
        try:
            signature = (
                base64.b64decode(stored.signature, validate=True) if stored.signature else None
            )
            bundle = Bundle.from_bytes(stored.data, signature=signature)
        except (PolicyError, binascii.Error) as exc:
            detail = (
                exc.message if isinstance(exc, PolicyError) else f"bad signature encoding ({exc})"
            )
            raise PolicyError(
                f"the archived policy bundle `{digest}` cannot be read: {detail}", hint=damaged
            ) from exc
        if bundle.digest != digest:
            raise ConfigError(
                f"the archived bundle `{digest}` recompiles to `{bundle.digest}`",
                hint=f"{damaged}; or this clearance version canonicalises differently",
            )
        self._bundles[digest] = bundle
        return bundle

    # sessions -----------------------------------------------------------------------------
    def open_session(
        self,
        *,
        agent_id: str,
        task: str,
        environment: Environment | str,
        principal: str | None = None,
        instruction: str | None = None,
        delegation: Sequence[str] = (),
        attended: bool = True,
        labels: dict[str, str] | None = None,
    ) -> Session:
        """Open a session for ``agent_id``: only a trusted caller (orchestrator, operator) may.

        The gate mints the session id (192 random bits), so agents cannot pick or guess one.
        """
        session = Session(
            session_id=new_session_id(),
            agent_id=agent_id,
            task=task,
            environment=Environment(environment),
            principal=principal,
            instruction=instruction,
            delegation=tuple(delegation),
            attended=attended,
            labels=labels or {},
            opened_at=iso(self.clock.now()),
        )
        self.store.open_session(session)
        return session

    def close_session(self, session_id: str) -> None:
        """Close a session; later requests in it are DENY."""
        self.store.close_session(session_id, iso(self.clock.now()))

    # the pipeline -------------------------------------------------------------------------
    def decide(self, request: Request) -> Decision:
        """Decide one request. Never raises: every failure is a SILENCE decision."""
        if self.tracer is not None:
            return self.tracer.decide(request, self._decide_closed)
        return self._decide_closed(request)

    def _decide_closed(self, request: Request) -> Decision:
        started = self.clock.monotonic()
        decision_id = new_ulid()
        try:
            return self._decide(request, decision_id, started)
        except Exception as exc:
            log.exception("decision %s failed closed", decision_id)
            cause = exc.code if isinstance(exc, ClearanceError) else type(exc).__name__
            rule = "store" if isinstance(exc, StoreError) else "error"
            return self._silence(request, decision_id, rule, f"the gate failed ({cause}): {exc}")

    def _decide(self, request: Request, decision_id: str, started: float) -> Decision:
        now = self.clock.now()
        bundle = self._bundle
        policy = bundle.digest if bundle is not None else NO_POLICY
        try:
            _ = request.digest  # computed when the request was validated; cached
        except NotCanonicalError as exc:
            return self._unrepresentable(request, decision_id, exc, policy, now, started)
        if len(orjson.dumps(request.args)) > self.config.max_args_bytes:
            return self._silence(
                request,
                decision_id,
                "request-too-large",
                f"args exceed {self.config.max_args_bytes} bytes",
            )
        state = self.store.session_state(request.session_id)
        if state is None or state.session.agent_id != request.agent_id:
            return self._finish(
                request,
                decision_id,
                _deny("session", "unknown session for this agent"),
                None,
                policy,
                now,
                started,
            )
        if state.session.closed:
            return self._finish(
                request,
                decision_id,
                _deny("session", "the session is closed"),
                state,
                policy,
                now,
                started,
            )
        for pre in self.pre_checks:
            stopped = pre.check(request, state, now)
            if stopped is not None:
                return self._finish(
                    request, decision_id, stopped, state, policy, now, started, remember=False
                )
        if request.idempotency_key is not None:
            replayed = self._idempotent(request, now)
            if replayed is not None:
                return replayed
        if bundle is None:
            return self._silence(request, decision_id, "no-policy", "no policy is active")
        if request.approval_token is not None:
            if self.approvals is None:
                verdict = _deny("invalid-token", "this gate does not accept execution tokens")
            else:
                verdict = self.approvals.redeem(request, state, now)
            return self._finish(
                request, decision_id, verdict, state, policy, now, started, remember=False
            )
        known = self.provenance.for_session(state, bundle.compiled) if self.provenance else None
        asked = RecordingProvenance(known if known is not None else NO_PROVENANCE)
        scan = OutboundScan(request.args, request.target)
        facts = facts_of(state)
        verdict = evaluate(bundle.compiled, request, facts, provenance=asked, scan=scan)
        for override in self.overrides:
            verdict = override.apply(request, state, verdict, now)
        extra = decision_extra(asked, scan.computed)
        return self._finish(
            request, decision_id, verdict, state, policy, now, started, extra=extra, facts=facts
        )

    def _unrepresentable(
        self,
        request: Request,
        decision_id: str,
        error: NotCanonicalError,
        policy: str,
        now: datetime,
        started: float,
    ) -> Decision:
        """DENY ``invalid-request``: a value no digest can cover got past validation.

        Only a request built without validation gets here (``Request`` refuses such values). The
        refusal is logged against the request's recordable stand-in, never stored under its
        idempotency key.
        """
        stand_in = request.recordable()
        state = self.store.session_state(stand_in.session_id)
        if state is not None and state.session.agent_id != stand_in.agent_id:
            state = None
        verdict = _deny("invalid-request", str(error))
        return self._finish(
            stand_in, decision_id, verdict, state, policy, now, started, remember=False
        )

    def _idempotent(self, request: Request, now: datetime) -> Decision | None:
        key = request.idempotency_key
        if key is None:
            return None
        record = self.store.get_idempotency(request.agent_id, key)
        if record is None:
            return None
        created = datetime.fromisoformat(record.created_at.replace("Z", "+00:00"))
        if now - created > timedelta(seconds=self.config.idempotency_window_s):
            return None
        if request.approval_token is not None and record.decision.get("outcome") == "APPROVAL":
            # The approved resubmission of a request first answered with APPROVAL: redeem the
            # token. Its decision is not stored under the key (which keeps the APPROVAL), and a
            # second redemption of the same token is refused, so it is never dispatched twice.
            return None
        if record.digest != request.digest:
            return Decision(
                decision_id=new_ulid(),
                outcome=Outcome.DENY,
                rule="idempotency-conflict",
                reason="this idempotency key was used for a different request",
                policy=record.decision.get("policy", NO_POLICY),
                request_digest=request.digest,
                time=iso(now),
            )
        return Decision.model_validate(record.decision)

    def _finish(
        self,
        request: Request,
        decision_id: str,
        verdict: Verdict,
        state: SessionState | None,
        policy: str,
        now: datetime,
        started: float,
        *,
        remember: bool = True,
        extra: dict[str, Any] | None = None,
        facts: SessionFacts | None = None,
    ) -> Decision:
        outcome = verdict.outcome
        shadow_outcome: Outcome | None = None
        if verdict.shadow and outcome is not Outcome.PERMIT and outcome is not Outcome.SILENCE:
            shadow_outcome, outcome = outcome, Outcome.PERMIT
        # Built from the gate's own typed values (a Verdict, ids, digests): no second validation
        # on the decision path.
        decision = Decision.model_construct(
            decision_id=decision_id,
            outcome=outcome,
            rule=verdict.rule,
            reason=verdict.reason,
            policy=policy,
            request_digest=request.digest,
            tier=verdict.tier,
            obligations=verdict.obligations,
            shadow=verdict.shadow,
            shadow_outcome=shadow_outcome,
            time=iso(now),
        )
        if state is None:
            return decision
        if outcome is Outcome.APPROVAL:
            if self.approvals is None:
                return self._silence(
                    request, decision_id, "approvals", "approval needed but no approval service"
                )
            ticket = self.approvals.create(request, state, verdict, decision_id, policy, now)
            decision = decision.model_copy(
                update={
                    "approval_id": ticket.approval_id,
                    "approval_expires": ticket.expires,
                    "intent": ticket.intent,
                }
            )
        elapsed_ms = (self.clock.monotonic() - started) * 1000
        if elapsed_ms > self.config.deadline_ms:
            return self._silence(
                request,
                decision_id,
                "deadline",
                f"the decision took {elapsed_ms:.0f} ms, over the {self.config.deadline_ms:.0f} ms deadline",
            )
        return self._commit(request, decision, state, remember=remember, extra=extra, facts=facts)

    def _commit(
        self,
        request: Request,
        decision: Decision,
        state: SessionState,
        *,
        remember: bool,
        extra: dict[str, Any] | None = None,
        facts: SessionFacts | None = None,
    ) -> Decision:
        """Audit, then record; ``remember`` is False for decisions made by gate state (kill
        switch, breakers), which must never be stored under an idempotency key nor be answered
        with a decision stored under one. ``extra`` holds what replay needs beside the session
        facts (the provenance answers and scan findings policy used), archived in their ``extra``; ``facts`` are the session facts policy
        read, when it ran (built once per decision)."""
        if self.audit is not None:
            try:
                receipt = self.audit.record_decision(request, decision, state, {})
            except ClearanceError as exc:
                return self._silence(
                    request, decision.decision_id, "audit", f"the audit log is not writable: {exc}"
                )
            decision = decision.model_copy(update={"receipt": receipt})
        stored = decision.model_dump(mode="json")
        idem = None
        if remember and request.idempotency_key is not None:
            idem = IdempotencyRecord(
                agent_id=request.agent_id,
                key=request.idempotency_key,
                digest=request.digest,
                decision_id=decision.decision_id,
                decision=stored,
                created_at=decision.time,
            )
        existing = self.store.record_decision(
            DecisionRecord(
                decision_id=decision.decision_id,
                request=request.model_dump(mode="json", exclude={"approval_token"}),
                facts=_archived_facts(facts or facts_of(state), extra),
                decision=stored,
                policy=decision.policy,
                created_at=decision.time,
            ),
            session_id=request.session_id,
            tool=request.tool,
            count_call=decision.outcome is Outcome.PERMIT,
            idempotency=idem,
        )
        if existing is not None:
            # A concurrent retry with the same key won the race: answer with its decision so one
            # key never yields two dispatchable decisions.
            if existing.digest != request.digest:
                return decision.model_copy(
                    update={
                        "outcome": Outcome.DENY,
                        "rule": "idempotency-conflict",
                        "reason": "this idempotency key was used for a different request",
                        "receipt": None,
                    }
                )
            return Decision.model_validate(existing.decision)
        self._notify_decision(request, decision, state)
        return decision

    def _silence(self, request: Request, decision_id: str, rule: str, reason: str) -> Decision:
        bundle = self._bundle
        try:
            digest = request.digest
        except Exception:  # noqa: BLE001 - a request that cannot even be digested is still SILENCE
            digest = "sha256:" + "0" * 64
        decision = Decision(
            decision_id=decision_id,
            outcome=Outcome.SILENCE,
            rule=rule,
            reason=reason,
            policy=bundle.digest if bundle is not None else NO_POLICY,
            request_digest=digest,
            time=iso(self.clock.now()),
        )
        state = self._record_silence(request, decision)
        # Observers see SILENCE too (metrics, health alerts on store or audit failures), with the
        # session when it could still be read.
        self._notify_decision(request, decision, state)
        return decision

    def _record_silence(self, request: Request, decision: Decision) -> SessionState | None:
        """Best effort: a SILENCE is evidence too, but the failure may be the store or the log.

        Returns the session state when it could be read (for the observers), else None.
        """
        state: SessionState | None = None
        try:
            state = self.store.session_state(request.session_id)
            if state is None or state.session.agent_id != request.agent_id:
                return None
            if self.audit is not None:
                self.audit.record_decision(request, decision, state, {})
            self.store.record_decision(
                DecisionRecord(
                    decision_id=decision.decision_id,
                    request=request.model_dump(mode="json", exclude={"approval_token"}),
                    facts=facts_of(state).model_dump(mode="json"),
                    decision=decision.model_dump(mode="json"),
                    policy=decision.policy,
                    created_at=decision.time,
                ),
                session_id=request.session_id,
                tool=request.tool,
                count_call=False,
                idempotency=None,
            )
        except Exception:
            log.warning("could not record SILENCE decision %s", decision.decision_id, exc_info=True)
        return state

    def _notify_decision(
        self, request: Request, decision: Decision, state: SessionState | None
    ) -> None:
        for observer in self.observers:
            try:
                observer.on_decision(request, decision, state)
            except Exception:
                log.exception("observer %r failed on decision %s", observer, decision.decision_id)

    # outcomes -----------------------------------------------------------------------------
    def report(self, result: ActionResult, *, agent_id: str) -> None:
        """Record what happened after a permitted call was dispatched."""
        if self.tracer is not None:
            self.tracer.report(result, lambda: self._report(result, agent_id))
        else:
            self._report(result, agent_id)

    def _report(self, result: ActionResult, agent_id: str) -> DecisionRecord:
        record = self.store.get_decision(result.decision_id)
        if record is None or record.request.get("agent_id") != agent_id:
            raise StoreError(
                f"no decision `{result.decision_id}` for this agent",
                hint="report results with the decision id the gate returned",
            )
        if self.audit is not None:
            self.audit.record_outcome(result, record.decision)
        unrecorded: TaintUnrecordedError | None = None
        for observer in self.observers:
            try:
                observer.on_result(result, record.decision)
            except TaintUnrecordedError as exc:
                # Fail closed: the session's taint is now unknown (its decisions are SILENCE), and
                # the reporter must learn that the outcome was not recorded, so it reports again.
                unrecorded = exc
            except Exception:
                log.exception("observer %r failed on result %s", observer, result.decision_id)
        if unrecorded is not None:
            raise unrecorded
        return record

    # replay -------------------------------------------------------------------------------
    def replay(self, decision_id: str) -> Replay:
        """Re-evaluate an archived request against its archived bundle."""
        record = self.store.get_decision(decision_id)
        if record is None:
            raise StoreError(f"no archived decision `{decision_id}`")
        if record.policy == NO_POLICY:
            raise ConfigError(
                f"decision `{decision_id}` was made without a policy; nothing to replay"
            )
        bundle = self.bundle_by_digest(record.policy)
        request = Request.model_validate(record.request)
        facts, provenance, scan = replay_inputs(SessionFacts.model_validate(record.facts))
        verdict = evaluate(bundle.compiled, request, facts, provenance=provenance, scan=scan)
        original = record.decision
        outcome = verdict.outcome
        shadow_outcome = None
        if verdict.shadow and outcome not in (Outcome.PERMIT, Outcome.SILENCE):
            shadow_outcome, outcome = outcome, Outcome.PERMIT
        replayed = {
            "outcome": outcome.value,
            "rule": verdict.rule,
            "reason": verdict.reason,
            "tier": verdict.tier.value if verdict.tier else None,
            "obligations": [o.model_dump(mode="json") for o in verdict.obligations],
            "shadow": verdict.shadow,
            "shadow_outcome": shadow_outcome.value if shadow_outcome else None,
            "policy": bundle.digest,
        }
        return Replay(original=original, replayed=replayed)


def _archived_facts(facts: SessionFacts, extra: dict[str, Any] | None) -> dict[str, Any]:
    archived = facts.model_dump(mode="json")
    if extra:
        archived["extra"] = {**archived["extra"], **extra}
    return archived


def _deny(rule: str, reason: str) -> Verdict:
    return Verdict(outcome=Outcome.DENY, rule=rule, reason=reason)
