"""The red team's generator: attacks and expectations derived from the policy, evaluated purely.

The gate-level run (stateful attacks, the CLI) is in ``tests/integration/test_redteam_cli.py``;
here every case is judged by the policy's own verdict (``Case.predicted``), which is enough to
show that a generated expectation is right for a sound policy and catches a weakened one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clearance.model import Outcome, Request
from clearance.policy import load_policy
from clearance.policy.compile import CompiledPolicy
from clearance.policy.constraints import ParamCheck
from clearance.policy.coverage import Observed, coverage
from clearance.policy.document import Param
from clearance.policy.edges import tool_edges, violations
from clearance.policy.hooks import url_host
from clearance.policy.redteam import (
    AUTHORITY,
    CONFUSABLE,
    CONSTRAINT,
    DESTRUCTIVE,
    SCOPE,
    SMUGGLE,
    TAINT,
    TRAVERSAL,
    URL,
    Case,
    Expectation,
    Suite,
    analyse_condition,
    generate,
    regex_example,
    traversals,
    url_tricks,
)

ROOT = Path(__file__).resolve().parents[3]
FINANCEAPP = ROOT / "examples" / "financeapp" / "policy.yaml"


@pytest.fixture(scope="module")
def finance() -> CompiledPolicy:
    return load_policy(FINANCEAPP).compiled


@pytest.fixture(scope="module")
def suite(finance: CompiledPolicy) -> Suite:
    return generate(finance)


def _broken(suite: Suite) -> list[Case]:
    """Cases the policy itself answers with an outcome their expectation forbids."""
    return [
        c
        for c in suite.cases
        if c.predicted is not None and c.expect.breaks(c.predicted.outcome, c.predicted.rule)
    ]


def _policy(text: str) -> CompiledPolicy:
    return load_policy(text, source_name="redteam-test.yaml").compiled


# --------------------------------------------------------------------------- FinanceApp holds


def test_financeapp_holds_against_every_generated_case(suite: Suite) -> None:
    assert _broken(suite) == []
    counts = suite.by_category()
    for category in (SCOPE, CONSTRAINT, CONFUSABLE, SMUGGLE, URL, TRAVERSAL, DESTRUCTIVE):
        assert counts[category] > 0, category
    assert counts[AUTHORITY] > 0
    assert counts[TAINT] > 0
    assert suite.unreached_rules == ()


def test_generation_is_deterministic(finance: CompiledPolicy, suite: Suite) -> None:
    again = generate(finance)
    assert [(c.id, repr(c.args), c.expect) for c in again.cases] == [
        (c.id, repr(c.args), c.expect) for c in suite.cases
    ]
    assert len({c.id for c in suite.cases}) == len(suite.cases)


def test_every_tool_outside_a_task_is_attacked_in_every_environment(
    finance: CompiledPolicy, suite: Suite
) -> None:
    scope = {(c.task, c.environment, c.tool) for c in suite.cases if c.category == SCOPE}
    for task, granted in finance.tasks.items():
        for env in finance.environments:
            for tool in finance.tools:
                if tool not in granted:
                    assert (task, env, tool) in scope
    # the undeclared `development` environment and an undeclared task are attacked too
    assert any(env == "development" for _, env, _ in scope)
    assert any(task == "redteam-undeclared-task" for task, _, _ in scope)
    for case in suite.cases:
        if case.category == SCOPE:
            assert case.expect == Expectation.refuse("scope")
            assert case.predicted is not None
            assert case.predicted.rule == "scope"


def test_every_constraint_edge_is_probed_and_refused(finance: CompiledPolicy, suite: Suite) -> None:
    observed = [
        Observed(Request(agent_id="a", session_id="s", tool=c.tool, args=dict(c.args)), c.predicted)
        for c in suite.cases
        if c.category == CONSTRAINT and c.predicted is not None
    ]
    report = coverage(finance, observed)
    assert report.unprobed == [], [e.edge.id for e in report.unprobed]
    every = {e.id for name, t in finance.tools.items() for e in tool_edges(name, t.spec)}
    assert {c.edge for c in suite.cases if c.category == CONSTRAINT} == every
    for case in suite.cases:
        if case.category == CONSTRAINT and case.edge and ":at-" not in case.edge:
            assert case.expect.forbidden == {Outcome.PERMIT, Outcome.APPROVAL}
            if case.predicted is None:  # NaN, 2**53, a lone surrogate: Request refuses it first
                with pytest.raises(ValidationError, match="`args"):
                    Request(agent_id="a", session_id="s", tool=case.tool, args=dict(case.args))
                continue
            assert (case.predicted.outcome, case.predicted.rule) == (Outcome.DENY, "constraint")


def test_numeric_edges_are_the_next_float_and_the_next_integer(suite: Suite) -> None:
    amounts = [
        c.args["amount"]
        for c in suite.cases
        if c.edge in ("transfer_funds.amount:below-min", "transfer_funds.amount:above-max")
    ]
    assert 0.009999999999999998 in amounts  # math.nextafter(0.01, -inf)
    assert 1000000.0000000001 in amounts  # math.nextafter(1e6, inf)
    assert -0.99 in amounts
    assert 1000001 in amounts


def test_regex_near_misses_include_the_newline_and_unicode_digit_bypasses(suite: Suite) -> None:
    misses = {
        c.args["account_id"] for c in suite.cases if c.edge == "read_account.account_id:pattern"
    }
    assert "ACC-000000\n" in misses
    assert any("\u0660" in m for m in misses)  # Arabic-Indic digits match \d but not [0-9]
    assert all(re.fullmatch("ACC-[0-9]{6}", m) is None for m in misses)


def test_destructive_tools_are_attacked_from_every_task(
    finance: CompiledPolicy, suite: Suite
) -> None:
    destructive = [c for c in suite.cases if c.category == DESTRUCTIVE]
    for tool in ("execute_sql", "delete_records"):
        assert {c.task for c in destructive if c.tool == tool} == set(finance.tasks)
    select = [
        c
        for c in destructive
        if (c.task, c.environment, c.tool) == ("maintenance", "staging", "execute_sql")
    ]
    assert select
    assert all(c.expect.permit_rules == {"sql-select-reporting"} for c in select)
    production = [
        c
        for c in destructive
        if (c.task, c.environment, c.tool) == ("maintenance", "production", "execute_sql")
    ]
    assert production
    assert all(not c.expect.permit_rules for c in production)


def test_url_probes_never_reach_the_allowlist(suite: Suite) -> None:
    urls = [c.args["url"] for c in suite.cases if c.category == URL]
    host = "api.exchangerates.example"
    for wanted in (
        f"https://{host}.redteam.invalid/",  # allowed.com.evil.com
        f"https://{host}@redteam.invalid/",  # userinfo
        "https://xn--pi-6kc.exchangerates.example/",  # IDN homoglyph as punycode
    ):
        assert wanted in urls
    assert any("\u0430pi" in u for u in urls)  # Cyrillic a: the IDN homoglyph itself
    allowed = {"api.exchangerates.example", "rates.ecb.example", "docs.financeapp.example"}
    assert all(url_host(u) not in allowed for u in urls)


def test_authority_claims_change_nothing(suite: Suite) -> None:
    claims = [c for c in suite.cases if c.category == AUTHORITY]
    keys = {k for c in claims for k in c.args} | {k for c in claims for k in c.request}
    assert {"task", "environment", "delegation", "session", "principal"} <= keys
    unparseable = [c for c in claims if c.request and c.predicted is None]
    assert {k for c in unparseable for k in c.request} >= {"task", "environment", "delegation"}


def test_a_tainted_session_is_held_to_the_taint_rule(suite: Suite) -> None:
    small = [
        c
        for c in suite.cases
        if c.category == TAINT and c.tool == "transfer_funds" and c.environment == "staging"
    ]
    held = [
        c for c in small if c.predicted and c.predicted.rule == "transfer-after-untrusted-content"
    ]
    assert held
    assert all(c.expect.forbidden == {Outcome.PERMIT} for c in held)


# ---------------------------------------------------------------- weakened policies are caught

WEAK_BASE = """\
version: "1"
name: weak
default: deny
tools:
  read_file:
    tier: read-only
    params:
      path: {type: string, required: true, pattern: "/[A-Za-z0-9_./-]+"}
  fetch:
    tier: read-only
    params:
      url: {type: string, required: true, pattern: "https?://\\\\S+"}
  notify:
    tier: write-limited
    params:
      to: {type: string, required: true, pattern: ".+@.+"}
  lookup_user:
    tier: read-only
    params:
      user: {type: string, required: true, max_length: 32}
  wipe:
    tier: destructive
    params:
      table: {type: string, required: true, enum: [a, b]}
tasks:
  work: {tools: [read_file, fetch, notify, lookup_user, wipe]}
environments:
  staging: {}
  production: {}
data:
  admins: [kate, bob]
rules:
"""


def _caught(rules: str) -> list[Case]:
    return _broken(generate(_policy(WEAK_BASE + rules)))


def test_a_prefix_check_on_paths_is_escaped_by_traversal() -> None:
    found = _caught(
        "  - {id: reports, tools: [read_file], when: 'args.path.startsWith(\"/srv/reports/\")',"
        " outcome: permit}\n"
    )
    assert {c.category for c in found} == {TRAVERSAL}
    assert any(c.args["path"].startswith("/srv/reports/") and ".." in c.args["path"] for c in found)


def test_a_prefix_check_on_urls_is_escaped_by_url_tricks() -> None:
    found = _caught(
        "  - {id: docs, tools: [fetch], when: 'args.url.startsWith(\"https://docs.example.com\")',"
        " outcome: permit}\n"
    )
    labels = {c.id.rsplit("/", 1)[-1] for c in found if c.category == URL}
    assert {"suffix-host", "userinfo"} <= labels


def test_a_suffix_check_with_a_loose_pattern_is_escaped_by_smuggling() -> None:
    found = _caught(
        "  - {id: internal, tools: [notify], when: 'args.to.endsWith(\"@corp.example\")',"
        " outcome: permit}\n"
        "  - {id: external, tools: [notify], when: '!args.to.endsWith(\"@corp.example\")',"
        " outcome: approval}\n"
    )
    assert found
    assert {c.category for c in found} <= {SMUGGLE, CONFUSABLE}
    assert any(c.category == SMUGGLE and "," in c.args["to"] for c in found)


def test_a_case_folding_comparison_is_escaped_by_a_kelvin_sign() -> None:
    found = _caught(
        "  - {id: admins, tools: [lookup_user], when: 'lower(args.user) in data.admins',"
        " outcome: permit}\n"
    )
    assert {c.args["user"] for c in found if c.category == CONFUSABLE} == {"\u212aate"}


def test_a_destructive_tool_permitted_by_a_wildcard_is_caught() -> None:
    found = _caught("  - {id: everything, tools: ['*'], outcome: permit}\n")
    assert {c.category for c in found} >= {DESTRUCTIVE}
    named = _caught("  - {id: wipe-ok, tools: [wipe], outcome: permit}\n")
    assert not [c for c in named if c.category == DESTRUCTIVE]


def test_a_rule_that_loosens_tainted_sessions_is_caught() -> None:
    found = _caught(
        "  - {id: read, tools: [read_file], when: '!session.tainted', outcome: approval}\n"
        "  - {id: read-tainted, tools: [read_file], when: session.tainted, outcome: permit}\n"
    )
    assert {c.category for c in found} == {TAINT}


# ---------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("pattern", "min_length"),
    [
        ("ACC-[0-9]{6}", 0),
        ("[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}", 0),
        ("[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}", 255),
        ("https?://\\S+", 2049),
        ("(a|bc)\\1[^x-z]\\d\\w\\s", 0),
        ("(?i)^\\s*select\\s", 0),
        ("[a-z]{1,300}", 201),
    ],
)
def test_regex_examples_match_in_full(pattern: str, min_length: int) -> None:
    found = regex_example(pattern, min_length=min_length)
    assert found is not None
    assert re.fullmatch(pattern, found)
    assert len(found) >= min_length


def test_regex_example_gives_up_on_the_impossible() -> None:
    assert regex_example("a{2}", min_length=10) is None
    assert regex_example("(?!a)a") is None


def test_condition_analysis_finds_what_the_rules_single_out() -> None:
    uses = analyse_condition(
        "url_host(args.url) in data.hosts && args.amount <= 1000.0 && 5 < args.n && "
        'args.to.endsWith("@x.example") && re_search(args.q, "(?i)^select") && '
        'args.db == "reporting" && args.kind in ["a", "b"] && lower(args.user) in data.admins'
    )
    assert uses["url"].url_lists == {"hosts"}
    assert uses["amount"].thresholds == {1000.0}
    assert uses["n"].thresholds == {5.0}
    assert uses["to"].suffixes == {"@x.example"}
    assert uses["q"].regexes == {"(?i)^select"}
    assert uses["db"].equals == ["reporting"]
    assert uses["kind"].equals == ["a", "b"]
    assert uses["user"].data_lists == {"admins"}


def test_url_tricks_and_traversals_resolve_elsewhere() -> None:
    url = "https://allowed.example/x"
    tricks = dict(url_tricks(url, 8, 8 + len("allowed.example")))
    assert tricks["suffix host"] == "https://allowed.example.redteam.invalid/x"
    assert tricks["userinfo"] == "https://allowed.example@redteam.invalid/x"
    assert all(url_host(t) != "allowed.example" for t in tricks.values())
    paths = {label: (probe, resolved) for label, probe, resolved in traversals("/srv/reports/a")}
    assert paths["dot-dot"] == ("/srv/reports/a/../../../../etc/passwd", "/etc/passwd")
    assert paths["encoded slashes"][1] == "/etc/passwd"
    assert paths["backslashes"][1] == "/etc/passwd"


def test_expectations() -> None:
    refuse = Expectation.refuse("scope")
    assert refuse.breaks(Outcome.APPROVAL, "x")
    assert refuse.breaks(Outcome.PERMIT, "x")
    assert not refuse.breaks(Outcome.DENY, "scope")
    assert not refuse.breaks(Outcome.SILENCE, "e")
    assert not refuse.breaks(None, "request-invalid")
    explicit = Expectation.no_permit("only by r", ["r"])
    assert not explicit.breaks(Outcome.PERMIT, "r")
    assert explicit.breaks(Outcome.PERMIT, "q")


# ------------------------------------------------ the edge classifier agrees with the schema

_PATTERNS = [
    "ACC-[0-9]{6}",
    "[a-z]+",
    "https?://\\S+",
    "(a|bc)+x?",
    "\\d{2,4}",
    ".*",
    "[^@]+@[^@]+",
]

params = st.one_of(
    st.builds(
        dict,
        type=st.just("string"),
        required=st.booleans(),
        pattern=st.none() | st.sampled_from(_PATTERNS),
        min_length=st.none() | st.integers(0, 4),
        max_length=st.none() | st.integers(4, 12),
        max_bytes=st.none() | st.integers(1, 16),
        enum=st.none() | st.lists(st.text(max_size=4), min_size=1, max_size=3),
    ),
    st.builds(
        dict,
        type=st.sampled_from(["integer", "number"]),
        required=st.booleans(),
        min=st.none() | st.integers(-5, 5).map(float) | st.just(0.01),
        max=st.none() | st.integers(6, 1000).map(float),
        enum=st.none() | st.lists(st.integers(-3, 3), min_size=1, max_size=3),
    ),
    st.builds(
        dict,
        type=st.just("array"),
        required=st.booleans(),
        max_items=st.none() | st.integers(0, 3),
        max_bytes=st.none() | st.integers(2, 20),
    ),
    st.builds(dict, type=st.sampled_from(["boolean", "object"]), required=st.booleans()),
)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


def _param(spec: dict[str, object]) -> Param | None:
    try:
        return Param.model_validate({k: v for k, v in spec.items() if v is not None})
    except ValidationError:
        return None


@settings(max_examples=400, deadline=None)
@given(spec=params, value=values)
def test_edge_violations_agree_with_the_schema_check(
    spec: dict[str, object], value: object
) -> None:
    param = _param(spec)
    assume(param is not None)
    assert param is not None
    refused = ParamCheck("p", param).check(value) is not None
    assert bool(violations(param, value)) == refused


@settings(max_examples=60, deadline=None)
@given(specs=st.lists(params, min_size=1, max_size=3))
def test_every_probe_of_a_random_schema_is_refused_by_it(specs: list[dict[str, object]]) -> None:
    checked = [_param(s) for s in specs]
    assume(all(p is not None for p in checked))
    tool = {f"p{i}": {k: v for k, v in s.items() if v is not None} for i, s in enumerate(specs)}
    text = yaml.safe_dump(
        {
            "version": "1",
            "name": "random",
            "tools": {"t": {"tier": "write-limited", "params": tool}, "u": {"tier": "read-only"}},
            "tasks": {"k": {"tools": ["t"]}},
            "environments": {"staging": {}, "production": {}},
            "rules": [{"id": "all", "tools": ["t", "u"], "outcome": "permit"}],
        }
    )
    suite = generate(load_policy(text, source_name="random.yaml").compiled)
    assert _broken(suite) == []
    assert any(c.category == CONSTRAINT for c in suite.cases)
