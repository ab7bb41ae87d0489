"""Compile-time checks that relate parts of the document, and what compiling builds."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from clearance.errors import ExpressionError, PolicySchemaError
from clearance.model import RiskTier
from clearance.policy import Bundle


def _problems(policy_with: Callable[[str], Bundle], extra: str) -> list[str]:
    with pytest.raises(PolicySchemaError) as info:
        policy_with(extra)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ("- {id: a, outcome: permit}\n  - {id: a, outcome: deny}", "duplicate rule id `a`"),
        ("- {id: a, tools: [wire_money], outcome: permit}", "`wire_money` matches no tool"),
        ("- {id: a, tools: [transfer_fund], outcome: permit}", "did you mean `transfer_funds`"),
        ("- {id: a, tasks: [transfr], outcome: permit}", "unknown task `transfr`"),
        ("- {id: a, tiers: [destructive], outcome: deny}", "rule `a` applies to no tool"),
        ("- {id: a, outcome: approval, group: nobody}", "unknown approval group `nobody`"),
        ("- {id: a, outcome: permit, when: 'args.amount >'}", "condition does not compile"),
        ("- {id: a, outcome: permit, when: 'sesion.tainted'}", "did you mean `session`"),
        ("- {id: a, outcome: permit, when: 'session.taks == \"x\"'}", "did you mean `task`"),
        ("- {id: a, outcome: permit, when: 'request.tol == \"x\"'}", "did you mean `tool`"),
        ("- {id: a, outcome: permit, when: 'scan.injections > 0.5'}", "did you mean `injection`"),
        (
            "- {id: a, tools: [transfer_funds], outcome: permit, when: 'args.amout > 1.0'}",
            "did you mean `amount`",
        ),
        ("- {id: a, outcome: permit, when: 'args.amount in data.payes'}", "unknown data list"),
        ("- {id: a, outcome: permit, when: 'size(data) > 0'}", "refer to a data list"),
        ("- {id: a, outcome: permit, when: 'lenght(args) > 0'}", "unknown function `lenght`"),
        ('- {id: a, outcome: permit, when: \'"a".lowerAscii() == "a"\'}', "not available"),
        ("- {id: a, outcome: permit, when: '[1].exists(args, true)'}", "comprehension"),
        (
            "- {id: a, tools: [transfer_funds], outcome: permit,"
            " when: 're_search(args.to_account, args.to_account)'}",
            "must be a string literal",
        ),
        (
            "- {id: a, tools: [transfer_funds], outcome: permit,"
            " when: 're_search(args.to_account, \"(\")'}",
            "not a valid regular expression",
        ),
        ("- {id: scope, outcome: permit}", "reserved"),
        ("- {id: a, outcome: deny, approvers: 2}", "`approvers` applies only"),
        ("- {id: a, outcome: deny, obligations: [{kind: log}]}", "cannot carry obligations"),
    ],
)
def test_rule_problems(policy_with: Callable[[str], Bundle], rules: str, expected: str) -> None:
    problems = _problems(policy_with, f"data: {{payees: [a]}}\nrules:\n  {rules}\n")
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("test.yaml:") for p in problems)


def test_cel_problem_is_an_expression_error_at_the_when_line(
    policy_with: Callable[[str], Bundle],
) -> None:
    with pytest.raises(PolicySchemaError) as info:
        policy_with("rules:\n  - id: a\n    outcome: permit\n    when: 'nope'\n")
    (problem,) = info.value.problems
    assert isinstance(problem, ExpressionError)
    assert problem.location is not None
    assert (problem.location.line, problem.location.key) == (21, "rules[0].when")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("tasks:\n  x: {tools: [nope*]}\n", None),
        ("sandbox: {tools: {read_account: {memory_mb: 5}}}", "is not `code_execution`"),
        ("egress: {tools: {nope: [a.example]}}", "`nope` is not a tool"),
        ("credentials: {tools: {nope: {secret: s}}}", "`nope` is not a tool"),
        ("redaction: {tools: {nope: {remove: [args.x]}}}", "`nope` is not a tool"),
        ("breakglass: {scope: {tools: [nope]}}", "matches no tool"),
        ("approvals: {decay: {after: 3, tiers: [destructive]}}", "never decay"),
        ("approvals: {default_group: g}", "`default_group` `g` is not one of `groups`"),
        ("approvals: {timeout: 15}", "a duration is text"),
        ("approvals: {timeout: 15 minutes}", "is not a duration"),
        ("data: {mixed: [a, 1]}", "mixes"),
        ("mode: dry-run", "input should be"),
        ("default: permit", "input should be"),
    ],
)
def test_section_problems(
    policy_with: Callable[[str], Bundle], extra: str, expected: str | None
) -> None:
    problems = _problems(policy_with, extra + "\n")
    if expected is None:  # duplicate `tasks` key
        assert any("duplicate key `tasks`" in p for p in problems)
    else:
        assert any(expected in p for p in problems), problems


def test_missing_production_environment() -> None:
    from clearance.policy import load_policy

    with pytest.raises(PolicySchemaError, match="environment `production` must be declared"):
        load_policy(
            "version: '1'\nname: x\ntools: {t: {tier: read-only}}\n"
            "tasks: {a: {tools: [t]}}\nenvironments: {staging: {}}\n"
        )


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("{type: string, min: 1}", "`min` does not apply"),
        ("{type: number, pattern: 'a'}", "`pattern` does not apply"),
        ("{type: string, pattern: '('}", "not a valid regular expression"),
        ("{type: number, min: 5, max: 1}", "greater than `max`"),
        ("{type: integer, enum: [1, a]}", "is not of type `integer`"),
        ("{type: array, max_length: 3}", "`max_length` does not apply"),
        ("{type: text}", "input should be"),
    ],
)
def test_param_schema_problems(param: str, expected: str) -> None:
    from clearance.policy import load_policy

    text = (
        "version: '1'\nname: x\ntools:\n  t:\n    tier: read-only\n    params:\n"
        f"      p: {param}\ntasks: {{a: {{tools: [t]}}}}\n"
        "environments: {staging: {}, production: {}}\n"
    )
    with pytest.raises(PolicySchemaError) as info:
        load_policy(text, source_name="t.yaml")
    assert expected in str(info.value)
    assert str(info.value).startswith("t.yaml:7:tools.t.params.p")


def test_summary_placeholders_are_checked(policy_with: Callable[[str], Bundle]) -> None:
    from clearance.policy import load_policy

    text = (
        "version: '1'\nname: x\ntools:\n  t:\n    tier: read-only\n"
        "    params: {a: {type: string}}\n    summary: '{args.b} {session.task}'\n"
        "tasks: {a: {tools: [t]}}\nenvironments: {staging: {}, production: {}}\n"
    )
    with pytest.raises(PolicySchemaError) as info:
        load_policy(text)
    messages = [p.message for p in info.value.problems]
    assert any("`args.b`" in m for m in messages)
    assert any("`{session.task}`" in m for m in messages)


def test_compiled_policy_exposes_sections(finance: Bundle) -> None:
    compiled = finance.compiled
    assert compiled.tools["transfer_funds"].tier is RiskTier.WRITE_BROAD
    assert compiled.tasks["report"] == frozenset({"read_account", "fetch_url"})
    assert compiled.approvals.timeout.total_seconds() == 15 * 60
    assert compiled.approvals.groups["dba"] == ["op-carol", "op-dave"]
    assert compiled.breakers.rate_spike.factor == 3
    assert compiled.breakers.rate_spike.window.total_seconds() == 60
    assert compiled.retention.high_risk.days == 3 * 365
    assert compiled.breakglass.operators == ["op-alice"]
    assert compiled.credentials.tools["execute_sql"].environments == ["staging"]
    assert "ACC-100001" in compiled.data["known_payees"]
    assert compiled.locations["never-delete"].startswith("policy.yaml:")


def test_task_globs_expand_against_the_inventory(policy_with: Callable[[str], Bundle]) -> None:
    from clearance.policy import load_policy

    text = (
        "version: '1'\nname: x\ntools:\n  db_read: {tier: read-only}\n"
        "  db_write: {tier: write-limited}\n  mail: {tier: write-limited}\n"
        "tasks: {a: {tools: ['db_*']}}\nenvironments: {staging: {}, production: {}}\n"
    )
    assert load_policy(text).compiled.tasks["a"] == frozenset({"db_read", "db_write"})


def test_code_execution_tools_carry_sandbox_limits(finance: Bundle) -> None:
    (sandbox,) = finance.compiled.tools["execute_sql"].obligations
    assert sandbox.kind == "sandbox"
    assert sandbox.params["wall_time_seconds"] == 10
    assert sandbox.params["memory_mb"] == 128
    assert sandbox.params["output_bytes"] == 1_048_576
    assert sandbox.params["egress"] == []


def test_render_summary_substitutes_text_only(finance: Bundle) -> None:
    tool = finance.compiled.tools["transfer_funds"]
    text = tool.render_summary(
        {"amount": 2400, "from_account": "ACC-1", "to_account": "{args.__class__}"}, {}
    )
    assert text == "transfer 2400 from ACC-1 to {args.__class__}: "
    assert finance.compiled.tools["read_account"].render_summary({}, {}) is None
