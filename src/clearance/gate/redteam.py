"""The red team's runner: generated attacks and stateful ones, against a real gate, in process.

``RedTeam(target, suite).run()`` decides every case of a ``Suite`` (``clearance.policy.redteam``)
with the gate of ``target`` - the gate as ``clearance serve`` composes it: store, audit log,
approvals, break-glass, decay and the control plane (kill switch, breakers) - and adds the attacks
that need gate state, each derived from the policy's own witnesses (arguments the policy answers
PERMIT or APPROVAL for):

``approval``
    an approval-requiring call asked again without a token and with a forged one;
``token-replay``
    an approved call's execution token used from another session, by another agent, for the
    approved call (which must work: that is the happy path) and then once more;
``args-swap``
    the token of an approved call presented with each argument changed, an argument added,
    another witness's arguments, another action, another target - each a request the policy does
    not permit on its own;
``idempotency``
    an idempotency key reused for requests the policy answers less permissively than the first
    one (other arguments, arguments outside the schema, another action, an out-of-scope tool),
    each of which must get no more than its own answer; and on an approved call, key and token
    with swapped arguments, the approved call, the same again, the key without the token;
``halt``
    calls after the agent was halted (in the same session, a new session, with a token claimed
    before the halt), and after halts of each tool, each environment and everything, each lifted
    again afterwards.

Every agent is fresh (``redteam-00001``...) and every case gets its own session, so breakers that
count per agent (rate spikes, approval backlogs) never hide a case from the policy; decisions that
differ from the policy's own answer (the unusual-sequence breaker after warm-up, for instance) are
reported as deviations, never as passes or failures. A case *fails* only when the gate gave an
outcome its expectation forbids: the **permitted-when-forbidden** cases the report exists for
(and escalations to APPROVAL where the policy's structure says DENY).

A shadow-mode policy answers PERMIT to everything by design; the runner judges the outcome it
would have enforced (``shadow_outcome``) and the report says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol
from xml.etree import ElementTree as ET

from pydantic import ValidationError

from clearance.approvals import ApprovalService, Operator, State
from clearance.approvals.tokens import new_token
from clearance.control.killswitch import KillSwitch
from clearance.control.operator import Operator as ControlOperator
from clearance.control.scope import Scope
from clearance.errors import ClearanceError
from clearance.gate.gate import Gate
from clearance.model.decision import Decision, Outcome, Verdict
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.model.session import Environment, Session, SessionFacts
from clearance.policy.evaluate import evaluate
from clearance.policy.redteam import (
    CONSTRAINT,
    Case,
    Expectation,
    Suite,
    Witness,
    rank,
    tool_uses,
    value_pool,
)
from clearance.scan.provenance import UNTRUSTED_PREFIX

APPROVAL = "approval"
TOKEN_REPLAY = "token-replay"  # noqa: S105 - a category name, not a secret
ARGS_SWAP = "args-swap"
IDEMPOTENCY = "idempotency"
HALT = "halt"
STATEFUL: tuple[str, ...] = (APPROVAL, TOKEN_REPLAY, ARGS_SWAP, IDEMPOTENCY, HALT)

REJECTED = "REJECTED"
SKIPPED = "SKIPPED"
IN_PROCESS = "in-process"
GATE_ERROR = "gate-error"
HALT_REASON = "clearance redteam"
_ADMIN = ControlOperator("redteam-admin", frozenset({"admin"}))
_PRINCIPAL = "redteam-principal"

Progress = Callable[[int, str], None]


class RequestRefusedError(ClearanceError):
    """The target did not decide a request (too large, malformed on the wire, or it failed on
    it): nothing was dispatched, and the case is reported as ``REJECTED``.

    ``deviation`` says how the refusal falls short of a clean one (a gate that failed with an
    internal error instead of refusing the request): reported, never counted as a pass.
    """

    code = "redteam_request_refused"

    def __init__(self, message: str, *, deviation: str | None = None) -> None:
        super().__init__(message)
        self.deviation = deviation


class HaltLeftError(ClearanceError):
    """A halt the red team engaged could not be lifted: the scope is still stopped."""

    code = "redteam_halt_left"
    exit_code = 2


class Target(Protocol):
    """The gate under attack: the operations the attacks act through, in process or over HTTP.

    Every operation goes through the gate's own front door (the one its agents, orchestrators and
    operators use), so a target holds no shortcut around what it attacks. A target that cannot do
    something (an API that halts only agents, say) says so in ``can_halt``; the steps that need it
    are reported as skipped, never as passes.
    """

    @property
    def digest(self) -> str:
        """The digest of the policy the gate decides with ("" when it has none)."""

    def open_session(self, agent_id: str, task: str, environment: str, principal: str) -> Session:
        """Open a session as the trusted orchestrator (registering ``agent_id`` when needed)."""

    def decide(self, request: Request) -> Decision:
        """The gate's decision on ``request``, made as the agent ``request.agent_id``.

        Raises ``RequestRefusedError`` when the gate refused to take the request at all.
        """

    def decide_body(self, agent_id: str, body: Mapping[str, Any]) -> Decision:
        """The gate's decision on a request as the agent ``agent_id`` would send it on the wire,
        for bodies the ``Request`` model refuses: the gate must refuse them too, with
        ``RequestRefusedError``, or its answer is judged like any other."""

    def report(self, result: ActionResult, agent_id: str) -> None:
        """Report what a call's dispatch produced, as the agent that made it."""

    def approve(self, decision: Decision, request: Request) -> str | None:
        """Approve ``decision``'s approval request with as many distinct operators as it needs,
        then claim the execution token as the requesting agent; None when either is refused."""

    def can_halt(self, scope: Scope) -> bool:
        """True when this target can halt and resume ``scope``."""

    def halt(self, scope: Scope) -> None:
        """Engage the kill switch on ``scope`` as an operator."""

    def resume(self, scope: Scope) -> None:
        """Lift the kill switch from ``scope`` as an operator."""


@dataclass(frozen=True)
class GateTarget:
    """The in-process target: a composed gate and the services the stateful attacks act through.

    Approvals are granted by red-team operators who belong to every approver group of the policy,
    as many distinct ones as the request needs; halts and resumes are made by a red-team admin.
    """

    gate: Gate
    approvals: ApprovalService
    killswitch: KillSwitch

    @property
    def digest(self) -> str:
        """The active bundle's digest."""
        bundle = self.gate.bundle
        return bundle.digest if bundle is not None else ""

    def open_session(self, agent_id: str, task: str, environment: str, principal: str) -> Session:
        """``Gate.open_session``: in process the caller is the trusted opener."""
        return self.gate.open_session(
            agent_id=agent_id, task=task, environment=environment, principal=principal
        )

    def decide(self, request: Request) -> Decision:
        """``Gate.decide``."""
        return self.gate.decide(request)

    def decide_body(self, agent_id: str, body: Mapping[str, Any]) -> Decision:
        """In process the ``Request`` model is the gate's front door: parse, then decide."""
        try:
            request = Request.model_validate({**body, "agent_id": agent_id})
        except ValidationError as exc:
            raise RequestRefusedError(parse_problem(exc)) from None
        return self.gate.decide(request)

    def report(self, result: ActionResult, agent_id: str) -> None:
        """``Gate.report``: the observers (session taint among them) see the result."""
        self.gate.report(result, agent_id=agent_id)

    def approve(self, decision: Decision, request: Request) -> str | None:
        """Approve with as many distinct red-team approvers as it takes; claim the token."""
        approval_id, intent = decision.approval_id, decision.intent
        if approval_id is None or intent is None:
            return None
        bundle = self.gate.bundle
        groups = frozenset(bundle.compiled.approvals.groups) if bundle is not None else frozenset()
        for i in range(1, 4):
            operator = Operator(
                f"redteam-approver-{i}", roles=frozenset({"approver"}), groups=groups
            )
            try:
                view = self.approvals.approve(approval_id, operator, self.gate.clock.now())
            except ClearanceError:
                return None
            if view.state is State.APPROVED:
                break
        try:
            status = self.approvals.status(
                approval_id,
                intent=intent,
                agent_id=request.agent_id,
                session_id=request.session_id,
                now=self.gate.clock.now(),
            )
        except ClearanceError:
            return None
        return status.token

    def can_halt(self, scope: Scope) -> bool:
        """Every scope: the kill switch itself is at hand."""
        del scope
        return True

    def halt(self, scope: Scope) -> None:
        """``KillSwitch.halt`` as the red-team admin."""
        self.killswitch.halt(scope, operator=_ADMIN, reason=HALT_REASON, now=self.gate.clock.now())

    def resume(self, scope: Scope) -> None:
        """``KillSwitch.resume`` as the red-team admin."""
        self.killswitch.resume(
            scope, operator=_ADMIN, reason=HALT_REASON, now=self.gate.clock.now()
        )


@dataclass(frozen=True)
class Result:
    """One decided case: what the gate answered, and whether that breaks the expectation.

    ``outcome`` is an ``Outcome`` value, ``REJECTED`` (the request did not parse: nothing was
    dispatched) or ``SKIPPED`` (a stateful step whose precondition failed; ``reason`` says which).
    ``deviation`` says how the gate's answer differs from the policy's own, when it does.
    """

    id: str
    category: str
    title: str
    task: str
    environment: str
    tool: str
    args: Mapping[str, Any]
    expect: Expectation
    outcome: str
    rule: str
    reason: str
    violation: bool
    predicted: str | None = None
    deviation: str | None = None
    request: Mapping[str, Any] = field(default_factory=dict)
    shadow: bool = False

    @property
    def permitted(self) -> bool:
        """True for a violation in which the gate answered PERMIT (the bar is zero of these)."""
        return self.violation and self.outcome == Outcome.PERMIT.value


@dataclass
class Report:
    """Everything one red-team run found, with the figures the CLI prints.

    ``problems`` are what went wrong once the results were in (a run against a served gate that
    could not revoke its keys, or saw the gate switch policy): reported with the results, which
    they do not change, and a reason for the CLI to exit 2 when no case failed.
    """

    policy: str
    version: str
    digest: str
    source: str
    shadow: bool
    generated: int
    generation_s: float
    run_s: float
    results: list[Result]
    unreached_rules: tuple[str, ...] = ()
    target: str = IN_PROCESS
    agent_prefix: str = "redteam"
    problems: tuple[str, ...] = ()

    @property
    def violations(self) -> list[Result]:
        """Cases whose outcome their expectation forbids."""
        return [r for r in self.results if r.violation]

    @property
    def permitted(self) -> list[Result]:
        """Violations answered PERMIT: permitted when they should not be."""
        return [r for r in self.results if r.permitted]

    @property
    def deviations(self) -> list[Result]:
        """Cases decided differently from the policy's own answer, without a violation."""
        return [r for r in self.results if r.deviation and not r.violation]

    @property
    def skipped(self) -> list[Result]:
        """Stateful steps that could not be set up."""
        return [r for r in self.results if r.outcome == SKIPPED]

    @property
    def passed(self) -> bool:
        """True when no case got a forbidden outcome."""
        return not self.violations

    def rate(self, count: int, seconds: float) -> float:
        """``count / seconds``, or 0 for an instant."""
        return count / seconds if seconds > 0 else 0.0

    def by_category(self) -> list[tuple[str, int, int, int]]:
        """``(category, run, violations, deviations)`` per category, in first-seen order."""
        rows: dict[str, list[int]] = {}
        for r in self.results:
            row = rows.setdefault(r.category, [0, 0, 0])
            row[0] += 1
            row[1] += int(r.violation)
            row[2] += int(bool(r.deviation) and not r.violation)
        return [(c, *v) for c, v in rows.items()]  # type: ignore[misc]

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (arguments made JSON-safe: NaN and infinity as text)."""
        return {
            "policy": {
                "name": self.policy,
                "version": self.version,
                "digest": self.digest,
                "source": self.source,
                "shadow": self.shadow,
            },
            "target": self.target,
            "agent_prefix": self.agent_prefix,
            "problems": list(self.problems),
            "passed": self.passed,
            "generated": self.generated,
            "run": len(self.results),
            "generated_per_second": round(self.rate(self.generated, self.generation_s), 1),
            "run_per_second": round(self.rate(len(self.results), self.run_s), 1),
            "generation_seconds": round(self.generation_s, 3),
            "run_seconds": round(self.run_s, 3),
            "violations": len(self.violations),
            "permitted_when_forbidden": len(self.permitted),
            "deviations": len(self.deviations),
            "skipped": len(self.skipped),
            "unreached_rules": list(self.unreached_rules),
            "categories": [
                {"category": c, "run": n, "violations": v, "deviations": d}
                for c, n, v, d in self.by_category()
            ],
            "cases": [_result_json(r) for r in self.results],
        }

    def to_junit(self) -> str:
        """The report as JUnit XML: one test suite per category, one test case per case."""
        root = ET.Element(
            "testsuites",
            name=f"clearance redteam {self.policy}",
            tests=str(len(self.results)),
            failures=str(len(self.violations)),
            time=f"{self.run_s:.3f}",
        )
        groups: dict[str, list[Result]] = {}
        for r in self.results:
            groups.setdefault(r.category, []).append(r)
        for category, results in groups.items():
            suite = ET.SubElement(
                root,
                "testsuite",
                name=f"redteam.{category}",
                tests=str(len(results)),
                failures=str(sum(r.violation for r in results)),
                skipped=str(sum(r.outcome == SKIPPED for r in results)),
            )
            for r in results:
                case = ET.SubElement(
                    suite, "testcase", classname=f"redteam.{category}", name=_xml_text(r.id)
                )
                got = f"got {r.outcome} ({r.rule}): {r.reason}"
                if r.violation:
                    failure = ET.SubElement(
                        case,
                        "failure",
                        message=_xml_text(f"{r.title}: {got}; expected {r.expect.text}"),
                        type="permitted-when-forbidden" if r.permitted else "forbidden-outcome",
                    )
                    failure.text = _xml_text(
                        f"task={r.task} environment={r.environment} tool={r.tool}\n"
                        f"args={_safe_repr(r.args)}\n{got}\nexpected {r.expect.text}"
                    )
                elif r.outcome == SKIPPED:
                    ET.SubElement(case, "skipped", message=_xml_text(r.reason))
                elif r.deviation:
                    out = ET.SubElement(case, "system-out")
                    out.text = _xml_text(r.deviation)
        ET.indent(root)
        return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _xml_text(text: str) -> str:
    """Text XML 1.0 can hold: control characters and lone surrogates escaped."""
    return "".join(
        ch
        if ch in "\t\n\r"
        or (" " <= ch <= "\ud7ff")
        or ("\ue000" <= ch <= "\ufffd")
        or ch > "\uffff"
        else f"\\x{ord(ch):02x}"
        for ch in text
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _safe_repr(value: Any) -> str:
    text = repr(_json_safe(value))
    return text if len(text) <= 400 else text[:397] + "..."


def _result_json(r: Result) -> dict[str, Any]:
    return {
        "id": r.id,
        "category": r.category,
        "title": _json_safe(r.title),
        "task": r.task,
        "environment": r.environment,
        "tool": r.tool,
        "args": _json_safe(_clip_args(r.args)),
        "request": _json_safe(dict(r.request)),
        "outcome": r.outcome,
        "rule": r.rule,
        "reason": _json_safe(r.reason),
        "expected": r.expect.text,
        "forbidden": sorted(o.value for o in r.expect.forbidden),
        "violation": r.violation,
        "permitted_when_forbidden": r.permitted,
        "predicted": r.predicted,
        "deviation": r.deviation,
        "shadow": r.shadow,
    }


def _clip_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Huge probe values (sizes plus one) shortened for the report; the gate saw them whole."""
    out: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, str) and len(value) > 256:
            out[key] = f"{value[:64]}... ({len(value)} characters)"
        elif isinstance(value, list) and len(value) > 16:
            out[key] = [*value[:4], f"... ({len(value)} items)"]
        else:
            out[key] = value
    return out


def _verdict_text(verdict: Verdict | None) -> str | None:
    return None if verdict is None else f"{verdict.outcome.value} ({verdict.rule})"


# ----------------------------------------------------------------------------------- runner


@dataclass(frozen=True)
class _Variant:
    """A request other than a witness's: label, tool, args, request fields, its own verdict."""

    label: str
    tool: str
    args: dict[str, Any]
    fields: dict[str, Any]
    own: Verdict


@dataclass(frozen=True)
class _Scenario:
    category: str
    size: int
    run: Callable[[], list[Result]]


class RedTeam:
    """Runs a suite and the stateful attacks against ``target``; see the module docstring."""

    def __init__(self, target: Target, suite: Suite, *, agent_prefix: str = "redteam") -> None:
        self.target = target
        self.suite = suite
        self.compiled = suite.policy
        self.agent_prefix = agent_prefix
        self._agents = 0
        self._halted: list[Scope] = []
        uses = tool_uses(self.compiled)
        self._pools = {
            tool: {
                name: value_pool(param, uses[tool].get(name), self.compiled.data)
                for name, param in spec.spec.params.items()
            }
            for tool, spec in self.compiled.tools.items()
        }
        self._scenarios = self._plan()

    # -- plan ------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """How many results ``run`` produces: every case and every stateful step."""
        return len(self.suite.cases) + sum(s.size for s in self._scenarios)

    def _witnesses(self, outcome: Outcome | None = None) -> list[Witness]:
        return [w for w in self.suite.witnesses if outcome is None or w.verdict.outcome is outcome]

    def _best(self) -> list[Witness]:
        """The most permissive witness of each task, environment and tool."""
        best: dict[tuple[str, str, str], Witness] = {}
        for w in self.suite.witnesses:
            key = (w.task, w.environment, w.tool)
            if key not in best or rank(w.verdict.outcome) > rank(best[key].verdict.outcome):
                best[key] = w
        return list(best.values())

    def _plan(self) -> list[_Scenario]:
        out: list[_Scenario] = []
        for w in self._witnesses(Outcome.APPROVAL):
            swaps = self._swaps(w)
            out += [
                _Scenario(APPROVAL, 3, partial(self._approval, w)),
                _Scenario(TOKEN_REPLAY, 5, partial(self._replay, w)),
                _Scenario(ARGS_SWAP, len(swaps) + 2, partial(self._swap, w, swaps)),
                _Scenario(
                    IDEMPOTENCY, 4 + len(swaps[:1]), partial(self._idempotent_approval, w, swaps)
                ),
                _Scenario(HALT, 2, partial(self._halt_with_token, w)),
            ]
        for w in self._best():
            variants = self._conflicts(w)
            out += [
                _Scenario(IDEMPOTENCY, len(variants) + 2, partial(self._idempotent, w, variants)),
                _Scenario(HALT, 3, partial(self._halt_agent, w)),
            ]
        for scope, members in self._scoped_halts():
            out.append(_Scenario(HALT, len(members) + 1, partial(self._halt_scope, scope, members)))
        return out

    # -- run -------------------------------------------------------------------------------
    def run(self, progress: Progress | None = None) -> list[Result]:
        """Decide every case, then run every stateful attack; report progress per result.

        Every halt the run engaged is lifted before this returns or raises (an interrupted run
        included): against a shared gate a leftover halt would stop its real agents.
        """
        try:
            return self._run(progress)
        finally:
            self.release()

    def release(self) -> None:
        """Resume every scope this run halted and has not resumed yet.

        Raises the first resume failure after trying them all, naming what is still halted.
        """
        failed: list[tuple[Scope, Exception]] = []
        while self._halted:
            scope = self._halted.pop()
            try:
                self.target.resume(scope)
            except Exception as exc:  # noqa: BLE001 - try every scope, report them together
                failed.append((scope, exc))
        if failed:
            names = ", ".join(f"`{scope.key}`" for scope, _ in failed)
            raise HaltLeftError(
                f"the red team could not resume {names}: {failed[0][1]}",
                hint="resume them by hand: `clearance resume SCOPE --reason ...` on the gate's "
                "host, or from the dashboard",
            ) from failed[0][1]

    def _run(self, progress: Progress | None) -> list[Result]:
        results: list[Result] = []
        for case in self.suite.cases:
            results.append(self._case(case))
            if progress is not None:
                progress(1, case.category)
        for scenario in self._scenarios:
            found = scenario.run()
            if len(found) != scenario.size:  # pragma: no cover - a planning slip, not an attack
                raise AssertionError(f"{scenario.category}: {len(found)} != {scenario.size}")
            results.extend(found)
            if progress is not None:
                progress(len(found), scenario.category)
        return results

    # -- helpers ---------------------------------------------------------------------------
    def _agent(self) -> str:
        self._agents += 1
        return f"{self.agent_prefix}-{self._agents:05d}"

    def _session(self, agent: str, task: str, env: str) -> Session:
        return self.target.open_session(agent, task, env, _PRINCIPAL)

    def _taint(self, session: Session, sources: Sequence[str]) -> None:
        """Taint ``session`` the way an agent's session gets tainted: by a reported result.

        The call names a tool the policy does not know (``untrusted:redteam`` -> ``redteam``), so
        the gate answers SILENCE and its session taint records the reported output under
        ``untrusted:<tool>``, the source the generator predicted the case with.
        """
        for source in sources:
            tool = source.removeprefix(UNTRUSTED_PREFIX)
            probe = self._request(session, tool, {})
            decision = self.target.decide(probe)
            self.target.report(
                ActionResult(
                    decision_id=decision.decision_id,
                    success=True,
                    output="content from outside the organisation (clearance redteam)",
                ),
                session.agent_id,
            )

    def _request(
        self, session: Session, tool: str, args: Mapping[str, Any], **fields: Any
    ) -> Request:
        return Request.model_validate(
            {
                **fields,
                "agent_id": session.agent_id,
                "session_id": session.session_id,
                "tool": tool,
                "args": dict(args),
            }
        )

    def _judge(
        self,
        *,
        id: str,
        category: str,
        title: str,
        task: str,
        env: str,
        tool: str,
        args: Mapping[str, Any],
        expect: Expectation,
        decision: Decision,
        predicted: Verdict | None,
        request: Mapping[str, Any] | None = None,
    ) -> Result:
        outcome = decision.outcome
        shadow = decision.shadow and decision.shadow_outcome is not None
        if shadow and decision.shadow_outcome is not None:
            outcome = decision.shadow_outcome
        deviation = None
        if predicted is not None and (
            predicted.outcome is not outcome or predicted.rule != decision.rule
        ):
            deviation = (
                f"the policy alone answers {predicted.outcome.value} ({predicted.rule}); "
                f"the gate answered {outcome.value} ({decision.rule})"
            )
        return Result(
            id=id,
            category=category,
            title=title,
            task=task,
            environment=env,
            tool=tool,
            args=args,
            expect=expect,
            outcome=outcome.value,
            rule=decision.rule,
            reason=decision.reason,
            violation=expect.breaks(outcome, decision.rule),
            predicted=_verdict_text(predicted),
            deviation=deviation,
            request=dict(request or {}),
            shadow=shadow,
        )

    def _case(self, case: Case) -> Result:
        agent = self._agent()
        session = self._session(agent, case.task, case.environment)
        if case.taint:
            self._taint(session, case.taint)
        common: dict[str, Any] = {
            "id": case.id,
            "category": case.category,
            "title": case.title,
            "task": case.task,
            "env": case.environment,
            "tool": case.tool,
            "args": case.args,
            "expect": case.expect,
            "predicted": case.predicted,
            "request": case.request,
        }
        decide: Callable[[], Decision]
        try:
            request = self._request(session, case.tool, case.args, **case.request)
        except ValidationError:
            # Fields an agent may not send (its own task, say) or arguments no digest can carry:
            # sent as the agent would send them, the gate's front door must refuse them too.
            body = {**case.request, "session_id": session.session_id, "tool": case.tool}
            decide = partial(self.target.decide_body, agent, {**body, "args": dict(case.args)})
        else:
            decide = partial(self.target.decide, request)
        try:
            decision = decide()
        except RequestRefusedError as exc:
            where = (case.task, case.environment, case.tool)
            return _rejected(
                case.id,
                case.category,
                case.title,
                where,
                case.args,
                case.expect,
                exc,
                case.request,
            )
        return self._judge(decision=decision, **common)

    def _approve(self, decision: Decision, request: Request) -> str | None:
        return self.target.approve(decision, request)

    def _own(
        self, w: Witness, tool: str, args: Mapping[str, Any], fields: Mapping[str, Any]
    ) -> Verdict | None:
        """The policy's answer for a request on its own, in a fresh session of ``w``'s task."""
        try:
            request = Request.model_validate(
                {
                    **fields,
                    "agent_id": "redteam",
                    "session_id": "redteam",
                    "tool": tool,
                    "args": dict(args),
                }
            )
        except ValidationError:
            return None
        facts = SessionFacts(task=w.task, environment=Environment(w.environment))
        return evaluate(self.compiled, request, facts)

    def _steps(self, category: str, witness: Witness, label: str) -> _Steps:
        return _Steps(self, category, witness, label)

    # -- approval-requiring calls ---------------------------------------------------------
    def _approval(self, w: Witness) -> list[Result]:
        steps = self._steps(APPROVAL, w, w.verdict.rule)
        session = self._session(self._agent(), w.task, w.environment)
        request = self._request(session, w.tool, w.args)
        expect = Expectation.no_permit(
            f"not PERMIT: the policy asks for approval ({w.verdict.rule})"
        )
        steps.decide("ask", "asked without approval", request, expect, w.verdict)
        steps.decide("ask-again", "asked again, still without a token", request, expect, w.verdict)
        forged = request.model_copy(update={"approval_token": new_token()})
        steps.decide("forged-token", "with a forged execution token", forged, expect, None)
        return steps.results

    def _replay(self, w: Witness) -> list[Result]:
        steps = self._steps(TOKEN_REPLAY, w, w.verdict.rule)
        agent = self._agent()
        session = self._session(agent, w.task, w.environment)
        request = self._request(session, w.tool, w.args)
        expect = Expectation.no_permit("not PERMIT: this token was not issued for this request")
        first = steps.decide("ask", "asked without approval", request, _pending(w), w.verdict)
        token = self._approve(first, request) if first else None
        if token is None:
            return steps.skip(4, "the approval could not be granted and claimed")
        other_session = self._session(agent, w.task, w.environment)
        elsewhere = self._request(other_session, w.tool, w.args, approval_token=token)
        steps.decide("other-session", "the token used in another session", elsewhere, expect, None)
        intruder = self._session(self._agent(), w.task, w.environment)
        stolen = self._request(intruder, w.tool, w.args, approval_token=token)
        steps.decide("other-agent", "the token used by another agent", stolen, expect, None)
        redeemed = request.model_copy(update={"approval_token": token})
        steps.decide("redeem", "the approved call with its token", redeemed, _redeem_once(), None)
        steps.decide("replay", "the same token a second time", redeemed, expect, None)
        return steps.results

    def _swaps(self, w: Witness) -> list[_Variant]:
        """Requests the approver never saw, which the policy does not permit on their own."""
        found: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        pools = self._pools[w.tool]
        for name, value in w.args.items():
            for other in pools.get(name, ()):
                if other != value:
                    found.append((f"{name}-changed", {**w.args, name: other}, {}))
        for name, pool in pools.items():
            if name not in w.args and pool:
                found.append((f"{name}-added", {**w.args, name: pool[0]}, {}))
        for other in self.suite.witnesses:
            if other.tool == w.tool and dict(other.args) != dict(w.args):
                found.append(("other-witness-args", dict(other.args), {}))
        found.append(("action-changed", dict(w.args), {"action": "redteam-other-action"}))
        found.append(("target-changed", dict(w.args), {"target": "redteam-target"}))
        out: list[_Variant] = []
        labels: set[str] = set()
        for label, args, fields in found:
            own = self._own(w, w.tool, args, fields)
            if label in labels or own is None or own.outcome is Outcome.PERMIT:
                continue
            labels.add(label)
            out.append(_Variant(label, w.tool, args, fields, own))
        return out

    def _swap(self, w: Witness, swaps: Sequence[_Variant]) -> list[Result]:
        steps = self._steps(ARGS_SWAP, w, w.verdict.rule)
        session = self._session(self._agent(), w.task, w.environment)
        request = self._request(session, w.tool, w.args)
        first = steps.decide("ask", "asked without approval", request, _pending(w), w.verdict)
        token = self._approve(first, request) if first else None
        if token is None:
            return steps.skip(len(swaps) + 1, "the approval could not be granted and claimed")
        for v in swaps:
            swapped = self._request(session, w.tool, v.args, approval_token=token, **v.fields)
            expect = Expectation.no_permit(
                f"not PERMIT: the approver never saw these arguments, which the policy answers "
                f"{v.own.outcome.value} (`{v.own.rule}`) on their own"
            )
            steps.decide(v.label, f"the token with {v.label}", swapped, expect, None, args=v.args)
        redeemed = request.model_copy(update={"approval_token": token})
        steps.decide("redeem", "the approved call with its token", redeemed, _redeem_once(), None)
        return steps.results

    # -- idempotency ----------------------------------------------------------------------
    def _conflicts(self, w: Witness) -> list[_Variant]:
        """Other requests under the first one's key, each less permitted than it on its own."""
        found: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
        for other in self.suite.witnesses:
            if (other.task, other.environment, other.tool) == (w.task, w.environment, w.tool):
                found.append((f"args-of-{other.verdict.rule}", w.tool, dict(other.args), {}))
        probe = next(
            (
                c
                for c in self.suite.cases
                if c.category == CONSTRAINT
                and Outcome.APPROVAL in c.expect.forbidden
                and (c.task, c.environment, c.tool) == (w.task, w.environment, w.tool)
            ),
            None,
        )
        if probe is not None:
            found.append(("args-outside-the-schema", w.tool, dict(probe.args), {}))
        found.append(("action-changed", w.tool, dict(w.args), {"action": "redteam-other-action"}))
        foreign = next(
            (t for t in self.compiled.tools if t not in self.compiled.tasks[w.task]), None
        )
        if foreign is not None:
            args = next((dict(x.args) for x in self.suite.witnesses if x.tool == foreign), {})
            found.append(("out-of-scope-tool", foreign, args, {}))
        out: list[_Variant] = []
        for label, tool, args, fields in found:
            own = self._own(w, tool, args, fields)
            if own is not None and rank(own.outcome) < rank(w.verdict.outcome):
                out.append(_Variant(label, tool, args, fields, own))
        return out

    def _idempotent(self, w: Witness, variants: Sequence[_Variant]) -> list[Result]:
        steps = self._steps(IDEMPOTENCY, w, w.verdict.rule)
        session = self._session(self._agent(), w.task, w.environment)
        key = f"redteam-key-{session.session_id[-12:]}"
        request = self._request(session, w.tool, w.args, idempotency_key=key)
        baseline = Expectation.at_most(w.verdict, "(the policy's answer)")
        steps.decide("first", "the first request under a key", request, baseline, w.verdict)
        for v in variants:
            other = self._request(session, v.tool, v.args, idempotency_key=key, **v.fields)
            expect = Expectation.at_most(
                v.own, "(the request on its own: the key must not lend it the first decision)"
            )
            steps.decide(
                v.label,
                f"the key reused for {v.label}",
                other,
                expect,
                None,
                args=v.args,
                tool=v.tool,
            )
        steps.decide("retry", "the same request again under its key", request, baseline, None)
        return steps.results

    def _idempotent_approval(self, w: Witness, swaps: Sequence[_Variant]) -> list[Result]:
        steps = self._steps(IDEMPOTENCY, w, f"approved-{w.verdict.rule}")
        session = self._session(self._agent(), w.task, w.environment)
        key = f"redteam-key-{session.session_id[-12:]}"
        request = self._request(session, w.tool, w.args, idempotency_key=key)
        first = steps.decide("ask", "asked under a key", request, _pending(w), w.verdict)
        token = self._approve(first, request) if first else None
        if token is None:
            return steps.skip(3 + len(swaps[:1]), "the approval could not be granted and claimed")
        never = Expectation.no_permit("not PERMIT: the key and token belong to another request")
        for v in swaps[:1]:
            swapped = self._request(
                session, w.tool, v.args, idempotency_key=key, approval_token=token, **v.fields
            )
            steps.decide(
                v.label, f"key and token with {v.label}", swapped, never, None, args=v.args
            )
        redeemed = request.model_copy(update={"approval_token": token})
        steps.decide(
            "redeem", "the approved call with key and token", redeemed, _redeem_once(), None
        )
        steps.decide("replay", "key and token a second time", redeemed, never, None)
        steps.decide("no-token", "the key again without the token", request, never, None)
        return steps.results

    # -- halts -----------------------------------------------------------------------------
    def _halt(self, scope: Scope) -> None:
        # Recorded before the call: a halt whose answer was lost may still be in force.
        self._halted.append(scope)
        self.target.halt(scope)

    def _resume(self, scope: Scope) -> None:
        self.target.resume(scope)
        self._halted.remove(scope)

    def _halt_agent(self, w: Witness) -> list[Result]:
        steps = self._steps(HALT, w, f"agent-{w.verdict.rule}")
        agent = self._agent()
        session = self._session(agent, w.task, w.environment)
        request = self._request(session, w.tool, w.args)
        steps.decide(
            "before", "before the halt", request, Expectation.at_most(w.verdict, ""), w.verdict
        )
        self._halt(Scope.agent(agent))
        stopped = Expectation.refuse("kill-switch")
        steps.decide("same-session", "after the agent was halted", request, stopped, None)
        fresh = self._session(agent, w.task, w.environment)
        again = self._request(fresh, w.tool, w.args)
        steps.decide("new-session", "in a new session after the halt", again, stopped, None)
        return steps.results

    def _halt_with_token(self, w: Witness) -> list[Result]:
        steps = self._steps(HALT, w, f"token-{w.verdict.rule}")
        agent = self._agent()
        session = self._session(agent, w.task, w.environment)
        request = self._request(session, w.tool, w.args)
        first = steps.decide("ask", "asked without approval", request, _pending(w), w.verdict)
        token = self._approve(first, request) if first else None
        if token is None:
            return steps.skip(1, "the approval could not be granted and claimed")
        self._halt(Scope.agent(agent))
        redeemed = request.model_copy(update={"approval_token": token})
        steps.decide(
            "token-after-halt",
            "a token claimed before the halt, presented after it",
            redeemed,
            Expectation.refuse("kill-switch"),
            None,
        )
        return steps.results

    def _scoped_halts(self) -> list[tuple[Scope, list[Witness]]]:
        best = self._best()
        out: list[tuple[Scope, list[Witness]]] = []
        for tool in self.compiled.tools:
            members = [w for w in best if w.tool == tool and rank(w.verdict.outcome) > 0]
            if members:
                out.append((Scope.tool(tool), members[:4]))
        for env in self.compiled.environments:
            members = [w for w in best if w.environment == env and rank(w.verdict.outcome) > 0]
            if members:
                out.append((Scope.environment(env), members[:8]))
        members = [w for w in best if rank(w.verdict.outcome) > 0]
        if members:
            out.append((Scope.everything(), members[:12]))
        return out

    def _halt_scope(self, scope: Scope, members: Sequence[Witness]) -> list[Result]:
        if not self.target.can_halt(scope):
            steps = self._steps(HALT, members[0], scope.key)
            return steps.skip(
                len(members) + 1,
                f"this target cannot halt `{scope.key}`",
            )
        results: list[Result] = []
        self._halt(scope)
        for w in members:
            steps = self._steps(HALT, w, f"{scope.key}-{w.verdict.rule}")
            session = self._session(self._agent(), w.task, w.environment)
            request = self._request(session, w.tool, w.args)
            steps.decide(
                "halted",
                f"while `{scope.key}` is halted",
                request,
                Expectation.refuse("kill-switch"),
                None,
            )
            results += steps.results
        self._resume(scope)
        w = members[0]
        steps = self._steps(HALT, w, f"{scope.key}-resumed")
        session = self._session(self._agent(), w.task, w.environment)
        request = self._request(session, w.tool, w.args)
        steps.decide(
            "resumed",
            f"after `{scope.key}` was resumed",
            request,
            Expectation.at_most(w.verdict, "(the policy's answer once resumed)"),
            None,
        )
        return results + steps.results


def _pending(w: Witness) -> Expectation:
    return Expectation.no_permit(f"not PERMIT: the policy asks for approval (`{w.verdict.rule}`)")


def _redeem_once() -> Expectation:
    return Expectation.anything("PERMIT (the approved call, once)")


def parse_problem(exc: ValidationError) -> str:
    """Why a request does not parse, naming the first field at fault."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"the request does not parse: `{where}`: {first['msg']}"


def _rejected(
    id: str,
    category: str,
    title: str,
    where: tuple[str, str, str],
    args: Mapping[str, Any],
    expect: Expectation,
    refused: RequestRefusedError,
    request: Mapping[str, Any],
) -> Result:
    """A request that never reached a decision (``where`` is task, environment, tool)."""
    task, environment, tool = where
    return Result(
        id=id,
        category=category,
        title=title,
        task=task,
        environment=environment,
        tool=tool,
        args=args,
        expect=expect,
        outcome=REJECTED,
        rule="request-invalid" if refused.deviation is None else GATE_ERROR,
        reason=refused.message,
        violation=False,
        deviation=refused.deviation,
        request=dict(request),
    )


class _Steps:
    """The results of one stateful scenario, named ``category/task/env/tool/label/step``."""

    def __init__(self, team: RedTeam, category: str, witness: Witness, label: str) -> None:
        self.team = team
        self.category = category
        self.w = witness
        self.prefix = f"{category}/{witness.task}/{witness.environment}/{witness.tool}/{label}"
        self.results: list[Result] = []

    def decide(
        self,
        step: str,
        title: str,
        request: Request,
        expect: Expectation,
        predicted: Verdict | None,
        *,
        args: Mapping[str, Any] | None = None,
        tool: str | None = None,
    ) -> Decision | None:
        """Decide ``request`` and judge it; None when the target refused to take it."""
        fields = {
            k: v
            for k, v in request.model_dump(
                include={"action", "target", "idempotency_key"}, exclude_none=True
            ).items()
            if not (k == "action" and v == "call")
        }
        if request.approval_token is not None:
            fields["approval_token"] = "<token>"  # noqa: S105 - a placeholder for the report
        try:
            decision = self.team.target.decide(request)
        except RequestRefusedError as exc:
            where = (self.w.task, self.w.environment, tool or self.w.tool)
            self.results.append(
                _rejected(
                    f"{self.prefix}/{step}",
                    self.category,
                    f"`{tool or self.w.tool}` {title}",
                    where,
                    args if args is not None else self.w.args,
                    expect,
                    exc,
                    fields,
                )
            )
            return None
        self.results.append(
            self.team._judge(
                id=f"{self.prefix}/{step}",
                category=self.category,
                title=f"`{tool or self.w.tool}` {title}",
                task=self.w.task,
                env=self.w.environment,
                tool=tool or self.w.tool,
                args=args if args is not None else self.w.args,
                expect=expect,
                decision=decision,
                predicted=predicted,
                request=fields,
            )
        )
        return decision

    def skip(self, count: int, why: str) -> list[Result]:
        for i in range(count):
            self.results.append(
                Result(
                    id=f"{self.prefix}/skipped-{i + 1}",
                    category=self.category,
                    title=f"`{self.w.tool}` (not run)",
                    task=self.w.task,
                    environment=self.w.environment,
                    tool=self.w.tool,
                    args=self.w.args,
                    expect=Expectation.anything("not run"),
                    outcome=SKIPPED,
                    rule="-",
                    reason=why,
                    violation=False,
                )
            )
        return self.results


def run_redteam(
    target: Target,
    suite: Suite,
    *,
    generation_s: float = 0.0,
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
    agent_prefix: str = "redteam",
    where: str = IN_PROCESS,
) -> Report:
    """Run ``suite`` and the stateful attacks against ``target``; time it; build the report.

    ``agent_prefix`` names the run's agents (``<prefix>-00001``...): against a gate that outlives
    the run, give every run its own. ``where`` names the target in the report.
    """
    team = RedTeam(target, suite, agent_prefix=agent_prefix)
    if on_start is not None:
        on_start(team.size)
    started = time.perf_counter()
    results = team.run(progress)
    elapsed = time.perf_counter() - started
    compiled = suite.policy
    return Report(
        policy=compiled.name,
        version=compiled.version,
        digest=target.digest,
        source=compiled.source_name,
        shadow=compiled.shadow or any(t.shadow for t in compiled.tools.values()),
        generated=len(suite.cases),
        generation_s=generation_s,
        run_s=elapsed,
        results=results,
        unreached_rules=suite.unreached_rules,
        target=where,
        agent_prefix=agent_prefix,
    )


def categories(results: Iterable[Result]) -> list[str]:
    """The categories present in ``results``, in first-seen order."""
    return list(dict.fromkeys(r.category for r in results))
