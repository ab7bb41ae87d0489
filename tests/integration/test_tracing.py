"""Decision spans on a real gate, captured by the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from clearance.errors import StoreError
from clearance.gate.gate import Gate
from clearance.gate.tracing import DecisionSpans
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.model.session import Session

SECRET = "AKIAQWERTYUIOPASDFGH"


@pytest.fixture
def spans(gate: Gate) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gate.tracer = DecisionSpans(provider)
    return exporter


def _req(session: Session, tool: str, **args: object) -> Request:
    return Request(
        agent_id=session.agent_id,
        session_id=session.session_id,
        tool=tool,
        args=args,
        reasoning=f"the key is {SECRET}",
    )


def _everything(span: ReadableSpan) -> str:
    """All a backend would receive of one span, as text."""
    return json.dumps(json.loads(span.to_json()))


def test_one_span_per_decision_with_the_guardrail_attributes(
    gate: Gate, spans: InMemorySpanExporter
) -> None:
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    permitted = gate.decide(_req(s, "read_account", account_id="acc-1"))
    denied = gate.decide(_req(s, "transfer_funds", amount=10.0, to_account="acc-1"))
    (first, second) = spans.get_finished_spans()
    assert first.name == "apply_guardrail clearance"
    assert first.kind is SpanKind.INTERNAL
    assert gate.bundle is not None
    assert dict(first.attributes or {}) == {
        "gen_ai.operation.name": "apply_guardrail",
        "gen_ai.guardrail.component.name": "clearance",
        "gen_ai.guardrail.source": "tool_input",
        "gen_ai.tool.name": "read_account",
        "gen_ai.agent.id": "fin-1",
        "gen_ai.conversation.id": s.session_id,
        "gen_ai.guardrail.policy.id": gate.bundle.digest,
        "gen_ai.guardrail.result.type": "outcome",
        "gen_ai.guardrail.result.value": "PERMIT",
        "gen_ai.guardrail.result.reason": "reads",
        "clearance.action": "call",
        "clearance.decision.id": permitted.decision_id,
        "clearance.rule": "reads",
        "clearance.tier": "read-only",
        "clearance.shadow": False,
        "clearance.request.digest": permitted.request_digest,
    }
    assert first.status.status_code is StatusCode.UNSET
    attrs = second.attributes or {}
    assert attrs["gen_ai.guardrail.result.value"] == "DENY"
    assert attrs["clearance.rule"] == denied.rule == "scope"
    assert "error.type" not in attrs  # a denial is the control working, not an error


def test_silence_is_an_error_span_naming_its_cause(gate: Gate, spans: InMemorySpanExporter) -> None:
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    assert gate.decide(_req(s, "launch_rocket")).outcome is Outcome.SILENCE
    (span,) = spans.get_finished_spans()
    assert (span.attributes or {})["gen_ai.guardrail.result.value"] == "SILENCE"
    assert (span.attributes or {})["error.type"] == "unknown-tool"
    assert span.status.status_code is StatusCode.ERROR


def test_the_decision_span_is_a_child_of_the_callers_tool_span(
    gate: Gate, spans: InMemorySpanExporter
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    framework = provider.get_tracer("agent-framework")
    with framework.start_as_current_span("execute_tool read_account") as parent:
        gate.decide(_req(s, "read_account", account_id="acc-1"))
    child = next(x for x in spans.get_finished_spans() if x.name == "apply_guardrail clearance")
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id
    assert child.context is not None
    assert child.context.trace_id == parent.get_span_context().trace_id


def test_secrets_in_args_reasoning_and_output_never_reach_a_span(
    gate: Gate, spans: InMemorySpanExporter
) -> None:
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    d = gate.decide(_req(s, "read_account", account_id=f"acc-1 {SECRET}"))
    gate.decide(_req(s, "read_account", account_id="x" * 3, note=SECRET))  # constraint refusal
    gate.report(
        ActionResult(decision_id=d.decision_id, success=False, output=SECRET, error=SECRET),
        agent_id="fin-1",
    )
    finished = spans.get_finished_spans()
    assert len(finished) == 3
    for span in finished:
        assert SECRET not in _everything(span)
        assert "acc-1" not in _everything(span)


def test_reported_outcome_span_names_tool_and_result(
    gate: Gate, spans: InMemorySpanExporter
) -> None:
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    d = gate.decide(_req(s, "read_account", account_id="acc-1"))
    gate.report(
        ActionResult(decision_id=d.decision_id, success=True, output_size=42), agent_id="fin-1"
    )
    outcome = spans.get_finished_spans()[-1]
    attrs = outcome.attributes or {}
    assert attrs["gen_ai.guardrail.source"] == "tool_output"
    assert attrs["gen_ai.tool.name"] == "read_account"
    assert attrs["gen_ai.guardrail.result.value"] == "success"
    assert attrs["clearance.decision.id"] == d.decision_id
    assert attrs["clearance.result.output_size"] == 42
    with pytest.raises(StoreError):
        gate.report(ActionResult(decision_id="01JNOPE", success=True), agent_id="fin-1")
    refused = spans.get_finished_spans()[-1]
    assert refused.status.status_code is StatusCode.ERROR
    assert (refused.attributes or {})["error.type"] == "unknown-decision"


class _BrokenExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise ConnectionError("collector unreachable")


class _BrokenProcessor(SpanProcessor):
    def on_start(self, span: object, parent_context: object = None) -> None:
        raise RuntimeError("processor crashed on start")

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("processor crashed on end")


@pytest.mark.parametrize("broken", ["exporter", "processor"])
def test_a_failing_tracing_pipeline_never_changes_a_decision(
    gate: Gate, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    provider = TracerProvider()
    if broken == "exporter":
        provider.add_span_processor(SimpleSpanProcessor(_BrokenExporter()))
    else:
        provider.add_span_processor(_BrokenProcessor())
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    untraced = gate.decide(_req(s, "read_account", account_id="acc-1"))
    gate.tracer = DecisionSpans(provider)
    traced = [
        gate.decide(_req(s, "read_account", account_id="acc-1")),
        gate.decide(_req(s, "transfer_funds", amount=10.0, to_account="acc-1")),
        gate.decide(_req(s, "launch_rocket")),
    ]
    assert [d.outcome for d in traced] == [Outcome.PERMIT, Outcome.DENY, Outcome.SILENCE]
    assert (traced[0].rule, traced[0].policy) == (untraced.rule, untraced.policy)
    state = gate.store.session_state(s.session_id)
    assert state is not None
    assert state.calls == {"read_account": 2}  # each traced decision ran exactly once
    gate.report(ActionResult(decision_id=traced[0].decision_id, success=True), agent_id="fin-1")
    assert gate.store.get_decision(traced[0].decision_id) is not None


def _initialised(tmp_path: Path) -> Path:
    from tests.approvals_kit import APPROVAL_POLICY
    from typer.testing import CliRunner

    from clearance.cli.main import app

    policy = tmp_path / "policy.yaml"
    policy.write_text(APPROVAL_POLICY, "utf-8")
    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["init", "--data-dir", str(data), "--policy", str(policy)])
    assert result.exit_code == 0, result.output
    return data


_DECIDE_ONCE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from clearance.cli.runtime import open_runtime
    from clearance.model.request import Request

    rt = open_runtime(Path(sys.argv[1]))
    try:
        s = rt.gate.open_session(agent_id="fin-1", task="payments", environment="staging")
        d = rt.gate.decide(Request(agent_id="fin-1", session_id=s.session_id,
                                   tool="read_account", args={"account_id": sys.argv[2]}))
        print("DECISION", d.outcome.value, file=sys.stderr)
    finally:
        rt.close()
    """
)


def _run(data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLEARANCE_"))}
    return subprocess.run(
        [sys.executable, "-c", _DECIDE_ONCE, str(data), SECRET],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_clearance_otel_exports_through_the_sdk_environment(tmp_path: Path) -> None:
    data = _initialised(tmp_path)
    traced = _run(
        data, CLEARANCE_OTEL="1", OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="gate-eu"
    )
    assert traced.returncode == 0, traced.stderr
    assert "DECISION PERMIT" in traced.stderr
    assert '"name": "apply_guardrail clearance"' in traced.stdout
    assert '"gen_ai.guardrail.result.value": "PERMIT"' in traced.stdout
    assert '"service.name": "gate-eu"' in traced.stdout
    assert SECRET not in traced.stdout
    untraced = _run(data, OTEL_TRACES_EXPORTER="console")
    assert untraced.returncode == 0, untraced.stderr
    assert "apply_guardrail" not in untraced.stdout  # tracing is off unless asked for
    missing = _run(data, CLEARANCE_OTEL="1", OTEL_TRACES_EXPORTER="zipkin-v9")
    assert missing.returncode != 0
    assert "no OpenTelemetry trace exporter named `zipkin-v9`" in missing.stderr
    assert "DECISION" not in missing.stderr  # refused at startup, before any decision


def test_tracing_is_off_unless_asked_and_refused_without_the_extra(tmp_path: Path) -> None:
    from clearance.cli.otel import tracing_requested

    assert not tracing_requested({})
    assert not tracing_requested({"CLEARANCE_OTEL": "0"})
    assert tracing_requested({"CLEARANCE_OTEL": " True "})
    script = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # the otel extra is not installed
        from clearance.cli.otel import enable_tracing
        from clearance.errors import ConfigError
        try:
            enable_tracing(object(), {"CLEARANCE_OTEL": "1"})
        except ConfigError as exc:
            print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "`CLEARANCE_OTEL` is set but OpenTelemetry is not installed" in out.stdout
    assert "clearance[otel]" in out.stdout
