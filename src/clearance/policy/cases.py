"""Policy test cases in YAML: the one runner behind ``clearance policy test`` and our own corpus.

A case file holds shared defaults and a list of cases; each case gives a session and a request and
states what it expects. **A case that states no expectation fails** - a test that cannot fail is
not a test. A file may also embed its policy (``policy:`` as text), and a file whose policy must
not load states ``want_error`` (a piece of the message) instead of cases.

::

    defaults:
      session: {task: transfer, environment: staging}
      request: {agent_id: financeapp-1, session_id: s-1}
    cases:
      - name: small transfer to a known payee
        request: {tool: transfer_funds, args: {from_account: ACC-000001, ...}}
        want_outcome: PERMIT
        want_rule: small-transfer-known-payee
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clearance.errors import Location, PolicyError
from clearance.model import Request, SessionFacts, Verdict
from clearance.policy.bundle import Bundle
from clearance.policy.coverage import matching_rules
from clearance.policy.evaluate import evaluate
from clearance.policy.load import load_policy, parse_yaml
from clearance.policy.problems import Problems

_EXPECTATIONS = (
    "want_outcome",
    "want_rule",
    "want_reason",
    "want_approvers",
    "want_group",
    "want_obligations",
    "want_shadow",
)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Case(_Strict):
    """One decision to check; ``want_reason`` is a piece of the expected reason."""

    name: str = Field(min_length=1)
    session: dict[str, Any] = Field(default_factory=dict)
    request: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, list[str]] = Field(default_factory=dict)
    scan: dict[str, Any] | None = None
    want_outcome: Literal["PERMIT", "DENY", "APPROVAL", "SILENCE"] | None = None
    want_rule: str | None = None
    want_reason: str | None = None
    want_approvers: int | None = None
    want_group: str | None = None
    want_obligations: list[str] | None = None
    want_shadow: bool | None = None


class Defaults(_Strict):
    """Session and request fields every case starts from."""

    session: dict[str, Any] = Field(default_factory=dict)
    request: dict[str, Any] = Field(default_factory=dict)


class CaseFile(_Strict):
    """A file of cases, optionally with its own policy (inline text) or an expected load error."""

    description: str = ""
    policy: str | None = None
    want_error: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    cases: list[Case] = Field(default_factory=list)


@dataclass(frozen=True)
class LoadedCases:
    """A parsed case file with the line of each case (for failure messages)."""

    source_name: str
    file: CaseFile
    lines: Mapping[str, int]

    def location(self, index: int) -> str:
        """``file:line`` of case ``index``."""
        line = self.lines.get(f"cases[{index}]")
        return f"{self.source_name}:{line}" if line else self.source_name


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one case: its verdict (if any) and every way it differed from the wants.

    ``request`` and ``matched`` (every rule whose condition held, decided or not) feed the
    coverage report (``clearance.policy.coverage``); they are empty when no verdict was reached.
    """

    name: str
    location: str
    verdict: Verdict | None
    failures: tuple[str, ...]
    request: Request | None = None
    matched: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when the case met every expectation it stated."""
        return not self.failures


class MappingProvenance:
    """Provenance given as ``{value: [labels]}`` in a case file (values compared as text)."""

    def __init__(self, table: Mapping[str, list[str]]) -> None:
        self._table = {k: frozenset(v) for k, v in table.items()}

    def sources(self, value: object) -> frozenset[str]:
        """Labels recorded for ``value``."""
        return self._table.get(str(value), frozenset())


def load_cases(path_or_text: Path | str, *, source_name: str | None = None) -> LoadedCases:
    """Parse a case file; raise ``PolicyError`` naming file:line:key for every problem."""
    if isinstance(path_or_text, Path):
        try:
            text = path_or_text.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(
                f"cannot read case file `{path_or_text.name}`: {exc.__class__.__name__}",
                location=Location(str(path_or_text)),
            ) from exc
        name = source_name or str(path_or_text)
    else:
        text, name = path_or_text, source_name or "<cases>"
    tree, lines = parse_yaml(text, source_name=name)
    problems = Problems(name, lines)
    try:
        file = CaseFile.model_validate(tree)
    except ValidationError as exc:
        problems.add_validation_error(exc, CaseFile)
        problems.raise_if_any()
        raise  # pragma: no cover - raise_if_any always raises here
    if file.want_error is None and not file.cases:
        problems.add(("cases",), "the case file holds no cases")
    if file.want_error is not None and (file.policy is None or file.cases):
        problems.add(("want_error",), "`want_error` needs an inline `policy` and no `cases`")
    problems.raise_if_any()
    return LoadedCases(source_name=name, file=file, lines=lines)


def embedded_policy(cases: LoadedCases) -> Bundle:
    """Load the policy a case file carries inline."""
    if cases.file.policy is None:
        raise PolicyError(
            f"case file `{cases.source_name}` has no inline policy",
            hint="pass a policy file as well",
        )
    return load_policy(cases.file.policy, source_name=f"{cases.source_name}#policy")


def run_load_expectation(cases: LoadedCases) -> CaseResult:
    """For a ``want_error`` file: the policy must fail to load with that message."""
    want = cases.file.want_error or ""
    try:
        embedded_policy(cases)
    except PolicyError as exc:
        failures = () if want in str(exc) else (f"load error `{exc}` does not contain `{want}`",)
        return CaseResult("policy load", cases.source_name, None, failures)
    return CaseResult(
        "policy load", cases.source_name, None, (f"policy loaded but `{want}` was expected",)
    )


def run_cases(bundle: Bundle, cases: LoadedCases) -> list[CaseResult]:
    """Evaluate every case against ``bundle`` and compare with what it expects."""
    return [run_case(bundle, cases, index, case) for index, case in enumerate(cases.file.cases)]


def case_inputs(cases: LoadedCases, case: Case) -> tuple[Request, SessionFacts]:
    """The request and session facts of one case (defaults merged under its own fields)."""
    defaults = cases.file.defaults
    request = Request.model_validate(
        {"agent_id": "agent", "session_id": "session", **defaults.request, **case.request}
    )
    facts = SessionFacts.model_validate({**defaults.session, **case.session})
    return request, facts


def decide_case(bundle: Bundle, cases: LoadedCases, case: Case) -> Verdict:
    """The verdict for one case (defaults merged under the case's own fields)."""
    request, facts = case_inputs(cases, case)
    return evaluate(
        bundle.compiled,
        request,
        facts,
        provenance=MappingProvenance(case.provenance),
        scan=case.scan,
    )


def run_case(bundle: Bundle, cases: LoadedCases, index: int, case: Case) -> CaseResult:
    """Run one case; a case without expectations, or with an invalid request, fails."""
    location = cases.location(index)
    if all(getattr(case, key) is None for key in _EXPECTATIONS):
        return CaseResult(
            case.name,
            location,
            None,
            (f"the case states no expectation (give one of {', '.join(_EXPECTATIONS)})",),
        )
    try:
        request, facts = case_inputs(cases, case)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return CaseResult(
            case.name, location, None, (f"invalid case input `{where}`: {first['msg']}",)
        )
    provenance = MappingProvenance(case.provenance)
    compiled = bundle.compiled
    verdict = evaluate(compiled, request, facts, provenance=provenance, scan=case.scan)
    matched = matching_rules(compiled, request, facts, provenance=provenance, scan=case.scan)
    return CaseResult(
        case.name, location, verdict, tuple(_compare(case, verdict)), request, matched
    )


def _compare(case: Case, verdict: Verdict) -> list[str]:
    failures = []
    got: dict[str, Any] = {
        "want_outcome": verdict.outcome.value,
        "want_rule": verdict.rule,
        "want_approvers": verdict.approvers,
        "want_group": verdict.approver_group,
        "want_obligations": [o.kind for o in verdict.obligations],
        "want_shadow": verdict.shadow,
    }
    for key, actual in got.items():
        want = getattr(case, key)
        if want is not None and want != actual:
            failures.append(f"{key[5:]}: want `{want}`, got `{actual}`")
    if case.want_reason is not None and case.want_reason not in verdict.reason:
        failures.append(f"reason: want text `{case.want_reason}` in `{verdict.reason}`")
    return failures
