"""What OpenTelemetry decision spans cost on the decide path, against the same gate untraced.

    python bench/tracing.py [--requests N] [--rounds R] [--quick]

One SQLite gate without audit (the fastest decide path, so the largest relative overhead), the
FinanceApp policy and the request mix of ``bench/gate.py``, decided in interleaved rounds:

* ``Gate._decide_closed`` called directly: the pipeline without the tracer hook (the baseline);
* ``tracer=None``: tracing off, the default: what the hook itself costs;
* ``DecisionSpans`` over the API's no-op provider: the extra installed, no SDK configured;
* ``DecisionSpans`` over an SDK ``TracerProvider`` with a ``BatchSpanProcessor`` and an exporter
  that drops what it receives (a collector that is never the bottleneck): tracing fully on.

Every decision is checked against the outcome the policy prescribes; the traced run also checks
that one span was exported per decision.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gate import _check, _requests
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NoOpTracerProvider

from clearance.cli.commands.core import example_policy_text
from clearance.gate.gate import Gate
from clearance.gate.hooks import Tracer
from clearance.gate.tracing import DecisionSpans
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.policy import load_policy
from clearance.store import open_store


class CountingExporter(SpanExporter):
    """Counts and drops spans: the exporter end of the pipeline costs nothing measurable."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


BYPASS = "no hook (_decide_closed), baseline"


def _round(
    gate: Gate, mode: str, tracer: Tracer | None, reqs: list[tuple[Request, Outcome]]
) -> list[float]:
    gate.tracer = tracer
    decide = gate._decide_closed if mode == BYPASS else gate.decide
    lat = []
    for req, want in reqs:
        t = time.perf_counter()
        _check(decide(req).outcome, want)
        lat.append(time.perf_counter() - t)
    return lat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smoke run with few requests")
    args = parser.parse_args()
    n, rounds = (100, 1) if args.quick else (args.requests, args.rounds)
    exporter = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    modes: dict[str, Tracer | None] = {
        BYPASS: None,
        "tracing off (tracer=None)": None,
        "DecisionSpans, no-op provider": DecisionSpans(NoOpTracerProvider()),
        "DecisionSpans, SDK + batch processor": DecisionSpans(provider),
    }
    with tempfile.TemporaryDirectory() as tmp:
        gate = Gate(open_store(f"sqlite:///{Path(tmp) / 'bench.db'}"))
        gate.activate(load_policy(example_policy_text(), source_name="financeapp.yaml"), by="bench")
        reqs = _requests(gate, n)
        _round(gate, BYPASS, None, reqs[: min(n, 200)])  # warm caches and the SQLite pages
        lat: dict[str, list[float]] = {name: [] for name in modes}
        for _ in range(rounds):
            for name, tracer in modes.items():
                lat[name].extend(_round(gate, name, tracer, reqs))
        provider.shutdown()
        gate.store.close()
    if exporter.count != n * rounds:
        raise SystemExit(f"{exporter.count} spans exported for {n * rounds} traced decisions")
    base = statistics.median(lat[BYPASS])
    for name, values in lat.items():
        p50 = statistics.median(values)
        print(f"{name:40} p50 {p50 * 1e6:8.1f} us  ratio {p50 / base:5.2f}x")


if __name__ == "__main__":
    main()
