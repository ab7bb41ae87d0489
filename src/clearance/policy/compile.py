"""A validated document becomes a ``CompiledPolicy``: everything evaluation needs, computed once.

Compiling checks what the schema alone cannot - rule ids are unique, every tool, task, group and
data list a rule names exists, every glob matches a tool, every CEL condition compiles and reads
only known variables and fields - and reports all problems at once, sorted by location.

It then does the work evaluation must not repeat per request: CEL programs are compiled, regular
expressions compiled, task globs expanded to tool sets, and rules indexed by tool and environment
into a ``Plan`` that lists the candidate rules in policy order together with the inputs they read.
Verdicts that do not depend on the request are built here once and shared.

::

    >>> from clearance.policy.load import load_policy
    >>> compiled = load_policy(POLICY_TEXT).compiled  # doctest: +SKIP
    >>> compiled.tools["transfer_funds"].tier  # doctest: +SKIP
    <RiskTier.WRITE_BROAD: 'write-broad'>
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from clearance.errors import ExpressionError
from clearance.model import Obligation, Outcome, RiskTier, Verdict
from clearance.policy.constraints import ArgsSchema
from clearance.policy.document import (
    Approvals,
    Breakers,
    Breakglass,
    Credentials,
    Document,
    Egress,
    EnvironmentPolicy,
    Redaction,
    Retention,
    Rule,
    Sandbox,
    Scalar,
    Tool,
)
from clearance.policy.expressions import (
    REGEX_FUNCTION,
    Condition,
    Needs,
    compile_condition,
    data_function_name,
)
from clearance.policy.problems import Path, Problems, did_you_mean

_OUTCOMES = {"permit": Outcome.PERMIT, "deny": Outcome.DENY, "approval": Outcome.APPROVAL}
_SUMMARY_FIELD = re.compile(r"\{([^{}]*)\}")
_SUMMARY_PATH = re.compile(r"^(args|request)\.([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to run; ``location`` is ``file:line`` of its definition."""

    id: str
    outcome: Outcome
    reason: str
    condition: Condition | None
    tasks: frozenset[str] | None
    environments: frozenset[str] | None
    approvers: int
    group: str | None
    obligations: tuple[Obligation, ...]
    location: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do for one tool in one environment: candidate rules in order and their inputs.

    ``verdicts`` holds, per rule id, the verdict for the common case where that rule is the only
    match of the winning outcome; ``deny`` is set when the environment denies the tool's tier.
    ``combined`` remembers the verdicts of several matches of the winning outcome as evaluation
    meets them (a verdict depends only on which rules matched, so it is built once per set).
    """

    rules: tuple[CompiledRule, ...]
    needs: Needs
    roots: frozenset[str]
    verdicts: Mapping[str, Verdict]
    default: Verdict
    deny: Verdict | None
    environment_approval: CompiledRule | None
    combined: dict[tuple[str, ...], Verdict] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class CompiledTool:
    """One inventory entry with its argument checks and per-environment plans."""

    name: str
    tier: RiskTier
    spec: Tool
    args: ArgsSchema
    shadow: bool
    obligations: tuple[Obligation, ...]
    plans: Mapping[str, Plan]
    location: str

    def render_summary(self, args: Mapping[str, Any], request: Mapping[str, Any]) -> str | None:
        """The approval summary from the tool's template, or None when it has none.

        Only ``{args.NAME}`` and ``{request.FIELD}`` placeholders are substituted, as plain text:
        no format-string attribute access, so argument values cannot reach into objects.
        """
        if self.spec.summary is None:
            return None

        def substitute(match: re.Match[str]) -> str:
            root, name = match.group(1).split(".", 1)
            value = (args if root == "args" else request).get(name)
            return "" if value is None else str(value)

        return _SUMMARY_FIELD.sub(substitute, self.spec.summary)


@dataclass(frozen=True)
class CompiledPolicy:
    """A policy ready to evaluate; immutable and safe to share between threads.

    The operational sections are the validated document models, exposed as they are for the parts
    of the gate that consume them (approvals, breakers, audit redaction and retention, break-glass,
    sandbox, egress, credentials).
    """

    name: str
    version: str
    source_name: str
    default: Outcome
    shadow: bool
    strict: bool
    tools: Mapping[str, CompiledTool]
    tasks: Mapping[str, frozenset[str]]
    environments: Mapping[str, EnvironmentPolicy]
    rules: tuple[CompiledRule, ...]
    data: Mapping[str, tuple[Scalar, ...]]
    approvals: Approvals
    breakers: Breakers
    redaction: Redaction
    retention: Retention
    breakglass: Breakglass
    sandbox: Sandbox
    egress: Egress
    credentials: Credentials
    document: Document
    locations: Mapping[str, str]
    functions: Mapping[str, Callable[..., Any]] = field(repr=False)
    in_policy_data: Callable[[object], bool] = field(repr=False)


def compile_tree(
    tree: Mapping[str, Any], *, lines: Mapping[str, int], source_name: str
) -> CompiledPolicy:
    """Validate a JSON tree against the schema and compile it; raise with every problem."""
    problems = Problems(source_name, lines)
    try:
        document = Document.model_validate(tree)
    except ValidationError as exc:
        problems.add_validation_error(exc, Document)
        _check_conditions_alone(tree, problems)
        problems.raise_if_any()
        raise  # pragma: no cover - raise_if_any always raises here
    return _Compiler(document, problems).compile()


def _check_conditions_alone(tree: Mapping[str, Any], problems: Problems) -> None:
    """Report CEL problems even when the schema failed, so one run shows every problem.

    Without a valid document, checks that need other sections (which fields a tool has) are
    skipped; syntax, variables, functions and data list names are still checked.
    """
    rules = tree.get("rules")
    data = tree.get("data")
    names: dict[str, Sequence[object]] = (
        {k: v for k, v in data.items() if isinstance(v, list)} if isinstance(data, dict) else {}
    )
    for index, rule in enumerate(rules if isinstance(rules, list) else ()):
        when = rule.get("when") if isinstance(rule, dict) else None
        if isinstance(when, str):
            try:
                compile_condition(when, data=names, check_field=lambda _root, _name: None)
            except ExpressionError as exc:
                problems.add(
                    ("rules", index, "when"), exc.message, hint=exc.hint, error=ExpressionError
                )


def _matching(patterns: Iterable[str], names: Sequence[str]) -> list[str]:
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def _data_key(value: object) -> tuple[str, object] | None:
    """Membership key for data lists: text, number and boolean never equal one another."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, int | float):
        return ("n", value)
    return None


def _membership(items: Iterable[object]) -> Callable[[object], bool]:
    keys = frozenset(k for k in map(_data_key, items) if k is not None)

    def contains(value: object) -> bool:
        key = _data_key(value)
        return key is not None and key in keys

    return contains


def _regex_search(patterns: Iterable[str]) -> Callable[[object, object], bool]:
    """``re_search`` for one policy: every pattern it may see was compiled at load time."""
    compiled = {p: re.compile(p) for p in patterns}

    def re_search(text: object, pattern: object) -> bool:
        if not isinstance(text, str) or not isinstance(pattern, str):
            raise TypeError("re_search() takes text and a pattern")
        return compiled[pattern].search(text) is not None

    return re_search


class _Compiler:
    """One compilation: the document, its problems, and the lookups built along the way."""

    def __init__(self, document: Document, problems: Problems) -> None:
        self.doc = document
        self.problems = problems
        self.tool_names = list(document.tools)

    def where(self, path: Path) -> str:
        location = self.problems.locate(path)
        return f"{location.file}:{location.line}" if location.line else str(location.file)

    # ------------------------------------------------------------------ checks and lookups

    def resolve_tools(self, patterns: Sequence[str], path: Path) -> list[str]:
        """Tools matched by names or globs; each pattern that matches nothing is a problem."""
        for index, pattern in enumerate(patterns):
            if not _matching([pattern], self.tool_names):
                self.problems.add(
                    (*path, index),
                    f"`{pattern}` matches no tool in the inventory",
                    hint=did_you_mean(pattern, self.tool_names),
                )
        return _matching(patterns, self.tool_names)

    def check_tool_keys(self, names: Iterable[str], path: Path) -> None:
        for name in names:
            if name not in self.doc.tools:
                self.problems.add(
                    (*path, name),
                    f"`{name}` is not a tool in the inventory",
                    hint=did_you_mean(name, self.tool_names),
                )

    def compile(self) -> CompiledPolicy:
        doc = self.doc
        tasks = {
            name: frozenset(self.resolve_tools(task.tools, ("tasks", name, "tools")))
            for name, task in doc.tasks.items()
        }
        self.check_sections()
        rules = self.compile_rules()
        data = {name: tuple(items) for name, items in doc.data.items()}
        functions: dict[str, Callable[..., Any]] = {
            data_function_name(name): _membership(items) for name, items in data.items()
        }
        in_policy_data = _membership(v for items in data.values() for v in items)
        functions[REGEX_FUNCTION] = _regex_search(
            p for rule, _ in rules if rule.condition for p in rule.condition.patterns
        )
        tools = {name: self.compile_tool(name, spec, rules) for name, spec in doc.tools.items()}
        self.problems.raise_if_any()
        locations = {rule.id: rule.location for rule, _ in rules}
        return CompiledPolicy(
            name=doc.name,
            version=doc.version,
            source_name=self.problems.source_name,
            default=_OUTCOMES[doc.default],
            shadow=doc.mode == "shadow",
            strict=doc.strict,
            tools=MappingProxyType(tools),
            tasks=MappingProxyType(tasks),
            environments=MappingProxyType({str(k): v for k, v in doc.environments.items()}),
            rules=tuple(rule for rule, _ in rules),
            data=MappingProxyType(data),
            approvals=doc.approvals,
            breakers=doc.breakers,
            redaction=doc.redaction,
            retention=doc.retention,
            breakglass=doc.breakglass,
            sandbox=doc.sandbox,
            egress=doc.egress,
            credentials=doc.credentials,
            document=doc,
            locations=MappingProxyType(locations),
            functions=MappingProxyType(functions),
            in_policy_data=in_policy_data,
        )

    def check_sections(self) -> None:
        doc = self.doc
        self.check_tool_keys(doc.redaction.tools, ("redaction", "tools"))
        self.check_tool_keys(doc.egress.tools, ("egress", "tools"))
        self.check_tool_keys(doc.credentials.tools, ("credentials", "tools"))
        self.check_tool_keys(doc.sandbox.tools, ("sandbox", "tools"))
        for name in doc.sandbox.tools:
            if name in doc.tools and not doc.tools[name].code_execution:
                self.problems.add(
                    ("sandbox", "tools", name),
                    f"tool `{name}` has sandbox limits but is not `code_execution`",
                    hint="set `code_execution: true` on the tool or remove its limits",
                )
        self.resolve_tools(doc.breakglass.scope.tools, ("breakglass", "scope", "tools"))
        for name, tool in doc.tools.items():
            self.check_summary(name, tool)

    def check_summary(self, name: str, tool: Tool) -> None:
        for placeholder in _SUMMARY_FIELD.findall(tool.summary or ""):
            match = _SUMMARY_PATH.match(placeholder)
            path: Path = ("tools", name, "summary")
            if match is None:
                self.problems.add(
                    path,
                    f"summary placeholder `{{{placeholder}}}` is not `{{args.NAME}}` or "
                    "`{request.FIELD}`",
                )
            elif (
                match.group(1) == "args"
                and match.group(2) not in tool.params
                and not tool.additional_params
            ):
                self.problems.add(
                    path,
                    f"summary names `{placeholder}` but the tool has no such parameter",
                    hint=did_you_mean(match.group(2), tool.params),
                )

    # ------------------------------------------------------------------------------ rules

    def compile_rules(self) -> list[tuple[CompiledRule, frozenset[str]]]:
        """Each valid rule with the set of tools it targets."""
        seen: dict[str, int] = {}
        out: list[tuple[CompiledRule, frozenset[str]]] = []
        for index, rule in enumerate(self.doc.rules):
            path: Path = ("rules", index)
            if rule.id in seen:
                first = self.problems.locate(("rules", seen[rule.id]))
                self.problems.add(
                    (*path, "id"),
                    f"duplicate rule id `{rule.id}`",
                    hint=f"the first `{rule.id}` is on line {first.line}",
                )
                continue
            seen[rule.id] = index
            compiled = self.compile_rule(rule, path)
            if compiled is not None:
                out.append(compiled)
        return out

    def rule_targets(self, rule: Rule, path: Path) -> frozenset[str]:
        names = (
            self.resolve_tools(rule.tools, (*path, "tools"))
            if rule.tools is not None
            else self.tool_names
        )
        if rule.tiers is not None:
            names = [n for n in names if self.doc.tools[n].tier in rule.tiers]
        return frozenset(names)

    def compile_rule(self, rule: Rule, path: Path) -> tuple[CompiledRule, frozenset[str]] | None:
        doc = self.doc
        targets = self.rule_targets(rule, path)
        before = len(self.problems.items)
        if not targets:
            self.problems.add(
                path,
                f"rule `{rule.id}` applies to no tool",
                hint="check its `tools` and `tiers`",
            )
        for i, task in enumerate(rule.tasks or ()):
            if task not in doc.tasks:
                self.problems.add(
                    (*path, "tasks", i),
                    f"unknown task `{task}`",
                    hint=did_you_mean(task, doc.tasks),
                )
        for i, env in enumerate(rule.environments or ()):
            if env not in doc.environments:
                self.problems.add(
                    (*path, "environments", i),
                    f"environment `{env}` is not declared under `environments`",
                )
        if rule.group is not None and rule.group not in doc.approvals.groups:
            self.problems.add(
                (*path, "group"),
                f"unknown approval group `{rule.group}`",
                hint=did_you_mean(rule.group, doc.approvals.groups)
                or "declare it under `approvals.groups`",
            )
        condition = self.compile_condition(rule, targets, (*path, "when"))
        if len(self.problems.items) > before:
            return None
        compiled = CompiledRule(
            id=rule.id,
            outcome=_OUTCOMES[rule.outcome],
            reason=rule.reason or f"rule `{rule.id}` matched",
            condition=condition,
            tasks=frozenset(rule.tasks) if rule.tasks is not None else None,
            environments=(frozenset(rule.environments) if rule.environments is not None else None),
            approvers=(rule.approvers or 1) if rule.outcome == "approval" else 0,
            group=rule.group,
            obligations=tuple(Obligation(kind=o.kind, params=o.params) for o in rule.obligations),
            location=self.where(path),
        )
        return compiled, targets

    def compile_condition(
        self, rule: Rule, targets: frozenset[str], path: Path
    ) -> Condition | None:
        if rule.when is None:
            return None
        tools = [self.doc.tools[t] for t in sorted(targets)]

        def check_field(root: str, name: str) -> None:
            if root != "args" or not tools or any(t.additional_params for t in tools):
                return
            if not any(name in t.params for t in tools):
                params = {p for t in tools for p in t.params}
                raise ExpressionError(
                    f"no tool this rule targets has a parameter `{name}`",
                    hint=did_you_mean(name, params),
                )

        try:
            return compile_condition(rule.when, data=self.doc.data, check_field=check_field)
        except ExpressionError as exc:
            self.problems.add(path, exc.message, hint=exc.hint, error=ExpressionError)
            return None

    # ------------------------------------------------------------------------------ tools

    def compile_tool(
        self, name: str, spec: Tool, rules: Sequence[tuple[CompiledRule, frozenset[str]]]
    ) -> CompiledTool:
        doc = self.doc
        tier = RiskTier(spec.tier)
        shadow = (spec.mode or doc.mode) == "shadow"
        obligations = self.tool_obligations(name, spec)
        base = {"tier": tier, "shadow": shadow}
        default = Verdict(
            outcome=_OUTCOMES[doc.default],
            rule="default",
            reason=f"no rule matched; the policy default is {doc.default}",
            approvers=self.required_approvers(tier, 1) if doc.default == "approval" else 0,
            approver_group=doc.approvals.default_group if doc.default == "approval" else None,
            obligations=obligations if doc.default == "approval" else (),
            location=self.where(("default",)),
            **base,
        )
        plans: dict[str, Plan] = {}
        for env, env_policy in doc.environments.items():
            candidates = tuple(
                rule
                for rule, targets in rules
                if name in targets and (rule.environments is None or env in rule.environments)
            )
            needs = Needs()
            for rule in candidates:
                if rule.condition is not None:
                    needs = needs.union(rule.condition.needs)
            env_rule = f"environment:{env}"
            deny = None
            if spec.tier in env_policy.deny_tiers:
                deny = Verdict(
                    outcome=Outcome.DENY,
                    rule=env_rule,
                    reason=f"{spec.tier} tools are denied in {env}",
                    location=self.where(("environments", env)),
                    **base,
                )
            approval = None
            if spec.tier in env_policy.approval_tiers:
                approval = CompiledRule(
                    id=env_rule,
                    outcome=Outcome.APPROVAL,
                    reason=f"{spec.tier} tools need approval in {env}",
                    condition=None,
                    tasks=None,
                    environments=frozenset({env}),
                    approvers=1,
                    group=None,
                    obligations=(),
                    location=self.where(("environments", env)),
                )
            singles = [*candidates, *([approval] if approval else [])]
            verdicts = {r.id: self.single_verdict(r, tier, obligations, base) for r in singles}
            plans[env] = Plan(
                rules=candidates,
                needs=needs,
                roots=frozenset(needs.fields) | needs.whole,
                verdicts=MappingProxyType(verdicts),
                default=default,
                deny=deny,
                environment_approval=approval,
            )
        return CompiledTool(
            name=name,
            tier=tier,
            spec=spec,
            args=ArgsSchema(spec.params, additional=spec.additional_params),
            shadow=shadow,
            obligations=obligations,
            plans=MappingProxyType(plans),
            location=self.where(("tools", name)),
        )

    def required_approvers(self, tier: RiskTier, asked: int) -> int:
        return required_approvers(self.doc.approvals, tier, asked)

    def single_verdict(
        self,
        rule: CompiledRule,
        tier: RiskTier,
        tool_obligations: tuple[Obligation, ...],
        base: Mapping[str, Any],
    ) -> Verdict:
        return build_verdict(
            rule.outcome,
            (rule,),
            tool_obligations=tool_obligations,
            approvers=self.required_approvers(tier, rule.approvers),
            group=rule.group or self.doc.approvals.default_group,
            tier=tier,
            shadow=bool(base["shadow"]),
        )

    def tool_obligations(self, name: str, spec: Tool) -> tuple[Obligation, ...]:
        out: list[Obligation] = []
        if spec.code_execution:
            sandbox = self.doc.sandbox
            limits = sandbox.defaults.model_dump(exclude_none=True)
            limits.update(
                sandbox.tools[name].model_dump(exclude_none=True) if name in sandbox.tools else {}
            )
            if "wall_time" in limits:
                limits["wall_time_seconds"] = int(limits.pop("wall_time").total_seconds())
            egress = self.doc.egress
            limits["egress"] = sorted(set(egress.default) | set(egress.tools.get(name, ())))
            limits["allow_private_addresses"] = egress.allow_private_addresses
            limits["max_bytes_out"] = egress.max_bytes_out
            out.append(Obligation(kind="sandbox", params=limits))
        if spec.untrusted_source:
            out.append(Obligation(kind="taint", params={"source": name}))
        return tuple(out)


def required_approvers(approvals: Approvals, tier: RiskTier, asked: int) -> int:
    """Critical tiers always need two distinct approvers, whatever a rule asks."""
    return max(asked, 2 if tier.value in approvals.critical_tiers else 1)


def build_verdict(
    outcome: Outcome,
    matches: Sequence[CompiledRule],
    *,
    tool_obligations: tuple[Obligation, ...],
    approvers: int,
    group: str | None,
    tier: RiskTier,
    shadow: bool,
) -> Verdict:
    """The verdict for the matches of the winning outcome; the first of them names the rule."""
    first = matches[0]
    obligations: tuple[Obligation, ...] = ()
    if outcome is not Outcome.DENY:
        merged = [*tool_obligations]
        for rule in matches:
            merged.extend(o for o in rule.obligations if o not in merged)
        obligations = tuple(merged)
    return Verdict.model_construct(
        outcome=outcome,
        rule=first.id,
        reason=first.reason,
        tier=tier,
        obligations=obligations,
        shadow=shadow,
        approvers=approvers if outcome is Outcome.APPROVAL else 0,
        approver_group=group if outcome is Outcome.APPROVAL else None,
        location=first.location,
    )


def location_keys(lines: Mapping[str, int]) -> dict[str, int]:
    """The lines a compiled policy cites in verdicts; the rest only matter for load errors."""
    keep = re.compile(r"^(default|tools\.[^.\[]+|environments\.[^.\[]+|rules\[\d+\])$")
    return {k: v for k, v in lines.items() if keep.match(k)}
