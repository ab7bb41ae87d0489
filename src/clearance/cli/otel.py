"""Turn on decision tracing for a gate process from the environment (``CLEARANCE_OTEL=1``).

Example::

    CLEARANCE_OTEL=1 OTEL_TRACES_EXPORTER=otlp OTEL_SERVICE_NAME=gate-eu clearance serve

Everything else is the standard OpenTelemetry SDK environment: ``OTEL_TRACES_EXPORTER`` picks the
exporter by its registered name (``otlp`` by default, ``console``, ``none``; ``otlp`` needs the
``opentelemetry-exporter-otlp`` package), ``OTEL_EXPORTER_OTLP_*`` configure it,
``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` name the process (``clearance`` when unset),
``OTEL_BSP_*`` tune the batch processor, and ``OTEL_TRACES_SAMPLER`` samples. When the process
already has a tracer provider (started under ``opentelemetry-instrument``, or embedding code set
one), clearance uses it and configures nothing.

Spans leave through a batch processor on its own thread, so a slow or failing collector never
delays or changes a decision. A misconfiguration (extra not installed, unknown exporter name) is a
``ConfigError`` at startup: a gate asked to trace that cannot is refused, not silently untraced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from clearance.errors import ConfigError, Location

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from clearance.gate.gate import Gate

ENABLE: str = "CLEARANCE_OTEL"
_TRUE = frozenset({"1", "true", "yes", "on"})
_EXPORTERS_GROUP = "opentelemetry_traces_exporter"


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """True when ``CLEARANCE_OTEL`` is set to 1, true, yes or on."""
    return environ.get(ENABLE, "").strip().lower() in _TRUE


def enable_tracing(gate: Gate, environ: Mapping[str, str]) -> Callable[[], None] | None:
    """Give ``gate`` a tracer when the environment asks for one; return the flush-and-stop hook."""
    if not tracing_requested(environ):
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from clearance.gate.tracing import DecisionSpans
    except ImportError as exc:
        raise ConfigError(
            f"`{ENABLE}` is set but OpenTelemetry is not installed ({exc.name})",
            hint="install the extra: pip install 'clearance[otel]', or unset the variable",
        ) from None
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        gate.tracer = DecisionSpans()  # the process's own provider: theirs to flush
        return None
    exporters: list[SpanExporter] = [
        _exporter(name) for name in _exporter_names(environ.get("OTEL_TRACES_EXPORTER", "otlp"))
    ]
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "clearance"}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # framework spans (MCP, HTTP) join the same traces
    gate.tracer = DecisionSpans(provider)
    return provider.shutdown


def _exporter_names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    return [] if names == ["none"] else names


def _exporter(name: str) -> SpanExporter:
    """The exporter registered under ``name`` by an installed OpenTelemetry package."""
    found = entry_points(group=_EXPORTERS_GROUP, name=name)
    if not found:
        known = sorted(e.name for e in entry_points(group=_EXPORTERS_GROUP))
        raise ConfigError(
            f"no OpenTelemetry trace exporter named `{name}` is installed",
            location=Location(key="OTEL_TRACES_EXPORTER"),
            hint=f"installed: {', '.join(known) or 'none'}; for `otlp` install "
            "opentelemetry-exporter-otlp",
        )
    exporter_class = next(iter(found)).load()
    exporter: SpanExporter = exporter_class()
    return exporter
