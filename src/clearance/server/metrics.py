"""Prometheus metrics of the HTTP service, served at ``/metrics`` with any other registries.

The gate-level series (``clearance_decisions_total``, ``clearance_policy_info``, kill switch and
breaker state) belong to the control plane's ``GateMetrics``; the composition root passes its
registry in ``GateServices.metrics`` and ``/metrics`` renders both. The series here are what
only the HTTP layer sees, named ``clearance_http_*`` so the two never collide.

Labels come only from closed sets (outcome, rule ids of the active policy and the gate's built-in
reasons, tools of the policy's inventory, tier, environment, refusal reason): a tool name that is
not in the inventory becomes ``_unknown`` and a rule id that is not known becomes ``_other``, so
an agent cannot grow the series count by sending made-up names. Each app gets its own registry,
so two apps in one process (tests, benchmarks) do not share counters.
"""

from __future__ import annotations

from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter, Histogram

from clearance.model.decision import Decision

UNKNOWN_TOOL = "_unknown"
OTHER_RULE = "_other"

# The gate's built-in rule names (gate.py and DESIGN section 3); policy rule ids are added per call.
BUILTIN_RULES = frozenset(
    {
        "scope",
        "default",
        "session",
        "kill-switch",
        "unknown-tool",
        "request-too-large",
        "idempotency-conflict",
        "no-policy",
        "invalid-token",
        "approvals",
        "deadline",
        "audit",
        "store",
        "error",
        "drain",
    }
)

# Sub-millisecond to seconds: the decision path is usually well under 5 ms.
_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
    2.5,
)


class ServiceMetrics:
    """The service's counters, gauges and histograms on a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter(
            "clearance_http_decisions",
            "Decisions answered over HTTP.",
            ("outcome", "rule", "tool", "tier", "env", "shadow"),
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "clearance_http_decide_duration_seconds",
            "Time spent in Gate.decide() per HTTP decision.",
            ("outcome",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.silences = Counter(
            "clearance_http_silence",
            "SILENCE decisions by cause (the deciding built-in rule).",
            ("cause",),
            registry=self.registry,
        )
        self.refusals = Counter(
            "clearance_http_refusals",
            "Requests refused before reaching a part: authentication, authorization, CSRF, rate.",
            ("reason",),
            registry=self.registry,
        )
        # Children of the per-decision series by label values: every HTTP decision updates them,
        # and a plain dict lookup costs a fraction of ``labels()`` (keyword parsing and a lock).
        # Bounded like the series themselves: the labels come from closed sets.
        self._children: dict[tuple[str, ...], tuple[Counter, Histogram, Counter | None]] = {}

    def observe_decision(
        self,
        decision: Decision,
        *,
        tool: str,
        environment: str,
        seconds: float,
        inventory: Collection[str],
        policy_rules: Collection[str],
    ) -> None:
        """Count one decision with bounded labels."""
        rule = _rule_label(decision.rule, policy_rules)
        outcome = decision.outcome.value
        key = (
            outcome,
            rule,
            tool if tool in inventory else UNKNOWN_TOOL,
            decision.tier.value if decision.tier is not None else "",
            environment,
            "true" if decision.shadow else "false",
        )
        children = self._children.get(key)
        if children is None:
            children = (
                self.decisions.labels(*key),
                self.decision_seconds.labels(outcome),
                self.silences.labels(rule) if outcome == "SILENCE" else None,
            )
            self._children[key] = children
        count, latency, silence = children
        count.inc()
        latency.observe(seconds)
        if silence is not None:
            silence.inc()


def _rule_label(rule: str, policy_rules: Collection[str]) -> str:
    """A rule id from a closed set: built-ins, the policy's ids, or a family for prefixed ids."""
    if rule in BUILTIN_RULES or rule in policy_rules:
        return rule
    family = rule.split(":", 1)[0]
    return family if family in _RULE_FAMILIES else OTHER_RULE


# Built-in rules that carry an id after a colon (``approval:<id>``, ``breaker:<name>``).
_RULE_FAMILIES = frozenset({"approval", "breaker", "break-glass"})
