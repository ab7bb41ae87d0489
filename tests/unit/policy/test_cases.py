"""The YAML case runner: a case without expectations fails, mismatches are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearance.errors import PolicyError
from clearance.policy import Bundle
from clearance.policy.cases import load_cases, run_cases, run_load_expectation

HEAD = "defaults:\n  session: {task: transfer, environment: staging}\ncases:\n"


def test_case_without_expectation_fails(finance: Bundle) -> None:
    cases = load_cases(HEAD + "  - {name: silent, request: {tool: read_account}}\n")
    (result,) = run_cases(finance, cases)
    assert not result.passed
    assert "no expectation" in result.failures[0]
    assert result.location == "<cases>:4"


def test_mismatches_are_each_reported(finance: Bundle) -> None:
    cases = load_cases(
        HEAD
        + "  - name: wrong\n    request: {tool: read_account, args: {account_id: ACC-000001}}\n"
        "    want_outcome: DENY\n    want_rule: nope\n    want_reason: harmless\n"
    )
    (result,) = run_cases(finance, cases)
    assert result.verdict is not None
    assert result.failures == (
        "outcome: want `DENY`, got `PERMIT`",
        "rule: want `nope`, got `read-accounts`",
    )


def test_invalid_case_input_fails_the_case(finance: Bundle) -> None:
    cases = load_cases(
        HEAD + "  - {name: bad, session: {environment: moon}, request: {tool: read_account},"
        " want_outcome: DENY}\n"
    )
    (result,) = run_cases(finance, cases)
    assert not result.passed
    assert "invalid case input `environment`" in result.failures[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cases: []\n", "holds no cases"),
        ("cases:\n  - {name: a, want_outcom: DENY}\n", "did you mean `want_outcome`"),
        ("want_error: x\n", "needs an inline `policy`"),
    ],
)
def test_bad_case_files(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_cases(text)


def test_want_error_passes_only_when_loading_fails_with_that_text() -> None:
    failing = load_cases("policy: 'version: 1'\nwant_error: missing required key `name`\n")
    assert run_load_expectation(failing).passed
    wrong = load_cases("policy: 'version: 1'\nwant_error: something else\n")
    assert not run_load_expectation(wrong).passed


def test_example_policy_tests_pass(finance: Bundle) -> None:
    path = Path(__file__).resolve().parents[3] / "examples" / "financeapp" / "policy_tests.yaml"
    results = run_cases(finance, load_cases(path))
    assert len(results) >= 30
    assert [r.failures for r in results if not r.passed] == []
