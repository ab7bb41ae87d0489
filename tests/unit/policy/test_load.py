"""YAML reading: every problem is a PolicyError naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearance.errors import PolicyError, PolicySchemaError, PolicySyntaxError
from clearance.policy import load_policy
from clearance.policy.load import parse_yaml


def _problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy(text, source_name="p.yaml")
    err = info.value
    return [str(p) for p in err.problems] if isinstance(err, PolicySchemaError) else [str(err)]


@pytest.mark.parametrize("text", ["", "   \n# only a comment\n"])
def test_empty_policy_is_an_error(text: str) -> None:
    with pytest.raises(PolicySyntaxError, match="the policy is empty"):
        load_policy(text)


def test_malformed_yaml_names_the_line() -> None:
    with pytest.raises(PolicySyntaxError) as info:
        load_policy("version: '1'\nname: x\ntools: [\n", source_name="p.yaml")
    assert info.value.location is not None
    assert info.value.location.file == "p.yaml"
    assert info.value.location.line == 4


def test_duplicate_keys_are_refused() -> None:
    (problem,) = _problems("version: '1'\nversion: '2'\n")
    assert problem.startswith("p.yaml:2:version: duplicate key `version`")
    assert "line 1" in problem


def test_aliases_are_refused() -> None:
    assert any("aliases are not supported" in p for p in _problems("a: &x [1]\nb: *x\n"))


def test_unquoted_date_is_refused_with_a_hint() -> None:
    (problem,) = _problems("version: 2024-01-01\n")
    assert "date value is not allowed" in problem
    assert "quote it" in problem


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_are_refused(value: str) -> None:
    assert any("finite" in p for p in _problems(f"version: {value}\n"))


def test_non_text_keys_are_refused() -> None:
    assert any("not a plain text key" in p for p in _problems("1: a\n"))


def test_a_text_that_is_not_a_mapping_hints_at_path() -> None:
    (problem,) = _problems("examples/financeapp/policy.yaml")
    assert "pathlib.Path" in problem


def test_unreadable_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")


def test_file_name_not_directory_is_the_source_name(tmp_path: Path) -> None:
    text = (
        Path(__file__)
        .resolve()
        .parents[3]
        .joinpath("examples", "financeapp", "policy.yaml")
        .read_text()
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "policy.yaml").write_text(text)
    (tmp_path / "b" / "policy.yaml").write_text(text)
    first = load_policy(tmp_path / "a" / "policy.yaml")
    second = load_policy(tmp_path / "b" / "policy.yaml")
    assert first.source_name == "policy.yaml"
    assert first.digest == second.digest


def test_lines_are_recorded_for_keys_and_items() -> None:
    _, lines = parse_yaml("a:\n  b: 1\n  c:\n    - x\n    - y\n", source_name="p")
    assert lines == {"a": 1, "a.b": 2, "a.c": 3, "a.c[0]": 4, "a.c[1]": 5}


def test_unknown_key_names_line_and_suggests_the_right_one() -> None:
    text = """\
version: "1"
name: x
tools:
  t:
    tier: read-only
    parms: {}
tasks: {a: {tools: [t]}}
environments: {staging: {}, production: {}}
"""
    (problem,) = _problems(text)
    assert problem == ("p.yaml:6:tools.t.parms: unknown key `parms` (hint: did you mean `params`?)")


def test_all_problems_are_reported_sorted_by_line() -> None:
    text = """\
version: "1"
name: x
defualt: deny
tools:
  t: {tier: read-only, colour: red}
tasks: {a: {tools: [t]}}
environments: {staging: {}, production: {}}
rules:
  - {id: r, outcome: maybe}
  - {id: s, outcome: permit, when: "sesion.tainted"}
"""
    problems = _problems(text)
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)
    assert len(problems) == 4
    assert "did you mean `default`" in problems[0]
    assert "did you mean `session`" in problems[3]
