"""The YAML decision corpus under tests/cases/, run by the runner `clearance policy test` uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearance.policy.cases import embedded_policy, load_cases, run_cases, run_load_expectation

CORPUS = Path(__file__).resolve().parents[2] / "cases"
FILES = sorted(CORPUS.glob("*.yaml"))


def test_corpus_is_not_empty() -> None:
    assert len(FILES) >= 10


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_file(path: Path) -> None:
    cases = load_cases(path, source_name=path.name)
    if cases.file.want_error is not None:
        results = [run_load_expectation(cases)]
    else:
        results = run_cases(embedded_policy(cases), cases)
    assert results
    assert [(r.location, r.name, r.failures) for r in results if not r.passed] == []
