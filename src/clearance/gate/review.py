"""Access review: what the policy in force grants that the recorded history says nobody needs.

Permissions accumulate: a task gets a tool for a one-off job and keeps it. A periodic review
(``clearance review``, by default over 90 days) compares the active policy with the decisions
table and reports, each with its evidence and, where one applies, a suggested policy change as a
unified diff of the YAML:

* ``unused-grant`` / ``rare-grant``: a tool a task grants that its sessions never (or fewer than
  ``rare`` times) asked for: remove it from the task;
* ``rule-never-decided``: a rule that decided no request in the period (permit and approval
  rules only get a removal diff; a deny rule that never fired is a guard doing its job);
* ``constraint-never-approached``: an upper bound (``max``, ``max_length``, ``max_items``) that
  the values asked for in the period never came within half of: a hijacked agent gets the whole
  headroom, so tighten it to a round figure twice the largest value seen;
* ``break-glass``: every decision made under a break-glass override;
* ``shadow``: surfaces still in shadow mode, with what enforcement would have done.

Pure over its inputs (the bundle, decision records, the period), so the same history always
gives the same report and the report can be signed off by digest.
"""

from __future__ import annotations

import difflib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import yaml

from clearance.approvals.breakglass import PREFIX as BREAK_GLASS_PREFIX
from clearance.errors import AuditWriteError, ConfigError
from clearance.formats.canonical import canonical_bytes, sha256_digest
from clearance.gate.gate import Gate
from clearance.gate.hooks import AuditSink
from clearance.model.decision import Outcome
from clearance.policy.bundle import Bundle
from clearance.store.protocol import DecisionRecord

DEFAULT_DAYS = 90
DEFAULT_RARE = 3
#: Decisions a review reads at most (newest first); far above a quarter of one gate's traffic.
DECISION_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class ReviewFinding:
    """One thing a reviewer should decide on, with the evidence and a suggested change."""

    kind: str
    subject: str
    detail: str
    evidence: Mapping[str, Any]
    suggestion: str = ""


@dataclass(frozen=True, slots=True)
class AccessReview:
    """The review of one policy over one period."""

    policy: str
    since: str
    until: str
    decisions: int
    findings: tuple[ReviewFinding, ...]

    def to_json(self) -> dict[str, Any]:
        """Machine form (the ``--format json`` report)."""
        return {
            "policy": self.policy,
            "since": self.since,
            "until": self.until,
            "decisions": self.decisions,
            "findings": [{**asdict(f), "evidence": dict(f.evidence)} for f in self.findings],
        }

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON report: what a sign-off names."""
        return sha256_digest(canonical_bytes(self.to_json()))

    def to_markdown(self) -> str:
        """The quarterly-review document."""
        out = [
            "# Access review",
            "",
            f"Policy `{self.policy}`, {self.since} to {self.until}: "
            f"{self.decisions} decisions, {len(self.findings)} findings.",
            f"Report digest `{self.digest}`.",
        ]
        for f in self.findings:
            out += ["", f"## {f.kind}: {f.subject}", "", f.detail, ""]
            out += [f"- {k}: {json.dumps(v)}" for k, v in f.evidence.items()]
            if f.suggestion:
                out += ["", "Suggested change:", "", "```diff", f.suggestion.rstrip("\n"), "```"]
        return "\n".join(out) + "\n"


def _yaml_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """A unified diff of one policy section as YAML, before and after the suggested change."""
    old = yaml.safe_dump(dict(before), sort_keys=False).splitlines(keepends=True)
    new = yaml.safe_dump(dict(after), sort_keys=False).splitlines(keepends=True)
    return "".join(
        difflib.unified_diff(old, new, fromfile="policy.yaml", tofile="policy.yaml (suggested)")
    )


def _in_period(record: DecisionRecord, since: datetime, until: datetime) -> bool:
    return since <= datetime.fromisoformat(record.created_at) < until


def review_access(
    bundle: Bundle,
    decisions: Iterable[DecisionRecord],
    *,
    since: datetime,
    until: datetime,
    rare: int = DEFAULT_RARE,
) -> AccessReview:
    """Review ``bundle`` against the decisions made in ``[since, until)`` (timezone-aware)."""
    tree: dict[str, Any] = json.loads(bundle.canonical_bytes)["document"]
    policy = bundle.compiled
    records = [r for r in decisions if _in_period(r, since, until)]
    asked: Counter[tuple[str, str]] = Counter()
    decided: Counter[str] = Counter()
    broken: list[DecisionRecord] = []
    shadowed: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        tool, rule = r.request["tool"], r.decision["rule"]
        asked[(r.facts["task"], tool)] += 1
        decided[rule] += 1
        if rule.startswith(BREAK_GLASS_PREFIX):
            broken.append(r)
        if r.decision.get("shadow"):
            shadowed[tool][r.decision.get("shadow_outcome") or r.decision["outcome"]] += 1
    findings: list[ReviewFinding] = []
    for task in sorted(policy.tasks):
        spec = tree["tasks"][task]
        for tool in sorted(policy.tasks[task]):
            count = asked[(task, tool)]
            if count >= rare:
                continue
            after = {**spec, "tools": [t for t in spec["tools"] if t != tool]}
            findings.append(
                ReviewFinding(
                    kind="unused-grant" if count == 0 else "rare-grant",
                    subject=f"task `{task}` / tool `{tool}`",
                    detail=f"`{task}` sessions asked for `{tool}` {count} time(s) in the "
                    "period; a grant that is not used is attack surface for a hijacked agent.",
                    evidence={"requests": count, "task": task, "tool": tool},
                    suggestion=_yaml_diff({"tasks": {task: spec}}, {"tasks": {task: after}}),
                )
            )
    for rule in policy.rules:
        if decided[rule.id]:
            continue
        removable = rule.outcome is not Outcome.DENY
        remaining = [r for r in tree.get("rules", []) if r.get("id") != rule.id]
        findings.append(
            ReviewFinding(
                kind="rule-never-decided",
                subject=f"rule `{rule.id}` ({rule.outcome.value.lower()}, {rule.location})",
                detail="no request was decided by this rule in the period; "
                + (
                    "if its tools are no longer used, remove it."
                    if removable
                    else "a deny guard that never fired is doing its job: keep it unless its "
                    "tools are gone."
                ),
                evidence={"decisions": 0, "outcome": rule.outcome.value},
                suggestion=(
                    _yaml_diff({"rules": tree["rules"]}, {"rules": remaining}) if removable else ""
                ),
            )
        )
    findings.extend(_loose_bounds(tree, records, rare))
    for r in broken:
        findings.append(
            ReviewFinding(
                kind="break-glass",
                subject=f"decision `{r.decision_id}` on `{r.request['tool']}`",
                detail="permitted under a break-glass override; confirm the post-incident review "
                "happened and whether a standing rule should replace repeated emergencies.",
                evidence={
                    "decision_id": r.decision_id,
                    "rule": r.decision["rule"],
                    "agent_id": r.request["agent_id"],
                    "time": r.created_at,
                },
            )
        )
    for name in sorted(policy.tools):
        if not policy.tools[name].shadow:
            continue
        spec = tree["tools"][name]
        findings.append(
            ReviewFinding(
                kind="shadow",
                subject=f"tool `{name}`",
                detail="still in shadow mode: the gate records what it would decide and lets the "
                "call through. Enforce it once the would-be outcomes below are expected.",
                evidence={"would_be": dict(shadowed.get(name, {}))},
                suggestion=(
                    _yaml_diff({"mode": "shadow"}, {"mode": "enforce"})
                    if policy.shadow
                    else _yaml_diff(
                        {"tools": {name: spec}}, {"tools": {name: {**spec, "mode": "enforce"}}}
                    )
                ),
            )
        )
    return AccessReview(
        policy=bundle.digest,
        since=since.isoformat(),
        until=until.isoformat(),
        decisions=len(records),
        findings=tuple(findings),
    )


#: Upper bounds and how a value is measured against each.
_BOUNDS: dict[str, Callable[[Any], float | None]] = {
    "max": lambda v: float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None,
    "max_length": lambda v: float(len(v)) if isinstance(v, str) else None,
    "max_items": lambda v: float(len(v)) if isinstance(v, list) else None,
}


def _round_up(value: float) -> float:
    """The smallest of 1, 2 or 5 times a power of ten that is at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def _num(value: float) -> str:
    return f"{value:.0f}" if value.is_integer() else f"{value:g}"


def _loose_bounds(
    tree: Mapping[str, Any], records: Iterable[DecisionRecord], rare: int
) -> list[ReviewFinding]:
    seen: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in records:
        params = tree["tools"].get(r.request["tool"], {}).get("params", {})
        for name, value in (r.request.get("args") or {}).items():
            for bound in params.get(name, {}).keys() & _BOUNDS.keys():
                measured = _BOUNDS[bound](value)
                if measured is not None:
                    seen[(r.request["tool"], name, bound)].append(measured)
    found: list[ReviewFinding] = []
    for (tool, name, bound), values in sorted(seen.items()):
        limit = float(tree["tools"][tool]["params"][name][bound])
        largest = max(values)
        suggested = _round_up(2 * largest)
        if len(values) < rare or largest > limit / 2 or suggested >= limit:
            continue
        spec = tree["tools"][tool]
        new_value: float | int = (
            int(suggested) if bound != "max" or suggested.is_integer() else suggested
        )
        tighter = {
            **spec,
            "params": {**spec["params"], name: {**spec["params"][name], bound: new_value}},
        }
        found.append(
            ReviewFinding(
                kind="constraint-never-approached",
                subject=f"tool `{tool}` / parameter `{name}` ({bound} {_num(limit)})",
                detail=f"the largest of {len(values)} value(s) asked for was {_num(largest)}, under "
                f"half the bound; the headroom only serves a hijacked agent.",
                evidence={
                    "tool": tool,
                    "param": name,
                    "bound": bound,
                    "limit": limit,
                    "largest": largest,
                    "observations": len(values),
                },
                suggestion=_yaml_diff({"tools": {tool: spec}}, {"tools": {tool: tighter}}),
            )
        )
    return found


def review_gate(gate: Gate, *, days: int = DEFAULT_DAYS, rare: int = DEFAULT_RARE) -> AccessReview:
    """The review of ``gate``'s active policy over the last ``days`` of its recorded decisions."""
    bundle = gate.bundle
    if bundle is None:
        raise ConfigError("no policy is active: nothing to review", hint="activate a policy first")
    until = gate.clock.now()
    return review_access(
        bundle,
        gate.store.recent_decisions(limit=DECISION_LIMIT),
        since=until - timedelta(days=days),
        until=until,
        rare=rare,
    )


def sign_off(audit: AuditSink | None, review: AccessReview, *, operator: str) -> None:
    """Record that ``operator`` reviewed this report (by digest) in the audit log.

    Fails closed: without an audit log there is no sign-off, because an unrecorded sign-off is
    exactly the evidence a quarterly review exists to produce.
    """
    if audit is None:
        raise AuditWriteError(
            "no audit log to record the sign-off in", hint="open the gate's data directory"
        )
    if not operator.strip():
        raise ConfigError("a sign-off needs an operator id", hint="pass --operator ID")
    audit.record_event(
        "review.signed_off",
        {"policy": review.policy, "operator": operator},
        {
            "report": review.digest,
            "since": review.since,
            "until": review.until,
            "decisions": review.decisions,
            "findings": len(review.findings),
        },
    )
