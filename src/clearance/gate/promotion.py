"""Environment promotion: a policy reaches production only through these checks.

``check_promotion(staging, production, cases, ...)`` refuses (``PromotionRefusedError``, naming
every reason) unless:

1. the policy tests in ``cases`` pass against the production bundle;
2. production grants nothing staging does not, unless each widening is named by the operator
   (``--allow-widening NAME``). Widenings, by name:
   ``task:<task>:<tool>`` a tool granted to a task that staging does not grant it;
   ``rule:<id>`` a rule that is new and not a deny, more permissive than staging's rule of the
   same id, or a deny/approval rule of staging that production drops;
   ``default`` a more permissive default; ``shadow:<tool>`` a tool enforced in staging and in
   shadow mode (so effectively permitted) in production;
   ``case:<name>`` a test case whose outcome is more permissive under production (the catch-all
   for changed conditions the structural comparison cannot see);
3. the red-team suite generated from the production bundle finds no case the gate answers with an
   outcome the policy forbids (``attack`` runs it on a throw-away gate; ``clearance promote``
   passes ``clearance redteam``'s runner);
4. the approver is not the author.

The caller signs the production bundle and records the promotion in the audit log only after this
returns: a refused promotion leaves nothing behind but the refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn

from clearance.errors import PolicyError
from clearance.gate.redteam import Report
from clearance.model.decision import Outcome
from clearance.policy.bundle import Bundle
from clearance.policy.cases import LoadedCases, run_cases
from clearance.policy.diff import CaseChange, diff_cases

#: How much an outcome lets through; higher is wider. SILENCE stops a call like DENY does.
_WIDTH = {Outcome.DENY: 0, Outcome.SILENCE: 0, Outcome.APPROVAL: 1, Outcome.PERMIT: 2}


class PromotionRefusedError(PolicyError):
    """A promotion check failed; the message lists every reason."""

    code = "promotion_refused"
    exit_code = 1


@dataclass(frozen=True, slots=True)
class Widening:
    """One way production lets through more than staging."""

    name: str
    detail: str


@dataclass(frozen=True, slots=True)
class PromotionPlan:
    """What a passing promotion changes: case changes, named widenings and the test count."""

    staging: str
    production: str
    changes: tuple[CaseChange, ...]
    widenings: tuple[Widening, ...]
    cases_passed: int
    attacks_run: int


def find_widenings(
    staging: Bundle, production: Bundle, changes: Iterable[CaseChange] = ()
) -> list[Widening]:
    """Every way ``production`` is wider than ``staging`` (see the module docstring)."""
    s, p = staging.compiled, production.compiled
    found: list[Widening] = []
    for task, tools in sorted(p.tasks.items()):
        for tool in sorted(tools - s.tasks.get(task, frozenset())):
            found.append(Widening(f"task:{task}:{tool}", f"task `{task}` newly grants `{tool}`"))
    old_rules = {r.id: r for r in s.rules}
    new_rules = {r.id: r for r in p.rules}
    for rid, rule in sorted(new_rules.items()):
        before = old_rules.get(rid)
        if before is None and rule.outcome is not Outcome.DENY:
            found.append(Widening(f"rule:{rid}", f"new {rule.outcome.value} rule `{rid}`"))
        elif before is not None and _WIDTH[rule.outcome] > _WIDTH[before.outcome]:
            found.append(
                Widening(
                    f"rule:{rid}",
                    f"rule `{rid}` goes from {before.outcome.value} to {rule.outcome.value}",
                )
            )
    for rid, rule in sorted(old_rules.items()):
        if rid not in new_rules and rule.outcome is not Outcome.PERMIT:
            found.append(Widening(f"rule:{rid}", f"{rule.outcome.value} rule `{rid}` is dropped"))
    if _WIDTH[p.default] > _WIDTH[s.default]:
        found.append(
            Widening("default", f"default goes from {s.default.value} to {p.default.value}")
        )
    for name, compiled in sorted(p.tools.items()):
        was = s.tools.get(name)
        if compiled.shadow and was is not None and not was.shadow:
            found.append(Widening(f"shadow:{name}", f"`{name}` is in shadow mode in production"))
    for change in changes:
        if _WIDTH[change.new.outcome] > _WIDTH[change.old.outcome]:
            found.append(
                Widening(
                    f"case:{change.name}",
                    f"case `{change.name}` goes from {change.old.outcome.value} "
                    f"({change.old.rule}) to {change.new.outcome.value} ({change.new.rule})",
                )
            )
    return found


def check_promotion(
    staging: Bundle,
    production: Bundle,
    cases: LoadedCases,
    *,
    author: str,
    approver: str,
    attack: Callable[[Bundle], Report],
    allowed_widenings: Iterable[str] = (),
) -> PromotionPlan:
    """Run every promotion check; raise ``PromotionRefusedError`` listing each failure."""
    reasons: list[str] = []
    if not author.strip() or not approver.strip():
        reasons.append("both an author and an approver are required")
    elif author == approver:
        reasons.append(f"`{approver}` wrote this policy and cannot approve its promotion")
    results = run_cases(production, cases)
    for r in results:
        if not r.passed:
            reasons.append(f"policy test failed: {r.location}: {r.name}: {'; '.join(r.failures)}")
    if not results:
        reasons.append("the case file holds no test: a promotion needs passing policy tests")
    changes = tuple(diff_cases(staging, production, cases))
    widenings = find_widenings(staging, production, changes)
    allowed = set(allowed_widenings)
    for name in sorted(allowed - {w.name for w in widenings}):
        reasons.append(f"--allow-widening `{name}` names no widening of this promotion")
    for w in widenings:
        if w.name not in allowed:
            reasons.append(
                f"unnamed widening `{w.name}`: {w.detail} (name it with --allow-widening)"
            )
    if reasons:  # the red team takes seconds: run it only for an otherwise acceptable promotion
        _refuse(production, [*reasons, "red team not run: fix the reasons above first"])
    attacks = attack(production)
    for v in attacks.violations:
        reasons.append(
            f"red team: {v.category} `{v.title}` on `{v.tool}` got {v.outcome} ({v.rule}), "
            f"which the policy forbids"
        )
    if not attacks.results:
        reasons.append("the red team ran no case: a promotion needs a red-team run")
    if reasons:
        _refuse(production, reasons)
    return PromotionPlan(
        staging=staging.digest,
        production=production.digest,
        changes=changes,
        widenings=tuple(widenings),
        cases_passed=len(results),
        attacks_run=len(attacks.results),
    )


def _refuse(production: Bundle, reasons: list[str]) -> NoReturn:
    raise PromotionRefusedError(
        f"promotion of {production.digest} refused:\n  " + "\n  ".join(reasons),
        hint="fix the policy, the tests or the gate; a reviewed widening is named with "
        "--allow-widening NAME",
    )
