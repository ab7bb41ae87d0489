"""``evaluate(compiled, request, facts) -> Verdict``: the pure decision function.

The steps, each of which can end the evaluation:

1. the tool must be in the inventory, else **SILENCE** ``unknown-tool`` (the gate cannot judge a
   surface it does not know);
2. the session's task must be declared and grant the tool, and the session's environment must be
   declared, else **DENY** ``scope``;
3. the arguments must fit the tool's parameter schema, else **DENY** ``constraint``;
4. an environment that denies the tool's tier answers **DENY** ``environment:<name>``;
5. every candidate rule (indexed at compile time by tool and environment, filtered here by task)
   whose condition holds is a match; an environment that requires approval for the tier adds an
   APPROVAL match ``environment:<name>``; DENY beats APPROVAL beats PERMIT; no match is the
   default. Any error while evaluating a condition - a missing key, a type error, a result that is
   not a bool - ends in **SILENCE** naming the rule and the expression: an error inside a permit
   rule must never permit, and is never skipped;
6. in strict mode an APPROVAL for an unattended session becomes a DENY.

No clock, no I/O, no randomness: the same compiled policy, request, facts, provenance and scan
findings always give an equal verdict, which is what makes replay possible. Conversion to the CEL
engine's values is the dominant cost, so only the fields that the candidate rules read are
converted, and only when some candidate has a condition.

::

    >>> verdict = evaluate(bundle.compiled, request, facts)  # doctest: +SKIP
    >>> verdict.outcome, verdict.rule  # doctest: +SKIP
    (<Outcome.APPROVAL: 'APPROVAL'>, 'large-transfer')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cel

from clearance.model import Outcome, Request, SessionFacts, Verdict
from clearance.policy.combine import PRECEDENCE, deciding
from clearance.policy.compile import (
    CompiledPolicy,
    CompiledRule,
    CompiledTool,
    Plan,
    build_verdict,
    required_approvers,
)
from clearance.policy.expressions import Condition
from clearance.policy.hooks import NO_PROVENANCE, PURE_FUNCTIONS, Provenance, provenance_functions
from clearance.policy.native import Inputs, within_domain

SCAN_DEFAULTS: Mapping[str, Any] = {"injection": 0.0, "secrets": [], "pii": [], "urls": []}
#: Sets of matches remembered per plan; beyond this, verdicts are built each time (a bound on
#: memory for policies whose rules match in very many combinations).
_COMBINED_LIMIT = 256


def request_to_cel(request: Request) -> dict[str, Any]:
    """The ``request`` variable as CEL sees it; an absent target is ``""``."""
    return {
        "tool": request.tool,
        "action": request.action,
        "target": request.target or "",
        "agent_id": request.agent_id,
        "session_id": request.session_id,
    }


def evaluate(
    compiled: CompiledPolicy,
    request: Request,
    facts: SessionFacts,
    *,
    provenance: Provenance | None = None,
    scan: Mapping[str, Any] | None = None,
) -> Verdict:
    """Decide one request against a compiled policy; see the module docstring for the steps."""
    tool = compiled.tools.get(request.tool)
    if tool is None:
        return Verdict.model_construct(
            outcome=Outcome.SILENCE,
            rule="unknown-tool",
            reason=f"tool `{request.tool}` is not in the policy's inventory",
            shadow=compiled.shadow,
        )
    refusal = _scope(compiled, tool, request, facts)
    if isinstance(refusal, Verdict):
        return refusal
    plan = refusal
    if plan.deny is not None:
        return plan.deny
    task = facts.task
    candidates = [r for r in plan.rules if r.tasks is None or task in r.tasks]
    inputs = ConditionInputs(compiled, plan, request, facts, provenance, scan)
    matches: list[CompiledRule] = []
    for rule in candidates:
        condition = rule.condition
        if condition is not None:
            try:
                result = inputs.run(condition)
            except Exception as exc:  # noqa: BLE001 - fail closed: any engine error is SILENCE
                return _error(tool, rule, f"{type(exc).__name__}: {exc}")
            if result is False:
                continue
            if result is not True:
                return _error(tool, rule, f"it returned {type(result).__name__}, not a bool")
        matches.append(rule)
    if plan.environment_approval is not None:
        matches.append(plan.environment_approval)
    verdict = _combine(compiled, tool, plan, matches)
    if verdict.outcome is Outcome.APPROVAL and compiled.strict and not facts.attended:
        return verdict.model_copy(
            update={
                "outcome": Outcome.DENY,
                "reason": f"strict mode denies approvals for unattended sessions: {verdict.reason}",
                "approvers": 0,
                "approver_group": None,
                "obligations": (),
            }
        )
    return verdict


def _scope(
    compiled: CompiledPolicy, tool: CompiledTool, request: Request, facts: SessionFacts
) -> Plan | Verdict:
    """The tool's plan for this session, or the DENY that refuses it before any rule."""
    granted = compiled.tasks.get(facts.task)
    reason = None
    if granted is None:
        reason = f"session task `{facts.task}` is not declared in the policy"
    elif request.tool not in granted:
        reason = f"tool `{request.tool}` is not granted to task `{facts.task}`"
    plan = tool.plans.get(facts.environment.value)
    if reason is None and plan is None:
        reason = f"environment `{facts.environment.value}` is not declared in the policy"
    if reason is not None or plan is None:
        return _refuse(tool, "scope", reason or "", None)
    violation = tool.args.check(request.args)
    if violation is not None:
        return _refuse(tool, "constraint", violation.message, tool.location)
    return plan


# Verdicts built during evaluation hold values the compiler already validated (tiers, rule ids,
# locations) and text made here: they are constructed without a second validation.
def _refuse(tool: CompiledTool, rule: str, reason: str, location: str | None) -> Verdict:
    return Verdict.model_construct(
        outcome=Outcome.DENY,
        rule=rule,
        reason=reason,
        tier=tool.tier,
        shadow=tool.shadow,
        location=location,
    )


def _error(tool: CompiledTool, rule: CompiledRule, detail: str) -> Verdict:
    source = rule.condition.source if rule.condition is not None else ""
    return Verdict.model_construct(
        outcome=Outcome.SILENCE,
        rule=rule.id,
        reason=f"condition of rule `{rule.id}` could not be evaluated ({detail}) in `{source}`",
        tier=tool.tier,
        shadow=tool.shadow,
        location=rule.location,
    )


def _combine(
    compiled: CompiledPolicy, tool: CompiledTool, plan: Plan, matches: list[CompiledRule]
) -> Verdict:
    winner = deciding(matches)
    if winner is None:
        return plan.default
    rank = PRECEDENCE[winner.outcome]
    same = [m for m in matches if PRECEDENCE[m.outcome] == rank]
    if len(same) == 1:
        return plan.verdicts[winner.id]
    key = tuple(m.id for m in same)
    known = plan.combined.get(key)
    if known is not None:
        return known
    verdict = build_verdict(
        winner.outcome,
        same,
        tool_obligations=tool.obligations,
        approvers=required_approvers(compiled.approvals, tool.tier, max(m.approvers for m in same)),
        group=next((m.group for m in same if m.group), compiled.approvals.default_group),
        tier=tool.tier,
        shadow=tool.shadow,
    )
    if len(plan.combined) < _COMBINED_LIMIT:
        plan.combined[key] = verdict
    return verdict


def _subset(value: Mapping[str, Any], root: str, plan: Plan) -> Mapping[str, Any]:
    if root in plan.needs.whole:
        return value
    return {k: value[k] for k in plan.needs.fields.get(root, ()) if k in value}


class ConditionInputs:
    """The inputs of one decision's conditions, each form built on first use.

    A condition with a Python form (``clearance.policy.native``) reads the request's values as
    they are; when its closures leave their domain, or the values are outside it from the start,
    the CEL engine decides, given only the roots and fields the candidate rules read.
    """

    __slots__ = (
        "_compiled",
        "_context",
        "_facts",
        "_native",
        "_outside",
        "_plan",
        "_provenance",
        "_request",
        "_scan",
        "_variables",
    )

    def __init__(
        self,
        compiled: CompiledPolicy,
        plan: Plan,
        request: Request,
        facts: SessionFacts,
        provenance: Provenance | None,
        scan: Mapping[str, Any] | None,
    ) -> None:
        self._compiled = compiled
        self._plan = plan
        self._request = request
        self._facts = facts
        self._provenance = provenance
        self._scan = scan
        self._variables: dict[str, Any] | None = None
        self._native: Inputs | None = None
        self._outside = False  # the values are outside the Python forms' domain
        self._context: cel.Context | None = None

    def run(self, condition: Condition) -> Any:
        """The condition's value; raises what the engine raises."""
        native = condition.native
        if native is not None and not self._outside:
            inputs = self._native or self._native_inputs()
            if inputs is not None:
                try:
                    return native(inputs)
                except Exception:  # noqa: BLE001, S110 - outside the subset's domain: the engine decides
                    pass
        if self._context is None:
            variables = self._roots()
            plan = self._plan
            self._context = cel.Context(
                variables={root: _subset(value, root, plan) for root, value in variables.items()},
                functions=self._functions(),
            )
        return condition.program.execute(self._context)

    def _roots(self) -> dict[str, Any]:
        if self._variables is None:
            roots = self._plan.roots
            request = self._request
            variables: dict[str, Any] = {}
            if "args" in roots:
                variables["args"] = request.args
            if "request" in roots:
                variables["request"] = request_to_cel(request)
            if "session" in roots:
                variables["session"] = self._facts.to_cel()
            if "scan" in roots:
                variables["scan"] = {**SCAN_DEFAULTS, **(self._scan or {})}
            self._variables = variables
        return self._variables

    def _native_inputs(self) -> Inputs | None:
        variables = self._roots()
        needs = self._plan.needs
        if not within_domain(variables, needs.whole, needs.fields):
            self._outside = True
            return None
        self._native = (variables, self._functions())
        return self._native

    def _functions(self) -> dict[str, Callable[..., Any]]:
        compiled = self._compiled
        functions: dict[str, Callable[..., Any]] = {}
        hooks: dict[str, Callable[[Any], Any]] | None = None
        for name in self._plan.needs.functions:
            found = compiled.functions.get(name) or PURE_FUNCTIONS.get(name)
            if found is None:
                if hooks is None:
                    hooks = provenance_functions(
                        self._provenance or NO_PROVENANCE, compiled.in_policy_data
                    )
                found = hooks[name]
            functions[name] = found
        return functions
