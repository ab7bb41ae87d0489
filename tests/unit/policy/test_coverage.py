"""`clearance policy test --coverage`: rules no case exercised, constraint edges never probed."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from clearance.cli.commands.policy import app
from clearance.model import Request, SessionFacts
from clearance.policy import evaluate, load_policy
from clearance.policy.coverage import Observed, coverage, matching_rules
from clearance.policy.edges import probed

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / "examples" / "financeapp" / "policy.yaml"
CASES = ROOT / "examples" / "financeapp" / "policy_tests.yaml"
COMPILED = load_policy(POLICY).compiled
runner = CliRunner()


def _observe(tool: str, args: dict[str, object], **session: object) -> Observed:
    request = Request(agent_id="a", session_id="s", tool=tool, args=args)
    facts = SessionFacts.model_validate({"task": "transfer", "environment": "staging", **session})
    verdict = evaluate(COMPILED, request, facts)
    return Observed(request, verdict, matching_rules(COMPILED, request, facts))


TRANSFER = {"from_account": "ACC-000001", "to_account": "ACC-999999"}


def test_matching_rules_lists_every_rule_that_held_not_only_the_decider() -> None:
    big_unknown = _observe("transfer_funds", {**TRANSFER, "amount": 2400})
    assert big_unknown.verdict.rule == "large-transfer"
    assert big_unknown.matched == ("large-transfer", "unknown-payee")
    prod = _observe("transfer_funds", {**TRANSFER, "amount": 5}, environment="production")
    assert prod.matched == ("unknown-payee", "environment:production")
    assert _observe("transfer_funds", {**TRANSFER, "amount": -1}).matched == ()
    assert _observe("send_email", {"recipient": "a@b.cd", "body": "x"}).matched == ()


def test_an_outranked_rule_is_reported_and_so_are_unprobed_edges() -> None:
    report = coverage(COMPILED, [_observe("transfer_funds", {**TRANSFER, "amount": 2400})])
    unexercised = {r.id: r for r in report.unexercised}
    assert "large-transfer" not in unexercised
    assert unexercised["unknown-payee"].matched == 1
    assert unexercised["never-delete"].matched == 0
    assert [r.id for r in report.outranked] == ["unknown-payee"]
    text = "\n".join(report.lines())
    assert "unknown-payee (policy.yaml:" in text
    assert "matched 1 case(s), always outranked" in text
    assert "transfer_funds.amount: missing, type not number, below-min 0.01, at-min 0.01" in text


def test_edges_a_case_probes() -> None:
    spec = COMPILED.tools["transfer_funds"].spec
    ids = [e.id for e in probed("transfer_funds", spec, {**TRANSFER, "amount": 0.01})]
    assert ids == ["transfer_funds.amount:at-min"]
    ids = [e.id for e in probed("transfer_funds", spec, {**TRANSFER, "amount": "1"})]
    assert ids == ["transfer_funds.amount:type"]
    ids = [e.id for e in probed("transfer_funds", spec, {**TRANSFER, "amount": 1e6 + 1})]
    assert ids == ["transfer_funds.amount:above-max"]
    ids = [e.id for e in probed("transfer_funds", spec, {"amount": 5, "to_account": "x"})]
    assert ids == ["transfer_funds.from_account:missing"]
    ids = [e.id for e in probed("transfer_funds", spec, {**TRANSFER, "amount": 5, "x": 1})]
    assert ids == ["transfer_funds:extra-param"]


def test_scope_refusals_probe_no_edge() -> None:
    out_of_scope = _observe("transfer_funds", {**TRANSFER, "amount": -1}, task="balance_check")
    assert out_of_scope.verdict.rule == "scope"
    report = coverage(COMPILED, [out_of_scope])
    assert all(e.probes == 0 for e in report.edges)


def test_the_cli_reports_coverage_as_text_and_json() -> None:
    result = runner.invoke(app, ["test", str(POLICY), str(CASES), "--coverage"])
    assert result.exit_code == 0, result.output
    assert "cases): 14 of 14 rules exercised" in result.output
    assert "constraint edges never probed:" in result.output
    assert "transfer_funds.memo: type not string, max-length 140" in result.output
    as_json = runner.invoke(app, ["test", str(POLICY), str(CASES), "--coverage", "--json"])
    assert as_json.exit_code == 0
    body = json.loads(as_json.output)
    assert body["coverage"]["unexercised_rules"] == []
    assert "transfer_funds.memo:max-length" in body["coverage"]["unprobed_edges"]
    assert "transfer_funds.amount:below-min" not in body["coverage"]["unprobed_edges"]
    plain = runner.invoke(app, ["test", str(POLICY), str(CASES)])
    assert "coverage" not in plain.output


def test_the_cli_lists_rules_no_case_exercised(tmp_path: Path) -> None:
    cases = tmp_path / "few.yaml"
    cases.write_text(
        "defaults: {session: {task: transfer, environment: staging}}\n"
        "cases:\n"
        "  - name: a large transfer\n"
        "    request: {tool: transfer_funds, args: {from_account: ACC-000001,"
        " to_account: ACC-999999, amount: 2400}}\n"
        "    want_outcome: APPROVAL\n"
    )
    embedded = tmp_path / "embedded.yaml"
    embedded.write_text(
        "policy: |\n"
        "  version: '1'\n  name: other\n  tools: {t: {tier: read-only}}\n"
        "  tasks: {k: {tools: [t]}}\n  environments: {staging: {}, production: {}}\n"
        "  rules: [{id: never-delete, tools: [t], outcome: permit}]\n"
        "cases:\n"
        "  - {name: other policy, session: {task: k, environment: staging},"
        " request: {tool: t}, want_outcome: PERMIT}\n"
    )
    result = runner.invoke(app, ["test", str(POLICY), str(cases), str(embedded), "--coverage"])
    assert result.exit_code == 0, result.output
    assert "coverage (1 cases): 1 of 14 rules exercised" in result.output
    assert "rules no case exercised:" in result.output
    assert "never-delete (policy.yaml:" in result.output  # the other policy's rule does not count
    assert "unknown-payee (policy.yaml:" in result.output
