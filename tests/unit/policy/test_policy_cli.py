"""`clearance policy lint|test|diff` through the Typer app, in process."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from clearance.cli.commands.policy import app
from clearance.errors import PolicyError

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / "examples" / "financeapp" / "policy.yaml"
CASES = ROOT / "examples" / "financeapp" / "policy_tests.yaml"
runner = CliRunner()


def test_lint_prints_the_digest() -> None:
    result = runner.invoke(app, ["lint", str(POLICY)])
    assert result.exit_code == 0
    assert "ok - 6 tools" in result.output
    assert "sha256:" in result.output


def test_lint_raises_the_policy_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: '1'\nname: x\n")
    result = runner.invoke(app, ["lint", str(bad)])
    assert result.exit_code != 0
    assert isinstance(result.exception, PolicyError)
    assert "bad.yaml:tools: missing required key `tools`" in str(result.exception)


def test_test_passes_and_reports_json() -> None:
    result = runner.invoke(app, ["test", str(POLICY), str(CASES)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("0 failed")
    as_json = runner.invoke(app, ["test", str(POLICY), str(CASES), "--json"])
    assert '"failed": 0' in as_json.output


def test_test_fails_on_a_case_without_expectation(tmp_path: Path) -> None:
    cases = tmp_path / "c.yaml"
    cases.write_text(
        "cases:\n  - {name: lazy, session: {task: transfer, environment: staging},"
        " request: {tool: read_account}}\n"
    )
    result = runner.invoke(app, ["test", str(POLICY), str(cases)])
    assert result.exit_code == 1
    assert "FAIL" in result.output
    assert "no expectation" in result.output


@pytest.mark.parametrize(("threshold", "changes"), [("1000.0", 0), ("500.0", 1)])
def test_diff_lists_changed_cases(tmp_path: Path, threshold: str, changes: int) -> None:
    new = tmp_path / "new.yaml"
    new.write_text(POLICY.read_text().replace("amount <= 1000.0", f"amount <= {threshold}"))
    result = runner.invoke(app, ["diff", str(POLICY), str(new), "--cases", str(CASES)])
    assert result.exit_code == 0
    assert f"{changes} case(s) change" in result.output
    if changes:
        assert "PERMIT (small-transfer-known-payee) -> DENY (default)" in result.output
