"""Policy test coverage: which rules no case exercised, which constraint edges no case probed.

``clearance policy test POLICY CASES... --coverage`` reports, for the cases run against POLICY:

* **rules** - every rule of the policy, and every environment that requires approval for or
  denies a tier some tool has (``environment:<name>``, the way verdicts name them). A rule is
  *exercised* when it decided at least one case (it is the verdict's ``rule``); a rule whose
  condition held in some case but that never decided one (a higher-precedence rule always won) is
  listed as *outranked* - a test that deleting the rule would not fail;
* **constraint edges** - every bound of every tool's parameter schema (``clearance.policy.edges``):
  just below ``min``, exactly at ``min``, past ``max_length``, outside the ``pattern``... An edge is
  *probed* by a case whose arguments fail on that bound first (or, for ``at-min``/``at-max``, sit
  on it and pass). Cases refused by scope never reach the schema and probe nothing.

Pure: works on requests, facts and verdicts; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clearance.model import Request, SessionFacts, Verdict
from clearance.policy.compile import CompiledPolicy
from clearance.policy.edges import Edge, probed, tool_edges
from clearance.policy.evaluate import ConditionInputs, _scope
from clearance.policy.hooks import Provenance

#: Verdict rules decided before the parameter schema is read: their cases probe no edge.
_BEFORE_SCHEMA = frozenset({"scope", "unknown-tool"})


def matching_rules(
    compiled: CompiledPolicy,
    request: Request,
    facts: SessionFacts,
    *,
    provenance: Provenance | None = None,
    scan: Mapping[str, Any] | None = None,
) -> tuple[str, ...]:
    """Ids of every rule whose condition holds for this request, whether or not it decided.

    Mirrors ``evaluate``: nothing matches when scope, the schema or an environment's deny tier
    refuses first; a condition that cannot be evaluated counts as not matching here.
    """
    tool = compiled.tools.get(request.tool)
    if tool is None:
        return ()
    plan = _scope(compiled, tool, request, facts)
    if isinstance(plan, Verdict) or plan.deny is not None:
        return ()
    found: list[str] = []
    inputs = ConditionInputs(compiled, plan, request, facts, provenance, scan)
    for rule in plan.rules:
        if rule.tasks is not None and facts.task not in rule.tasks:
            continue
        if rule.condition is not None:
            try:
                result = inputs.run(rule.condition)
            except Exception:  # noqa: BLE001, S112 - an erroring condition simply did not match
                continue
            if result is not True:
                continue
        found.append(rule.id)
    if plan.environment_approval is not None:
        found.append(plan.environment_approval.id)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Observed:
    """What coverage needs from one case: its request, the verdict, the rules that matched."""

    request: Request
    verdict: Verdict
    matched: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleCoverage:
    """One rule: where it is, how many cases it decided and in how many its condition held."""

    id: str
    location: str
    decided: int
    matched: int

    @property
    def exercised(self) -> bool:
        """True when the rule decided at least one case."""
        return self.decided > 0


@dataclass(frozen=True, slots=True)
class EdgeCoverage:
    """One constraint edge, its description and how many cases probed it."""

    edge: Edge
    description: str
    short: str
    probes: int


@dataclass(frozen=True)
class Coverage:
    """The coverage of one policy by a set of cases."""

    cases: int
    rules: tuple[RuleCoverage, ...]
    edges: tuple[EdgeCoverage, ...]

    @property
    def unexercised(self) -> list[RuleCoverage]:
        """Rules no case was decided by."""
        return [r for r in self.rules if not r.exercised]

    @property
    def outranked(self) -> list[RuleCoverage]:
        """Unexercised rules whose condition did hold in some case."""
        return [r for r in self.rules if not r.exercised and r.matched]

    @property
    def unprobed(self) -> list[EdgeCoverage]:
        """Edges no case probed."""
        return [e for e in self.edges if not e.probes]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for ``policy test --json --coverage``."""
        return {
            "cases": self.cases,
            "rules": [
                {"id": r.id, "location": r.location, "decided": r.decided, "matched": r.matched}
                for r in self.rules
            ],
            "unexercised_rules": [r.id for r in self.unexercised],
            "edges": [
                {"edge": e.edge.id, "description": e.description, "probes": e.probes}
                for e in self.edges
            ],
            "unprobed_edges": [e.edge.id for e in self.unprobed],
        }

    def lines(self) -> list[str]:
        """The human report, one line each."""
        rules_hit = len(self.rules) - len(self.unexercised)
        edges_hit = len(self.edges) - len(self.unprobed)
        out = [
            f"coverage ({self.cases} cases): {rules_hit} of {len(self.rules)} rules exercised, "
            f"{edges_hit} of {len(self.edges)} constraint edges probed"
        ]
        if self.unexercised:
            out.append("rules no case exercised:")
            for rule in self.unexercised:
                why = (
                    f"matched {rule.matched} case(s), always outranked"
                    if rule.matched
                    else "never matched"
                )
                out.append(f"  {rule.id} ({rule.location}): {why}")
        if self.unprobed:
            out.append("constraint edges never probed:")
            groups: dict[str, list[str]] = {}
            for e in self.unprobed:
                where = f"{e.edge.tool}.{e.edge.param}" if e.edge.param else e.edge.tool
                groups.setdefault(where, []).append(e.short)
            out.extend(f"  {where}: {', '.join(kinds)}" for where, kinds in groups.items())
        return out


def _rule_ids(compiled: CompiledPolicy) -> list[tuple[str, str]]:
    """``(id, location)`` of every policy rule, then every environment rule some tool meets."""
    out = [(r.id, r.location) for r in compiled.rules]
    for env in compiled.environments:
        for tool in compiled.tools.values():
            plan = tool.plans.get(env)
            if plan is None:
                continue
            found = plan.deny or plan.environment_approval
            if found is not None:
                out.append((f"environment:{env}", found.location or ""))
                break
    return out


def coverage(compiled: CompiledPolicy, observed: Iterable[Observed]) -> Coverage:
    """Rules exercised and edges probed by ``observed`` cases of ``compiled``."""
    rules = _rule_ids(compiled)
    decided = dict.fromkeys((r for r, _ in rules), 0)
    matched = dict.fromkeys((r for r, _ in rules), 0)
    edges = [e for name, t in compiled.tools.items() for e in tool_edges(name, t.spec)]
    probes = dict.fromkeys((e.id for e in edges), 0)
    count = 0
    for case in observed:
        count += 1
        if case.verdict.rule in decided:
            decided[case.verdict.rule] += 1
        for rule in set(case.matched):
            if rule in matched:
                matched[rule] += 1
        tool = compiled.tools.get(case.request.tool)
        if tool is None or case.verdict.rule in _BEFORE_SCHEMA:
            continue
        for edge in probed(tool.name, tool.spec, case.request.args):
            probes[edge.id] = probes.get(edge.id, 0) + 1
    return Coverage(
        cases=count,
        rules=tuple(RuleCoverage(r, loc, decided[r], matched[r]) for r, loc in rules),
        edges=tuple(
            EdgeCoverage(
                e,
                e.describe(compiled.tools[e.tool].spec),
                e.short(compiled.tools[e.tool].spec),
                probes[e.id],
            )
            for e in edges
        ),
    )
