"""OpenTelemetry spans for decisions and reported outcomes, named by the GenAI conventions.

Example::

    from clearance.gate.tracing import DecisionSpans

    gate.tracer = DecisionSpans()            # spans go to the global tracer provider
    gate.tracer = DecisionSpans(provider)    # or to a given one (tests: an in-memory exporter)

Each ``Gate.decide`` becomes one span ``apply_guardrail clearance`` (``gen_ai.guardrail.source``
``tool_input``) and each ``Gate.report`` one with source ``tool_output``. When the caller already
runs inside a span (a framework's ``execute_tool`` span, the MCP server's ``tools/call`` span) the
decision span is its child. The command line turns this on with ``CLEARANCE_OTEL=1``
(``clearance.cli.otel``); without it the gate has no tracer and the decide path does not change.

What a span never holds: argument values, the agent's reasoning, the human reason sentence (it
can quote arguments) or a tool's output or error text. It holds ids, digests, names from the tool
inventory and outcome enumerations only, so tracing cannot become a side channel for what the
audit log masks.

Tracing cannot change a decision: ``run`` is called exactly once whatever the tracer does, and
every failure of the tracing SDK (a processor or exporter that raises) is logged and dropped.
The GenAI names are still in development upstream, so they are spelled out once, here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import Token
from typing import Final

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.store.protocol import DecisionRecord

log = logging.getLogger("clearance.tracing")

INSTRUMENTATION: Final = "clearance"
COMPONENT: Final = "clearance"
SPAN_NAME: Final = f"apply_guardrail {COMPONENT}"

# GenAI semantic-convention attribute names (open-telemetry/semantic-conventions-genai).
OPERATION: Final = "gen_ai.operation.name"
GUARDRAIL_COMPONENT: Final = "gen_ai.guardrail.component.name"
GUARDRAIL_SOURCE: Final = "gen_ai.guardrail.source"
POLICY_ID: Final = "gen_ai.guardrail.policy.id"
RESULT_TYPE: Final = "gen_ai.guardrail.result.type"
RESULT_VALUE: Final = "gen_ai.guardrail.result.value"
RESULT_REASON: Final = "gen_ai.guardrail.result.reason"
TOOL_NAME: Final = "gen_ai.tool.name"
AGENT_ID: Final = "gen_ai.agent.id"
CONVERSATION_ID: Final = "gen_ai.conversation.id"
ERROR_TYPE: Final = "error.type"
# clearance's own attributes.
DECISION_ID: Final = "clearance.decision.id"
RULE: Final = "clearance.rule"
TIER: Final = "clearance.tier"
SHADOW: Final = "clearance.shadow"
SHADOW_OUTCOME: Final = "clearance.shadow_outcome"
REQUEST_DIGEST: Final = "clearance.request.digest"
APPROVAL_ID: Final = "clearance.approval.id"
ACTION: Final = "clearance.action"
OUTPUT_SIZE: Final = "clearance.result.output_size"

AttributeValue = str | bool | int


def _decision_attributes(decision: Decision) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {
        POLICY_ID: decision.policy,
        RESULT_TYPE: "outcome",
        RESULT_VALUE: decision.outcome.value,
        # The rule id is a low-cardinality name from the policy; the reason sentence is not.
        RESULT_REASON: decision.rule,
        DECISION_ID: decision.decision_id,
        RULE: decision.rule,
        SHADOW: decision.shadow,
        REQUEST_DIGEST: decision.request_digest,
    }
    if decision.tier is not None:
        attrs[TIER] = decision.tier.value
    if decision.shadow_outcome is not None:
        attrs[SHADOW_OUTCOME] = decision.shadow_outcome.value
    if decision.approval_id is not None:
        attrs[APPROVAL_ID] = decision.approval_id
    if decision.outcome is Outcome.SILENCE:
        attrs[ERROR_TYPE] = decision.rule
    return attrs


class DecisionSpans:
    """The gate's ``Tracer``: one span per decision and one per reported outcome."""

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(INSTRUMENTATION, tracer_provider=provider)

    def decide(self, request: Request, run: Callable[[Request], Decision]) -> Decision:
        """Return ``run(request)`` inside a span carrying the request's names and the decision."""
        span = self._start(
            {
                GUARDRAIL_SOURCE: "tool_input",
                TOOL_NAME: request.tool,
                ACTION: request.action,
                AGENT_ID: request.agent_id,
                CONVERSATION_ID: request.session_id,
            }
        )
        token = _attach(span)
        decision: Decision | None = None
        try:
            decision = run(request)
            return decision
        finally:
            _detach(token)
            if decision is None:
                _end(span, {ERROR_TYPE: "exception"}, "the decision raised")
            elif decision.outcome is Outcome.SILENCE:
                _end(span, _decision_attributes(decision), f"SILENCE ({decision.rule})")
            else:
                _end(span, _decision_attributes(decision), None)

    def report(self, result: ActionResult, run: Callable[[], DecisionRecord]) -> None:
        """Call ``run()`` inside a span carrying the outcome (never the output or error text)."""
        span = self._start(
            {
                GUARDRAIL_SOURCE: "tool_output",
                DECISION_ID: result.decision_id,
                OUTPUT_SIZE: result.output_size,
            }
        )
        token = _attach(span)
        record: DecisionRecord | None = None
        try:
            record = run()
        finally:
            _detach(token)
            if record is None:
                _end(span, {ERROR_TYPE: "unknown-decision"}, "the outcome was not recorded")
            else:
                attrs: dict[str, AttributeValue] = {
                    RESULT_TYPE: "tool_result",
                    RESULT_VALUE: "success" if result.success else "failure",
                    POLICY_ID: record.policy,
                }
                for key, name in ((TOOL_NAME, "tool"), (AGENT_ID, "agent_id")):
                    value = record.request.get(name)
                    if isinstance(value, str):
                        attrs[key] = value
                session = record.request.get("session_id")
                if isinstance(session, str):
                    attrs[CONVERSATION_ID] = session
                if not result.success:
                    attrs[ERROR_TYPE] = "tool_error"
                _end(span, attrs, None)

    def _start(self, attributes: dict[str, AttributeValue]) -> Span | None:
        try:
            return self._tracer.start_span(
                SPAN_NAME,
                kind=SpanKind.INTERNAL,
                attributes={
                    OPERATION: "apply_guardrail",
                    GUARDRAIL_COMPONENT: COMPONENT,
                    **attributes,
                },
            )
        except Exception:
            log.exception("could not start a trace span; the decision goes on untraced")
            return None


def _attach(span: Span | None) -> Token[Context] | None:
    if span is None:
        return None
    try:
        return context.attach(trace.set_span_in_context(span))
    except Exception:
        log.exception("could not make the decision span current")
        return None


def _detach(token: Token[Context] | None) -> None:
    if token is None:
        return
    try:
        context.detach(token)
    except Exception:
        log.exception("could not restore the trace context")


def _end(span: Span | None, attributes: dict[str, AttributeValue], error: str | None) -> None:
    """Set the final attributes and end the span; a failing SDK is logged, never raised."""
    if span is None:
        return
    try:
        span.set_attributes(attributes)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()
    except Exception:
        log.exception("could not end a trace span")
